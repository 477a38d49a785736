// Comparing the source with the tree: the catch-up at start, the rescan every --rescan-every,
// a subtree when a directory appears or a watch limit leaves it to polling. Every difference
// is queued (queue.ts); directories found are watched. What cannot be read is reported as not
// covered and its known contents are kept: unreadable is unknown, never deleted.
import * as fs from 'node:fs';
import type { Coverage } from './coverage';
import { decodeName, fsPath, holdShort, joinFs, viaShort } from './fspath';
import type { Version } from './journal';
import type { HardLinks, MappedFiles } from './links';
import { recordsOwner, sameMetadata, sameOwner } from './metadata';
import type { ChangeQueue } from './queue';
import { DirLister, STAT_FIELDS } from './scan';
import type { Source } from './source';
import { within, type VersionTree } from './tree';
import type { TreeWatcher } from './watch';

const { S_IFMT, S_IFREG, S_IFDIR, S_IFLNK } = fs.constants;

/** Size, times, inode and mode as recorded: equal means the content is taken as unchanged. */
export function unchanged(e: Version | undefined, st: fs.Stats): boolean {
  return unchangedRaw(e, st.mode, st.size, st.mtimeMs, st.ctimeMs, st.ino, st.uid, st.gid);
}

/** unchanged() on an lstat's numbers (as a directory listing worker sends them). */
function unchangedRaw(
  e: Version | undefined,
  mode: number,
  size: number,
  mt: number,
  ct: number,
  ino: number,
  uid: number,
  gid: number
): boolean {
  if (!e) {
    return false;
  }
  const type = mode & S_IFMT;
  if (type === S_IFREG) {
    return (
      e.op === 'file' &&
      e.size === size &&
      e.mtimeMs === mt &&
      e.ctimeMs === ct &&
      e.ino === ino &&
      e.mode === (mode & 0o7777)
    );
  }
  // A directory's change time moves with every entry: its owner is compared instead (a
  // record from before owners were recorded has none to compare).
  if (type === S_IFDIR) {
    return e.op === 'dir' && e.mode === (mode & 0o7777) && sameOwner(e.meta, uid, gid);
  }
  if (type === S_IFLNK) {
    return e.op === 'link' && e.mtimeMs === mt && e.ctimeMs === ct && e.ino === ino;
  }
  return true;
}

/** Marks the entries a scan met (a symbol: never serialised), cheaper than a set of 100,000 paths. */
const SEEN = Symbol('seen');
type Stamped = Version & { [SEEN]?: number };

/** What a scan works with: the replicator's parts. */
export interface ScanContext {
  source: Source;
  tree: () => VersionTree;
  queue: ChangeQueue;
  coverage: Coverage;
  links: HardLinks;
  mapped: MappedFiles;
  watcher: TreeWatcher;
  /** Set once the replicator stops: no new watches, and an unfinished walk says nothing. */
  closing: () => boolean;
}

export class Scanner {
  private stamp = 0;
  /** Lists the whole tree for full scans, off the event loop. */
  private readonly lister = new DirLister();
  private fullScanMs = 0;

  constructor(private readonly c: ScanContext) {}

  /** How long the last full scan took. */
  get lastFullScanMs(): number {
    return this.fullScanMs;
  }

  /** Starts the listing threads (their start-up overlaps the journal's replay). */
  warm(): void {
    this.lister.warm();
  }

  close(): void {
    this.lister.close();
  }

