// A batch of queued paths turned into changes: each path is looked at in the source (lstat),
// the changed files are read side by side (capture.ts) and their contents stored as objects,
// then, path by path in order, what the batch records is decided and applied to the tree at
// once. A file that cannot be read consistently yet is tried again later (queue.ts); one that
// cannot be read at all is reported as not covered (coverage.ts), its last version kept.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { captureFile, storeCaptured, type Capture, type FileVersion } from './capture';
import type { Checkpoints } from './checkpoint';
import type { Coverage } from './coverage';
import type { Change, FileChange, NewChange, Version } from './journal';
import type { HardLinks, MappedFiles } from './links';
import { sameMetadata, type Metadata } from './metadata';
import type { Batch, ChangeQueue, Pending } from './queue';
import { unchanged } from './scanner';
import type { Source, SourceStat } from './source';
import type { StoreLayout } from './store';
import { applyChange, parentOf, type VersionTree } from './tree';
import { EventFence, type TreeWatcher } from './watch';

/** Files read and stored side by side; the thread pool (UV_THREADPOOL_SIZE) runs their I/O. */
export const CAPTURE_CONCURRENCY = Math.max(4, Number(process.env.UV_THREADPOOL_SIZE) || 16);
const UNSTABLE_RETRY_MS = 50;

function modeOf(st: fs.Stats): number {
  return st.mode & 0o7777;
}

/** Whether a file record describes the version a capture read (content aside). */
function unchangedVersion(e: FileChange, v: FileVersion): boolean {
  return (
    e.size === v.size &&
    e.mtimeMs === v.mtimeMs &&
    e.ctimeMs === v.ctimeMs &&
    e.ino === v.ino &&
    e.mode === (v.mode & 0o7777)
  );
}

/** What a batch records, and what follows from it once acknowledged. */
export interface BatchOutcome {
  changes: NewChange[];
  /** Directories of new objects: fsynced before any record names them. */
  dirsToSync: Set<string>;
  /** Directories to watch and compare after the batch. */
  newDirs: string[];
}

/** What a batch works with: the replicator's parts. */
export interface BatchContext {
  layout: StoreLayout;
  source: Source;
  tree: () => VersionTree;
  queue: ChangeQueue;
  coverage: Coverage;
  links: HardLinks;
  mapped: MappedFiles;
  watcher: TreeWatcher;
  checkpoints: Checkpoints;
  /** How long a file must have held still before it is read (capture.ts). */
  settleMs: number;
  /** A file not read consistently for this long is reported as changing. */
  changingAfterMs: number;
  /** The time for a new record (the journal's: never earlier than the one before). */
  stamp: () => number;
  /** Change notifications may have been lost: the whole tree is compared again. */
  eventsLost: (why: string) => void;
  noteError: (msg: string) => void;
}

export class BatchBuilder {
  /** Objects whose bytes were checked against their name in this run (emptied by pruning). */
  private readonly verified = new Set<string>();
  /** Orders change notifications against reads (see capture.ts). */
  private readonly fence: EventFence;

  constructor(private readonly c: BatchContext) {
    this.fence = new EventFence(path.join(c.layout.tmp, 'fence'));
  }

  /** Opens the fence (once the store's tmp/ is clean). */
  open(): void {
    this.fence.open();
  }

  close(): void {
    this.fence.close();
  }

  /** Objects may have been deleted (pruning, garbage collection): none counts as checked any more. */
  forgetVerified(): void {
    this.verified.clear();
  }

  /** What `batch` records; the tree has it already, the journal not yet. */
  async build(batch: Batch): Promise<BatchOutcome> {
    const stats = new Map<string, SourceStat>(batch.map(([p]) => [p, this.c.source.lstat(p)]));
    const { captures, fenced } = await this.read(batch, stats);
    return this.decide(batch, stats, captures, fenced);
  }

  /** Reads the batch's changed files side by side, then passes the event fence. */
  private async read(
    batch: Batch,
    stats: Map<string, SourceStat>
  ): Promise<{ captures: Map<string, Promise<Capture>>; fenced: boolean }> {
    const captures = new Map<string, Promise<Capture>>();
    const toCapture = batch.filter(([p, info]) => {
      const st = stats.get(p);
      return st instanceof fs.Stats && st.isFile() && (info.event || !unchanged(this.c.tree().get(p), st));
    });
    let next = 0;
    const workers = Array.from({ length: Math.min(CAPTURE_CONCURRENCY, toCapture.length) }, async () => {
      while (next < toCapture.length) {
        const [p] = toCapture[next++] as [string, Pending];
        const pr = captureFile(this.c.layout, this.c.source.path(p), {
          settleMs: this.c.settleMs,
          twice: this.c.mapped.has(p),
        });
        captures.set(p, pr);
        await pr.catch(() => undefined);
      }
    });
    await Promise.all(workers);
    // Every change notification the kernel queued until now is delivered after this: a write
    // that overlapped a read has marked its path dirty by then.
    const fenced = toCapture.length === 0 || (await this.fence.pass());
    if (!fenced) {
      this.c.eventsLost('a fence after the reads did not come back');
    }
    return { captures, fenced };
  }

  /** Decides, path by path in order, what the batch records; the tree follows at once. */
  private async decide(
    batch: Batch,
    stats: Map<string, SourceStat>,
    captures: Map<string, Promise<Capture>>,
    fenced: boolean
  ): Promise<BatchOutcome> {
    const out: BatchOutcome = { changes: [], dirsToSync: new Set(), newDirs: [] };
    for (const [p, info] of batch) {
      const st = stats.get(p) ?? null;
      const known = this.c.tree().get(p);
      if (st !== null && !(st instanceof fs.Stats)) {
        // Not "gone": unknown. The last version stays the recorded one until it can be seen
        // again. (A path the tree does not know lies in a directory that is reported itself.)
        if (known) {
          this.c.coverage.notCovered(
            p,
            'unreadable',
            `cannot be read (${st.unreadable}); its last recorded version is kept`
          );
        }
      } else if (st === null) {
        this.decideGone(out, p, known);
      } else {
        if (st.isFile()) {
          this.c.links.note(p, st.dev, st.ino, st.nlink);
        } else if (this.c.links.has(p) || this.c.mapped.has(p)) {
          this.forget(p, false);
        }
        if (st.isDirectory()) {
          this.decideDir(out, p, info, st, known);
        } else if (st.isSymbolicLink()) {
          this.decideLink(out, p, info, st, known);
        } else if (st.isFile() && captures.has(p)) {
          await this.decideFile(out, p, info, await (captures.get(p) as Promise<Capture>), fenced, known);
        }
        // otherwise unchanged, or sockets, fifos, devices: not protected
      }
    }
    return out;
  }

  private emit(out: BatchOutcome, c: NewChange): void {
    out.changes.push(c);
    applyChange(this.c.tree(), { seq: 0, ...c } as Change);
  }

  /** Records the parent directories the tree lacks; false when one is not a directory (any more). */
  private ensureParents(out: BatchOutcome, p: string): boolean {
    const missing: string[] = [];
    for (let d = parentOf(p); d !== '' && this.c.tree().get(d)?.op !== 'dir'; d = parentOf(d)) {
      missing.unshift(d);
    }
    for (const d of missing) {
      const st = this.c.source.lstat(d);
      if (!(st instanceof fs.Stats) || !st.isDirectory()) {
        return false;
      }
      this.emit(out, {
        at: this.stamp(),
        op: 'dir',
        path: d,
        mode: modeOf(st),
        mtimeMs: st.mtimeMs,
        meta: this.c.source.metadata(d, st.uid, st.gid),
      });
    }
    return true;
  }

  private stamp(): number {
    return this.c.stamp();
  }

  private decideGone(out: BatchOutcome, p: string, known: Version | undefined): void {
    if (known) {
      this.emit(out, { at: this.stamp(), op: 'del', path: p });
      if (known.op === 'dir') {
        this.c.watcher.remove(p);
      }
    }
    this.c.coverage.covered(p, true);
    this.forget(p, true);
  }

  private decideDir(out: BatchOutcome, p: string, info: Pending, st: fs.Stats, known: Version | undefined): void {
    if (!this.ensureParents(out, p)) {
      return;
    }
    if (!known || known.op !== 'dir') {
      out.newDirs.push(p);
    } else if (info.dirEvent || (this.c.watcher.isWatched(p) && this.c.watcher.inodeOf(p) !== st.ino)) {
      // Its parent reported it (created, deleted, moved, changed): it may be another
      // directory by the same name, even on the same inode, and the watch on the old one
      // sees nothing of the new one. Watch it afresh and compare its contents.
      this.c.watcher.remove(p);
      out.newDirs.push(p);
    }
    const meta = this.c.source.metadata(p, st.uid, st.gid);
    if (!unchanged(known, st) || !sameMetadata(known?.meta ?? {}, meta)) {
      this.emit(out, { at: this.stamp(), op: 'dir', path: p, mode: modeOf(st), mtimeMs: st.mtimeMs, meta });
    }
  }