  /**
   * Compares the subtree `rel` of the source ('' for all of it) with the tree and queues every
   * difference (also into `outstanding`, the catch-up's list). Nothing when the source cannot
   * be trusted right now. Returns the entries met, the differences, and when it looked.
   */
  async scan(rel: string, outstanding: Set<string> | null): Promise<{ scanned: number; changed: number; at: number }> {
    const now = Date.now();
    if (this.c.source.check()) {
      return { scanned: 0, changed: 0, at: now };
    }
    const tree = this.c.tree();
    const stamp = ++this.stamp;
    const started = Date.now();
    let scanned = 0;
    let changed = 0;
    let known = 0;
    const queue = (p: string, size: number) => {
      changed++;
      this.c.queue.add(p, now, size, false);
      outstanding?.add(p);
    };
    const hadDir = rel === '' || tree.get(rel)?.op === 'dir';
    /** Keeps what the tree has under an unreadable `dir` as it is (met, so not taken for deleted). */
    const keepUnder = (dir: string, code: string) => {
      this.c.coverage.unreadableDir(dir, code);
      for (const [k, e] of tree) {
        if (k === dir || !within(k, dir) || (e as Stamped)[SEEN] === stamp) {
          continue;
        }
        (e as Stamped)[SEEN] = stamp;
        known++;
      }
    };
    // This is the cost of a catch-up: one readdir per directory and one lstat per entry,
    // nothing else that grows with the tree. A directory found is watched before it is listed.
    const entry = (
      p: string,
      mode: number,
      size: number,
      mt: number,
      ct: number,
      ino: number,
      nlink: number,
      dev: number,
      uid: number,
      gid: number
    ): boolean => {
      scanned++;
      const e = tree.get(p);
      if (e) {
        known++;
        (e as Stamped)[SEEN] = stamp;
      }
      const type = mode & S_IFMT;
      if (type === S_IFREG) {
        if (nlink > 1 || this.c.links.has(p)) {
          this.c.links.note(p, dev, ino, nlink);
        }
        this.c.mapped.devices.add(dev);
      }
      if (!unchangedRaw(e, mode, size, mt, ct, ino, uid, gid)) {
        queue(p, type === S_IFREG ? size : 0);
      }
      // Nothing in a directory's stat tells of a new extended attribute: they are compared.
      else if (
        type === S_IFDIR &&
        e?.op === 'dir' &&
        recordsOwner(e.meta) &&
        !sameMetadata(e.meta ?? {}, this.c.source.metadata(p, uid, gid, true))
      ) {
        queue(p, 0);
      }
      if (type !== S_IFDIR) {
        return false;
      }
      if (!this.c.closing() && !this.c.watcher.isWatched(p) && this.c.watcher.polledRoot(p) === undefined) {
        if (this.c.watcher.add(p) === 'unreadable') {
          return false;
        }
      }
      return true;
    };
    const listed = (
      dir: string,
      names: string[],
      stats: ArrayLike<number>,
      unreadable: Array<{ name: string; code: string }> | undefined
    ) => {
      const subdirs: string[] = [];
      if (this.c.coverage.unreadableDirs.delete(dir)) {
        this.c.coverage.covered(dir);
      }
      for (let i = 0, k = 0; i < names.length; i++, k += STAT_FIELDS) {
        const p = dir === '' ? (names[i] as string) : `${dir}/${names[i] as string}`;
        const f = (j: number) => stats[k + j] as number;
        if (entry(p, f(0), f(1), f(2), f(3), f(4), f(5), f(6), f(7), f(8))) {
          subdirs.push(p);
        }
      }
      for (const u of unreadable ?? []) {
        const p = dir === '' ? u.name : `${dir}/${u.name}`;
        keepUnder(p, u.code);
        const e = tree.get(p);
        if (e && (e as Stamped)[SEEN] !== stamp) {
          (e as Stamped)[SEEN] = stamp;
          known++;
        }
      }
      return subdirs;
    };
    const unlisted = (dir: string, code: string) => {
      // Gone meanwhile: its deletion is queued below or by an event. Unreadable: kept.
      if (code !== 'ENOENT' && code !== 'ENOTDIR') {
        keepUnder(dir, code);
      }
    };
    if (rel === '') {
      // The whole tree: listed by the worker threads while this thread compares.
      const walked = this.lister.walk(
        rel,
        (dir) => holdShort(fsPath(this.c.source.root, dir), 3800),
        (l) => {
          if (l.names === null) {
            unlisted(l.dir, l.code ?? 'error');
            return [];
          }
          return listed(l.dir, l.names, l.stats, l.unreadable);
        }
      );
      try {
        await walked;
      } catch (e) {
        // stop() ends the listing threads: an unfinished walk says nothing about deletions.
        if (this.c.closing()) {
          return { scanned, changed, at: now };
        }
        throw e;
      }
      this.fullScanMs = Date.now() - started;
    } else {
      const stack: string[] = [rel];
      while (stack.length > 0) {
        const dir = stack.pop() as string;
        const abs = fsPath(this.c.source.root, dir);
        let raw: Buffer[];
        try {
          raw = viaShort(abs, (a) => fs.readdirSync(a, { encoding: 'buffer' }));
        } catch (e) {
          unlisted(dir, (e as NodeJS.ErrnoException).code ?? 'error');
          continue;
        }
        const names: string[] = [];
        const stats: number[] = [];
        const unreadable: Array<{ name: string; code: string }> = [];
        for (const b of raw) {
          const name = decodeName(b);
          try {
            const st = viaShort(joinFs(abs, name), (a) => fs.lstatSync(a, { throwIfNoEntry: false }));
            if (!st) {
              continue;
            }
            names.push(name);
            stats.push(st.mode, st.size, st.mtimeMs, st.ctimeMs, st.ino, st.nlink, st.dev, st.uid, st.gid);
          } catch (e) {
            const code = (e as NodeJS.ErrnoException).code ?? 'error';
            if (code !== 'ENOENT' && code !== 'ENOTDIR') {
              unreadable.push({ name, code });
            }
          }
        }
        stack.push(...listed(dir, names, stats, unreadable));
        if (scanned % 5000 === 0) {
          await new Promise((r) => setImmediate(r));
        }
      }
    }
    // Whatever the tree has there and the walk did not meet is gone. When every known path was
    // met (the usual case), there is nothing to look for.
    if (hadDir) {
      let expected = tree.size;
      if (rel !== '') {
        expected = 0;
        for (const k of tree.keys()) {
          if (k !== rel && within(k, rel)) {
            expected++;
          }
        }
      }
      if (known !== expected) {
        for (const [k, e] of tree) {
          if ((e as Stamped)[SEEN] !== stamp && k !== rel && within(k, rel)) {
            queue(k, 0);
          }
        }
      }
    }
    return { scanned, changed, at: now };
  }
}