  private decideLink(out: BatchOutcome, p: string, info: Pending, st: fs.Stats, known: Version | undefined): void {
    let linkTarget: string;
    try {
      linkTarget = this.c.source.readlink(p);
    } catch {
      this.later(p, info, 'unstable');
      return;
    }
    if (!this.ensureParents(out, p)) {
      return;
    }
    const meta = this.c.source.metadata(p, st.uid, st.gid);
    if (
      known?.op !== 'link' ||
      known.linkTarget !== linkTarget ||
      !unchanged(known, st) ||
      !sameMetadata(known.meta ?? {}, meta)
    ) {
      this.emit(out, {
        at: this.stamp(),
        op: 'link',
        path: p,
        linkTarget,
        mtimeMs: st.mtimeMs,
        ctimeMs: st.ctimeMs,
        ino: st.ino,
        meta,
      });
    }
    this.c.coverage.covered(p);
  }

  private async decideFile(
    out: BatchOutcome,
    p: string,
    info: Pending,
    c: Capture,
    fenced: boolean,
    known: Version | undefined
  ): Promise<void> {
    if (c.kind === 'ok' && (info.dirty || !fenced)) {
      // A change notification arrived while it was read: the read may mix two writes.
      if (c.tmp) {
        fs.rmSync(c.tmp, { force: true });
      }
      this.later(p, info, 'unstable');
      return;
    }
    switch (c.kind) {
      case 'gone':
        // Deleted or replaced while being read: look again.
        this.later(p, info, 'unstable');
        return;
      case 'unreadable':
        this.c.coverage.notCovered(
          p,
          'unreadable',
          `cannot be read (${c.code}); ${known ? 'its last recorded version is kept' : 'no version recorded yet'}`
        );
        return;
      case 'hot':
        this.later(p, info, 'hot', c.waitMs);
        return;
      case 'unstable':
        this.later(p, info, 'unstable');
        return;
    }
    if (!this.ensureParents(out, p)) {
      if (c.tmp) {
        fs.rmSync(c.tmp, { force: true });
      }
      return;
    }
    const mode = c.stat.mode & 0o7777;
    const stored = storeCaptured(this.c.layout, c, this.verified, out.dirsToSync);
    if (stored.replacedDamaged) {
      this.c.noteError(`store: the object ${c.hash} did not match its hash and was written again from ${p}`);
    }
    const obj = this.c.layout.object(c.hash);
    if (stored.stored && c.data) {
      this.c.checkpoints.add(obj);
    }
    this.c.coverage.covered(p);
    const meta: Metadata = this.c.source.metadata(p, c.stat.uid, c.stat.gid);
    if (
      known?.op === 'file' &&
      known.hash === c.hash &&
      known.mode === mode &&
      unchangedVersion(known, c.stat) &&
      sameMetadata(known.meta ?? {}, meta)
    ) {
      return;
    }
    // Until a checkpoint has fsynced the object, the record carries the content itself.
    const data = c.data && this.c.checkpoints.waits(obj) ? c.data.toString('base64') : undefined;
    this.emit(out, {
      at: this.stamp(),
      op: 'file',
      path: p,
      hash: c.hash,
      size: c.size,
      mode,
      mtimeMs: c.stat.mtimeMs,
      ctimeMs: c.stat.ctimeMs,
      ino: c.stat.ino,
      meta,
      ...(data === undefined ? {} : { data }),
    });
  }

  /**
   * Tries a path again later: after `waitMs` for a file that has not held still long enough
   * ('hot'), or with a growing delay for a read that did not check out ('unstable'). A path that
   * keeps failing is reported as changing, its last consistent version kept.
   */
  private later(p: string, info: Pending, why: 'hot' | 'unstable', waitMs?: number): void {
    info.dirty = false;
    if (why === 'unstable') {
      info.attempts++;
    }
    const now = Date.now();
    if (now - info.seenAt > this.c.changingAfterMs) {
      const last = this.c.tree().get(p);
      this.c.coverage.notCovered(
        p,
        'changing',
        `changing faster than it can be read consistently; ${last ? `its version of ${new Date(last.at).toISOString()} is kept` : 'no version recorded yet'}`,
        info.seenAt
      );
    }
    const delay = why === 'hot' ? Math.max(1, waitMs ?? 1) : UNSTABLE_RETRY_MS * Math.min(info.attempts, 20);
    this.c.queue.retry(p, info, delay);
  }

  /** Drops what is tracked about `p` and everything under it (deleted, or not a file any more). */
  private forget(p: string, gone: boolean): void {
    this.c.links.forgetUnder(p);
    this.c.mapped.forgetUnder(p);
    if (gone) {
      this.c.coverage.gone(p);
    }
  }
}
