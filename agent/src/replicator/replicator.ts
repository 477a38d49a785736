// The replicator: captures every change under `source` into the store in `target`.
//
// Flow: changes are seen (inotify events, or scans) and queued by path; a batch of queued
// paths is examined against the source, new contents are stored as objects, and the batch's
// journal records are appended and fsynced (the acknowledgement); only then is the mirror
// updated. At every start the journal is replayed and the source compared with it (the
// catch-up), so changes made while nothing ran are captured too.
import { copyObjectForMirror } from './mirror';
import { authenticateWriter, loadJournalKey } from './journalauth';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { hashBuffer, implementation, loadHasher, type HashChoice } from './digest';
import { pathOf, type FileRecord, type JournalRecord, type NewRecord } from './journal';
import { collectGarbage, pruneJournal, type PruneResult } from './retention';
import {
  JournalWriter,
  LeaseLostError,
  SEGMENT_BYTES,
  describeDamage,
  highestEpoch,
  replay,
  resolveChain,
  sealSegment,
  writeSnapshot,
  type ChainSegment,
} from './segments';
import { captureFile, storeCaptured, type Capture, type FileVersion } from './capture';
import { StoreLayout, acquireLease, cleanTmp, fsyncDirAsync, holdsLease, isOwnerOnly, markOwnerOnly, prepareStore, releaseLease, renewLease, type Lease } from './store';
import { DIR_MODE, FILE_MODE, OBJECT_MODE, tightenAll, tightenTop, type Tightened } from './modes';
import { apply, parentOf, within, type Entry, type Tree } from './tree';
import { DirLister, STAT_FIELDS } from './scan';
import { decodeName, dirnameFs, displayPath, encodeName, fsPath, holdShort, joinFs, mkdirp, rmrf, viaShort, type FsPath } from './fspath';
import { deviceOf, writableMappings } from './mappings';
import { readMetadata, sameMetadata, type Metadata } from './metadata';
import { EventFence, TreeWatcher, type WatchLimit } from './watch';
import { isSameProcessAlive, procInfo } from '../kinds/procfs';
import type { Logger } from '../log';
import { statusSchema, type ReplicatorStatus } from './status';
import { summary as verifySummary, verifyStore, VerifyCancelled } from './verify';

export interface ReplicatorOptions {
  source: string;
  target: string;
  retentionMs: number;
  /** Where the agent reads this replicator's progress; rewritten atomically. */
  statusFile?: string;
  node: string;
  name: string;
  maxWatches: number;
  pollEveryMs: number;
  rescanEveryMs: number;
  leaseStaleAfterMs: number;
  leaseRenewMs: number;
  pruneEveryMs: number;
  /** How long a small object may stay without its own fsync (its record carries the content). */
  checkpointEveryMs: number;
  /** The content hash of a new store (an existing store keeps the one its marker names). */
  hash?: HashChoice;
  /** How long a file must have held still before it is read (see capture.ts). */
  settleMs: number;
  /** A file not read consistently for this long is reported as changing. */
  changingAfterMs: number;
  /** A key file: the journal's records then carry a MAC (journalauth.ts). */
  journalKeyFile?: string;
  /** Verify the store in the background this often (read-only, paced); 0 or absent: never. */
  verifyEveryMs?: number;
  log: Logger;
}

interface Pending {
  seenAt: number;
  size: number;
  /** Seen by an event: the content is read even when size and times look unchanged. */
  event: boolean;
  attempts: number;
  /** A change notification arrived while it was being read: that read is not used. */
  dirty?: boolean;
  /** Its parent directory's watch reported it (a directory replaced, moved, changed). */
  dirEvent?: boolean;
}

/** A path whose changes are not being captured right now, and why. */
interface NotCovered {
  /** unreadable: permissions or I/O; changing: never held still; mapped: written through a shared mapping. */
  kind: 'unreadable' | 'changing' | 'mapped';
  reason: string;
  since: number;
}

/** Small batches keep the first change of a burst from waiting for the last one. */
const BATCH_PATHS = 128;
const BATCH_BYTES = 64 * 1024 * 1024;
/**
 * Whatever their size, this many files share a batch, so large files are copied and hashed
 * side by side (the hashing threads and the kernel's copies overlap) instead of one batch,
 * with its fsyncs, after another.
 */
const BATCH_MIN_PATHS = 4;
/** Files read and stored side by side; the thread pool (UV_THREADPOOL_SIZE) runs their I/O. */
const CAPTURE_CONCURRENCY = Math.max(4, Number(process.env.UV_THREADPOOL_SIZE) || 16);
const STATUS_EVERY_MS = 1000;
const STATUS_MIN_GAP_MS = 100;
const UNSTABLE_RETRY_MS = 50;
/** At most this many paths are listed in the status (all are counted). */
const NOT_COVERED_LISTED = 20;
const LATENCY_SAMPLES = 10_000;
/** At most this many objects wait for a checkpoint, whatever the time. */
const CHECKPOINT_MAX_OBJECTS = 4096;
/**
 * A snapshot of the tree is written when a segment is sealed and at least four times this many
 * records (and four times as many as the tree has paths) were written since the last one: a
 * start then replays at most about five times the tree's size, and snapshots take at most a
 * quarter of the room records take.
 */
const SNAPSHOT_MIN_RECORDS = 10_000;
const snapshotDue = (since: number, paths: number) => since >= 4 * Math.max(SNAPSHOT_MIN_RECORDS, paths);

function modeOf(st: fs.Stats): number {
  return st.mode & 0o7777;
}

const { S_IFMT, S_IFREG, S_IFDIR, S_IFLNK } = fs.constants;

/** Size, times, inode and mode as recorded: equal means the content is taken as unchanged. */
function unchanged(e: Entry | undefined, st: fs.Stats): boolean {
  return unchangedRaw(e, st.mode, st.size, st.mtimeMs, st.ctimeMs, st.ino, st.uid, st.gid);
}

/** Whether a file record describes the version a capture read (content aside). */
function unchangedVersion(e: Entry, v: FileVersion): boolean {
  return e.op === 'file' && e.s === v.size && e.mt === v.mtimeMs && e.ct === v.ctimeMs && e.ino === v.ino && e.m === (v.mode & 0o7777);
}

/** unchanged() on an lstat's numbers (as a directory listing worker sends them). */
function unchangedRaw(e: Entry | undefined, mode: number, size: number, mt: number, ct: number, ino: number, uid: number, gid: number): boolean {
  if (!e) {return false;}
  const type = mode & S_IFMT;
  if (type === S_IFREG) {return e.op === 'file' && e.s === size && e.mt === mt && e.ct === ct && e.ino === ino && e.m === (mode & 0o7777);}
  // A directory's change time moves with every entry: its owner is compared instead (a
  // record from before owners were recorded has none to compare).
  if (type === S_IFDIR) {return e.op === 'dir' && e.m === (mode & 0o7777) && (e.u === undefined || (e.u === uid && e.g === gid));}
  if (type === S_IFLNK) {return e.op === 'link' && e.mt === mt && e.ct === ct && e.ino === ino;}
  return true;
}

function percentile(sorted: number[], p: number): number | null {
  if (sorted.length === 0) {return null;}
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

/** Marks the entries a scan met (a symbol: never serialised), cheaper than a set of 100,000 paths. */
const SEEN = Symbol('seen');
type Stamped = Entry & { [SEEN]?: number };

const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());

export class Replicator {
  readonly layout: StoreLayout;
  private tree: Tree = new Map();
  private journal?: JournalWriter;
  private watcher: TreeWatcher;
  private lease?: Lease;
  private pending = new Map<string, Pending>();
  private inFlight = new Map<string, Pending>();
  /** Files that changed while being read, waiting to be read again. */
  private retrying = new Map<string, Pending>();
  private state: ReplicatorStatus['state'] = 'starting';
  private message: string | null = null;
  private lastChangeAt: number | null = null;
  private lastReplicatedAt: number | null = null;
  /** Until the first catch-up finishes: since when changes may be uncaptured. */
  private atRiskBeforeCatchUp: number;
  private catchUp: ReplicatorStatus['catchUp'] = { startedAt: null, finishedAt: null, scanned: 0, changed: 0, scanMs: null };
  private catchUpOutstanding: Set<string> | null = null;
  private latencies: number[] = [];
  private lastPrune: PruneResult | null = null;
  private earliest: number | null = null;
  /** Records written since the last tree snapshot (or replayed at start since it). */
  private sinceSnapshot = 0;
  /** Bytes of the journal's sealed segments (the current one is the writer's). */
  private sealedBytes = 0;
  private segmentCount = 0;
  /** Set after an unclean stop: unreferenced objects may be left; the next pruning looks for them. */
  private garbageLikely = false;
  /** Objects whose bytes were checked against their name in this run (emptied by pruning). */
  private verified = new Set<string>();
  /** Orders change notifications against reads (see capture.ts). */
  private fence: EventFence;
  /** Paths whose changes are not captured right now (unreadable, changing too fast), with why and since when. */
  private uncovered = new Map<string, NotCovered>();
  private scanStamp = 0;
  /** Lists the whole tree for full scans, off the event loop. */
  private lister = new DirLister();
  /** Objects written without their own fsync (their records carry the content). */
  private unsynced = new Set<string>();
  private checkpointTimer?: NodeJS.Timeout;
  private checkpointDue = false;
  /** The source root's identity: another directory there (an unmounted disk) is not a mass delete. */
  private sourceId?: { dev: number; ino: number };
  private sourceProblem: string | null = null;
  private blocked?: NodeJS.Timeout;
  private timers: NodeJS.Timeout[] = [];
  private work: Promise<unknown> = Promise.resolve();
  private draining = false;
  /** Set by stop(): no new work is taken. */
  private closing = false;
  private statusWrittenAt = 0;
  private statusTimer?: NodeJS.Timeout;
  private readonly errors: string[] = [];
  private fatal?: (e: Error) => void;

  constructor(private readonly o: ReplicatorOptions) {
    this.layout = new StoreLayout(o.target);
    this.watcher = new TreeWatcher(
      o.source,
      (rel) => this.onEvent(rel),
      (rel) => this.onEvent(rel),
      o.maxWatches,
      (rel, code) => this.notCovered(rel, 'unreadable', `cannot be read (${code}): changes in it are not seen; the last recorded versions are kept`),
    );
    this.fence = new EventFence(path.join(this.layout.tmp, 'fence'));
    this.atRiskBeforeCatchUp = this.previousSafePoint() ?? Date.now();
  }

  private logTightened(t: Tightened): void {
    if (t.modes === 0 && t.unlinked === 0) {return;}
    this.o.log.warn('store permissions tightened: other users could read it', {
      store: this.o.target,
      entries: t.modes,
      mirrorLinksCopied: t.unlinked,
      examples: t.examples,
    });
  }

  /** From the previous run's status: the last moment everything seen was acknowledged. */
  private previousSafePoint(): number | null {
    if (!this.o.statusFile) {return null;}
    try {
      const s = statusSchema.parse(JSON.parse(fs.readFileSync(this.o.statusFile, 'utf8')));
      this.lastChangeAt = s.lastChangeAt ? Date.parse(s.lastChangeAt) : null;
      this.lastReplicatedAt = s.lastReplicatedAt ? Date.parse(s.lastReplicatedAt) : null;
      return Date.parse(s.atRiskSince ?? s.writtenAt);
    } catch {
      return null;
    }
  }

  /** Runs until stop(); rejects on an error that makes further writing unsafe. */
  async run(): Promise<void> {
    const failed = new Promise<never>((_, reject) => (this.fatal = reject));
    await Promise.race([this.startUp(), failed]);
    await failed;
  }

  private die(e: unknown): void {
    this.o.log.error('replicator failed', { error: e });
    this.fatal?.(e instanceof Error ? e : new Error(String(e)));
  }

  private async startUp(): Promise<void> {
    const st = fs.statSync(this.o.source, { throwIfNoEntry: false });
    if (!st?.isDirectory()) {throw new Error(`source ${this.o.source} is not a directory`);}
    const src = fs.realpathSync(this.o.source);
    fs.mkdirSync(this.o.target, { recursive: true });
    const tgt = fs.realpathSync(this.o.target);
    if (within(tgt, src) || within(src, tgt)) {throw new Error(`source ${src} and target ${tgt} must not contain each other`);}
    const hash = prepareStore(this.layout, this.o.hash ?? 'auto');
    await loadHasher(hash);
    if (this.o.hash !== undefined && this.o.hash !== 'auto' && this.o.hash !== hash) {
      this.o.log.warn('the store keeps the hash algorithm it was created with', { store: hash, requested: this.o.hash });
    }
    this.o.log.info('store opened', { target: this.o.target, hash, hashing: implementation(hash) });
    this.logTightened(tightenTop(this.layout));
    this.lister.warm(); // its start-up overlaps the journal's replay
    this.statusTimer = setInterval(() => this.writeStatus(true), STATUS_EVERY_MS);
    this.writeStatus(true);

    await this.takeLease();
    if (this.closing) {return;}
    // Renewed from now on, however long the replay and the catch-up take.
    this.every(this.o.leaseRenewMs, () => this.renew());
    cleanTmp(this.layout);
    if (!isOwnerOnly(this.layout)) {
      // A store of an earlier version: made owner-only, its mirror's hard links copied, once.
      this.logTightened(tightenAll(this.layout));
      markOwnerOnly(this.layout);
    }
    this.fence.open();
    await this.openJournal(this.lease as Lease);
    await this.exclusive(() => this.checkpoint());
    await this.exclusive(() => this.sealLeftovers());

    // An empty source where the journal knows files is far likelier an unmounted disk than a
    // wipe while nothing ran: wait for it rather than record every path as deleted.
    for (;;) {
      let problem: string | null = null;
      try {
        if (fs.readdirSync(this.o.source).length === 0 && this.tree.size > 0) {
          problem = `source ${this.o.source} is empty while the store knows ${this.tree.size} paths: not recording them as deleted (an unmounted disk?); waiting`;
        }
      } catch (e) {
        // Unreadable is not empty: nothing is recorded until it can be read.
        problem = `source ${this.o.source} cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); waiting`;
      }
      if (problem === null || this.closing) {break;}
      if (this.sourceProblem !== problem) {
        this.sourceProblem = problem;
        this.o.log.error('not recording: the source is not available', { source: this.o.source, problem, knownPaths: this.tree.size });
        this.writeStatus(true);
      }
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
    if (this.closing) {return;}
    this.sourceProblem = null;
    const rootStat = fs.statSync(this.o.source);
    this.sourceId = { dev: rootStat.dev, ino: rootStat.ino };

    this.state = 'catching_up';
    this.catchUp = { startedAt: new Date().toISOString(), finishedAt: null, scanned: 0, changed: 0, scanMs: null };
    this.writeStatus(true);
    const t0 = Date.now();
    this.catchUpOutstanding = new Set();
    this.watcher.add('');
    const outstanding = this.catchUpOutstanding;
    const found = await this.exclusive(() => this.scan('', outstanding));
    if (this.closing) {return;}
    this.catchUp.scanned = found.scanned;
    this.catchUp.changed = found.changed;
    this.catchUp.scanMs = Date.now() - t0;
    this.o.log.info('catch-up scan done', { scanned: found.scanned, changed: found.changed, ms: this.catchUp.scanMs });
    this.kick();
    this.checkCaughtUp();

    this.every(this.o.pollEveryMs, () => this.pollLimited());
    this.scheduleRescan();
    this.every(this.o.pruneEveryMs, () => void this.prune().catch((e: unknown) => this.die(e)));
    void this.prune().catch((e: unknown) => this.die(e));
    this.scheduleVerify();
  }

  // ---- scheduled verify ----

  private lastVerify: ReplicatorStatus['verify'] = null;
  private verifyTimer?: NodeJS.Timeout;

  /**
   * Every --verify-every (after the previous one finished), the store is verified beside the
   * capture, read-only: it works in slices of 20 ms with as long a rest after each, so capture
   * keeps the event loop (a journal segment is read in one piece, though).
   */
  private scheduleVerify(): void {
    const every = this.o.verifyEveryMs ?? 0;
    if (every <= 0 || this.closing) {return;}
    this.verifyTimer = setTimeout(() => {
      verifyStore(this.o.target, { pace: { workMs: 20, restMs: 20 }, cancelled: () => this.closing })
        .then((r) => {
          this.lastVerify = verifySummary(r);
          if (r.ok) {this.o.log.info('store verified', { problems: 0, ms: r.ms, records: r.checked.records, objects: r.checked.objects });}
          else {this.o.log.error('store verify found problems', { problems: r.problems.length, first: r.problems.slice(0, 5).map((p) => p.message), ms: r.ms });}
          this.writeStatus(true);
        })
        .catch((e: unknown) => {
          if (e instanceof VerifyCancelled) {return;}
          this.o.log.warn('store verify failed', { error: e });
          this.noteError(`verify: ${(e as Error).message}`);
        })
        .finally(() => this.scheduleVerify());
    }, every);
  }

  /**
   * The whole tree is compared again every --rescan-every, as a safety net for what change
   * notifications miss (a full kernel queue); never more often than a hundred times the last
   * full scan took, so that it costs at most 1 % of the time on a huge tree.
   */
  private scheduleRescan(): void {
    if (this.closing) {return;}
    const wait = Math.max(this.o.rescanEveryMs, 100 * this.lastFullScanMs);
    this.rescanTimer = setTimeout(() => {
      void this.exclusive(() => this.scan('', null))
        .catch((e: unknown) => this.die(e))
        .finally(() => this.scheduleRescan());
    }, wait);
  }
  private rescanTimer?: NodeJS.Timeout;

  private every(ms: number, fn: () => void): void {
    const t = setInterval(fn, ms);
    this.timers.push(t);
  }

  private noteError(msg: string): void {
    this.errors.push(`${new Date().toISOString()} ${msg}`);
    if (this.errors.length > 20) {this.errors.shift();}
  }

  /**
   * Replays the journal (from the newest tree snapshot that fits) and starts this writer's own
   * segment after its last record. Damage and segments left out are reported, never repaired
   * by dropping records.
   */
  private async openJournal(lease: Lease): Promise<void> {
    const replayStart = Date.now();
    const auth = authenticateWriter(this.layout.root, this.o.journalKeyFile === undefined ? undefined : loadJournalKey(this.o.journalKeyFile));
    const chain = resolveChain(this.layout.root);
    let mirrorSeq = -1;
    try {
      mirrorSeq = Number(fs.readFileSync(this.layout.mirrorSeq, 'utf8').trim());
      if (!Number.isInteger(mirrorSeq)) {mirrorSeq = -1;}
    } catch {
      mirrorSeq = -1;
    }
    const rep = replay(chain, mirrorSeq < 0 ? Infinity : mirrorSeq);
    this.tree = rep.tree;
    this.earliest = rep.earliest;
    this.sinceSnapshot = rep.replayed;
    for (const p of chain.problems) {this.noteError(`journal: ${p}`);}
    for (const i of chain.ignored) {
      this.o.log.warn('journal segment left out', { segment: i.name, why: i.why });
      this.noteError(`journal: ${i.name} is not part of the journal (${i.why})`);
    }
    for (const d of rep.damage) {
      for (const line of describeDamage(d)) {
        this.o.log.error('journal damage', { detail: line });
        this.noteError(line);
      }
      if (d.tail) {
        this.o.log.warn('ignored a torn journal tail', { segment: d.segment, damage: d.tail.damage, bytes: d.tail.bytes });
        this.noteError(`journal: ignored ${d.tail.bytes} bytes after the last complete record of ${d.segment} (${d.tail.damage})`);
        this.garbageLikely = true;
      }
    }
    auth.start(rep.lastQ + 1);
    this.journal = new JournalWriter(this.layout.root, chain, rep.lastQ, rep.lastAt, lease.epoch, () => this.checkLease());
    this.refreshJournalSize();
    this.pendingSeal = chain.segments.map((seg, i) => ({ seg, last: Math.min(seg.last ?? Infinity, chain.segments[i + 1] ? (chain.segments[i + 1] as ChainSegment).first - 1 : rep.lastQ) }));
    this.o.log.info('journal replayed', {
      records: rep.replayed,
      fromSnapshot: rep.snapshot?.name ?? null,
      segments: chain.segments.length,
      paths: this.tree.size,
      ms: Date.now() - replayStart,
    });
    const lost = this.recoverUnsynced(rep.unsynced);
    if (lost > 0 || rep.lastSync < rep.lastQ) {this.garbageLikely = true;}
    if (fs.existsSync(path.join(this.layout.journal, 'prune-pending.json'))) {this.garbageLikely = true;}
    // Objects were lost, so the mirror's links may be too, whatever mirror.seq says: rebuild it.
    await this.repairMirror(lost > 0 || rep.touched === null ? null : rep.touched);
  }

  /** Segments that an earlier writer left unsealed (or without an index): sealed now. */
  private pendingSeal: Array<{ seg: ChainSegment; last: number }> = [];

  private async sealLeftovers(): Promise<void> {
    for (const { seg, last } of this.pendingSeal.splice(0)) {
      if (this.closing) {return;}
      // Sealed before (it has its index): nothing to do. The former writer's last segment has none.
      if (!seg.legacy && fs.existsSync(path.join(this.layout.journal, seg.name.replace(/\.log$/, '.idx')))) {continue;}
      const r = sealSegment(this.layout.root, this.layout.tmp, seg, last);
      if (r.strippedBytes > 0) {this.o.log.info('journal segment sealed', { segment: r.name, inlineBytesDropped: r.strippedBytes });}
    }
    if (snapshotDue(this.sinceSnapshot, this.tree.size)) {this.snapshotTree();}
    this.refreshJournalSize();
  }

  private snapshotTree(): void {
    const journal = this.journal as JournalWriter;
    writeSnapshot(this.layout.root, this.layout.tmp, this.tree, { upTo: journal.lastSeq, at: journal.stamp(), epoch: journal.epoch, from: null });
    this.sinceSnapshot = 0;
  }

  private refreshJournalSize(): void {
    let bytes = 0;
    let count = 0;
    for (const name of fs.readdirSync(this.layout.journal)) {
      if (!name.endsWith('.log') || name === this.journal?.segment.name) {continue;}
      bytes += fs.statSync(path.join(this.layout.journal, name), { throwIfNoEntry: false })?.size ?? 0;
      count++;
    }
    this.sealedBytes = bytes;
    this.segmentCount = count + 1;
  }

  /** Fencing: before every append, the lease must still name this writer. */
  private checkLease(): void {
    if (!this.lease || !holdsLease(this.layout, this.lease)) {
      throw new LeaseLostError('the lease on the store was taken by another replicator; stopping to leave it a single writer');
    }
  }

  /** Seals the current segment and starts the next (at 64 MiB, or when it is older than the pruning period). */
  private async rollIfDue(): Promise<void> {
    const journal = this.journal;
    if (!journal || journal.empty || this.closing) {return;}
    if (journal.bytes < SEGMENT_BYTES && journal.age < this.o.pruneEveryMs) {return;}
    // Inline contents are dropped at sealing: the checkpoint makes their objects durable first.
    await this.checkpoint();
    const { sealed, last } = journal.roll();
    sealSegment(this.layout.root, this.layout.tmp, sealed, last);
    if (snapshotDue(this.sinceSnapshot, this.tree.size)) {this.snapshotTree();}
    this.refreshJournalSize();
  }

  private async takeLease(): Promise<void> {
    const startTicks = procInfo(process.pid)?.startTicks ?? null;
    let logged = false;
    for (;;) {
      const r = acquireLease(this.layout, {
        node: this.o.node,
        process: this.o.name,
        staleAfterMs: this.o.leaseStaleAfterMs,
        isAlive: isSameProcessAlive,
        startTicks,
        journalEpoch: () => highestEpoch(this.layout.root),
      });
      if (r.held) {
        this.lease = r.lease;
        this.message = null;
        this.o.log.info('lease taken', { store: this.o.target, node: this.o.node });
        return;
      }
      this.state = 'waiting_for_lease';
      this.message = r.reason;
      if (!logged) {this.o.log.warn('not writing: the store has another writer', { store: this.o.target, reason: r.reason, holder: r.holder });}
      logged = true;
      this.writeStatus(true);
      await new Promise((resolve) => setTimeout(resolve, 1000));
      if (this.closing) {return;}
    }
  }

  private renew(): void {
    if (!this.lease || this.closing) {return;}
    let ok: boolean;
    try {
      ok = renewLease(this.layout, this.lease);
    } catch (e) {
      this.noteError(`lease renewal failed: ${(e as Error).message}`);
      return;
    }
    if (!ok) {
      this.lease = undefined;
      this.die(new Error('the lease on the store was taken by another replicator; stopping to leave it a single writer'));
    }
  }

  // ---- mirror ----

  private mirrorPath(p: string): FsPath {
    return fsPath(this.layout.mirror, p);
  }

  /**
   * Makes mirror/p match the tree (the entry, or nothing). Paths of any length and bytes. A
   * content over 1 MiB is copied on the thread pool (a copy of 256 MiB would hold the event
   * loop for a good part of a second); callers run one at a time (exclusive, or at start).
   */
  private async syncMirror(p: string): Promise<void> {
    const dest = this.mirrorPath(p);
    const e = this.tree.get(p);
    const cur = viaShort(dest, (d) => fs.lstatSync(d, { throwIfNoEntry: false }));
    if (!e) {
      this.forgetMirrored(p, cur);
      rmrf(dest);
      return;
    }
    if (e.op !== 'file') {this.mirrored.delete(p);}
    if (e.op === 'dir') {
      if (cur && !cur.isDirectory()) {rmrf(dest);}
      if (!cur?.isDirectory()) {mkdirp(dest, DIR_MODE);}
      return;
    }
    if (cur?.isDirectory()) {
      this.forgetMirrored(p, cur);
      rmrf(dest);
    }
    mkdirp(dirnameFs(dest), DIR_MODE);
    const tmp = path.join(this.layout.tmp, `mirror-${process.pid}-${Math.random().toString(36).slice(2)}`);
    if (e.op === 'link') {
      fs.symlinkSync(encodeName(e.l), tmp);
      viaShort(dest, (d) => fs.renameSync(tmp, d));
      return;
    }
    // Unchanged: the file this replicator put there for this content, still in place.
    const known = this.mirrored.get(p);
    if (known && cur?.isFile() && known.h === e.h && known.ino === cur.ino && cur.nlink === 1) {return;}
    const ino = await copyObjectForMirror(this.layout, e.h, e.s, tmp);
    if (ino === undefined) {return;} // pruned or never stored: restore reports it
    viaShort(dest, (d) => fs.renameSync(tmp, d));
    this.mirrored.set(p, { h: e.h, ino });
  }

  /** Drops what `mirrored` knows of p and, when it was a directory, of everything under it. */
  private forgetMirrored(p: string, cur: fs.Stats | undefined): void {
    this.mirrored.delete(p);
    if (!cur?.isDirectory() || this.mirrored.size === 0) {return;}
    for (const k of this.mirrored.keys()) {if (k.startsWith(p + '/')) {this.mirrored.delete(k);}}
  }

  /** What each mirror file holds (content hash, inode), as this run wrote it: the mirror's "unchanged" check. */
  private readonly mirrored = new Map<string, { h: string; ino: number }>();

  private writeMirrorSeq(seq: number): void {
    const tmp = `${this.layout.mirrorSeq}.tmp`;
    fs.writeFileSync(tmp, `${seq}\n`, { mode: FILE_MODE });
    fs.renameSync(tmp, this.layout.mirrorSeq);
  }

  /**
   * After a crash, the mirror may lag the journal: redo the paths of records it had not
   * applied (`touched`), or everything (null).
   */
  private async repairMirror(touched: Set<string> | null): Promise<void> {
    if (touched === null) {
      // No record of progress: rebuild it all, removing what the tree does not have.
      const walk = (rel: string) => {
        const abs = rel === '' ? this.layout.mirror : this.mirrorPath(rel);
        for (const d of viaShort(abs, (a) => fs.readdirSync(a, { withFileTypes: true, encoding: 'buffer' }))) {
          const name = decodeName(d.name);
          const p = rel === '' ? name : `${rel}/${name}`;
          const e = this.tree.get(p);
          if (!e) {rmrf(this.mirrorPath(p));}
          else if (d.isDirectory() && e.op === 'dir') {walk(p);}
        }
      };
      walk('');
      for (const p of [...this.tree.keys()].sort()) {await this.syncMirror(p);}
    } else {
      for (const p of [...touched].sort()) {
        await this.syncMirror(p);
        // A directory that came back holds whatever the tree has under it.
        if (this.tree.get(p)?.op === 'dir') {for (const k of [...this.tree.keys()]) {if (k.startsWith(p + '/')) {await this.syncMirror(k);}}}
      }
      if (touched.size > 0) {this.o.log.info('mirror repaired after an unclean stop', { paths: touched.size });}
    }
    if (this.journal) {this.writeMirrorSeq(this.journal.lastSeq);}
  }

  // ---- seeing changes ----

  private onEvent(rel: string): void {
    if (this.closing) {return;}
    const now = Date.now();
    this.lastChangeAt = now;
    const flying = this.inFlight.get(rel);
    if (flying) {flying.dirty = true;}
    const prev = this.pending.get(rel) ?? this.retrying.get(rel);
    const st = this.lstatSource(rel);
    const size = st instanceof fs.Stats ? st.size : 0;
    // An event naming a directory the tree knows comes from its parent's watch: the entry itself changed.
    const dirEvent = prev?.dirEvent || this.tree.get(rel)?.op === 'dir' || this.watcher.isWatched(rel);
    this.pending.set(rel, { seenAt: prev?.seenAt ?? now, size, event: true, attempts: prev?.attempts ?? 0, ...(dirEvent ? { dirEvent } : {}) });
    this.kick();
  }

  /** Reports `p` as not covered (kept with its first `since` until it is covered again). */
  private notCovered(p: string, kind: NotCovered['kind'], reason: string, since = Date.now()): void {
    const cur = this.uncovered.get(p);
    if (cur?.reason === reason) {return;}
    if (!cur) {this.o.log.warn('not covered', { path: displayPath(p), reason });}
    this.uncovered.set(p, { kind, reason, since: cur?.since ?? since });
    this.scheduleStatus();
  }

  /** `p` (and with `subtree`, everything under it) is captured again, or gone. */
  private covered(p: string, subtree = false): void {
    if (this.uncovered.size === 0) {return;}
    const u = this.uncovered.get(p);
    // Still mapped for writing: captured now, at risk again from now on.
    if (u?.kind === 'mapped' && this.mapped.has(p) && !subtree) {u.since = Date.now();}
    else if (this.uncovered.delete(p)) {this.o.log.info('covered again', { path: displayPath(p) });}
    if (subtree) {for (const k of [...this.uncovered.keys()]) {if (within(k, p)) {this.uncovered.delete(k);}}}
  }

  /** Change notifications may have been lost (the kernel's queue overflowed): compare everything again. */
  private eventsLost(why: string): void {
    const now = Date.now();
    if (now - this.lastEventsLost > 10_000) {
      this.o.log.warn('change notifications may have been lost; rescanning the whole tree', { why });
      this.noteError(`change notifications may have been lost (${why}); the whole tree is compared again`);
    }
    this.lastEventsLost = now;
    if (this.rescanQueued) {return;}
    this.rescanQueued = true;
    void this.exclusive(async () => {
      this.rescanQueued = false;
      await this.scan('', null);
    }).catch((e: unknown) => this.die(e));
  }
  private lastEventsLost = 0;
  private rescanQueued = false;

  /**
   * Compares the subtree `rel` of the source with the tree and queues every difference.
   * Directories found are watched (unless a limit sends them to polling). A directory or entry
   * that cannot be read is reported as not covered and its known contents are kept as they
   * were: unreadable is unknown, never deleted.
   */
  private async scan(rel: string, outstanding: Set<string> | null): Promise<{ scanned: number; changed: number }> {
    if (this.checkSource()) {return { scanned: 0, changed: 0 };}
    const stamp = ++this.scanStamp;
    const started = Date.now();
    let scanned = 0;
    let changed = 0;
    let known = 0;
    const now = Date.now();
    const queue = (p: string, size: number) => {
      changed++;
      if (!this.pending.has(p) && !this.inFlight.has(p)) {this.pending.set(p, { seenAt: now, size, event: false, attempts: 0 });}
      outstanding?.add(p);
    };
    const hadDir = rel === '' || this.tree.get(rel)?.op === 'dir';
    /** Keeps what the tree has under an unreadable `dir` as it is (met, so not taken for deleted). */
    const keepUnder = (dir: string, code: string) => {
      this.notCovered(dir, 'unreadable', `cannot be read (${code}): changes in it are not seen; the last recorded versions are kept`);
      this.unreadableDirs.add(dir);
      for (const [k, e] of this.tree) {
        if (k === dir || !within(k, dir) || (e as Stamped)[SEEN] === stamp) {continue;}
        (e as Stamped)[SEEN] = stamp;
        known++;
      }
    };
    // This is the cost of a catch-up: one readdir per directory and one lstat per entry,
    // nothing else that grows with the tree. A directory found is watched before it is listed.
    const entry = (p: string, mode: number, size: number, mt: number, ct: number, ino: number, nlink: number, dev: number, uid: number, gid: number): boolean => {
      scanned++;
      const e = this.tree.get(p);
      if (e) {
        known++;
        (e as Stamped)[SEEN] = stamp;
      }
      const type = mode & S_IFMT;
      if (type === S_IFREG) {
        if (nlink > 1 || this.linkOf.has(p)) {this.noteLinks(p, dev, ino, nlink);}
        this.devices.add(dev);
      }
      if (!unchangedRaw(e, mode, size, mt, ct, ino, uid, gid)) {queue(p, type === S_IFREG ? size : 0);}
      // Nothing in a directory's stat tells of a new extended attribute: they are compared.
      else if (type === S_IFDIR && e?.op === 'dir' && e.u !== undefined && !sameMetadata(e, this.metadataOf(p, uid, gid, true))) {queue(p, 0);}
      if (type !== S_IFDIR) {return false;}
      if (!this.closing && !this.watcher.isWatched(p) && this.watcher.polledRoot(p) === undefined) {
        if (this.watcher.add(p) === 'unreadable') {return false;}
      }
      return true;
    };
    const listed = (dir: string, names: string[], stats: ArrayLike<number>, unreadable: Array<{ name: string; code: string }> | undefined) => {
      const subdirs: string[] = [];
      if (this.unreadableDirs.delete(dir)) {this.covered(dir);}
      for (let i = 0, k = 0; i < names.length; i++, k += STAT_FIELDS) {
        const p = dir === '' ? (names[i] as string) : `${dir}/${names[i] as string}`;
        const f = (j: number) => stats[k + j] as number;
        if (entry(p, f(0), f(1), f(2), f(3), f(4), f(5), f(6), f(7), f(8))) {subdirs.push(p);}
      }
      for (const u of unreadable ?? []) {
        const p = dir === '' ? u.name : `${dir}/${u.name}`;
        keepUnder(p, u.code);
        const e = this.tree.get(p);
        if (e && (e as Stamped)[SEEN] !== stamp) {
          (e as Stamped)[SEEN] = stamp;
          known++;
        }
      }
      return subdirs;
    };
    const unlisted = (dir: string, code: string) => {
      // Gone meanwhile: its deletion is queued below or by an event. Unreadable: kept.
      if (code !== 'ENOENT' && code !== 'ENOTDIR') {keepUnder(dir, code);}
    };
    if (rel === '') {
      // The whole tree: listed by the worker threads while this thread compares.
      const walked = this.lister.walk(
        rel,
        (dir) => holdShort(fsPath(this.o.source, dir), 3800),
        (l) => {
          if (l.names === null) {
            unlisted(l.dir, l.code ?? 'error');
            return [];
          }
          return listed(l.dir, l.names, l.stats, l.unreadable);
        },
      );
      try {
        await walked;
      } catch (e) {
        // stop() ends the listing threads: an unfinished walk says nothing about deletions.
        if (this.closing) {return { scanned, changed };}
        throw e;
      }
      this.lastFullScanMs = Date.now() - started;
    } else {
      const stack: string[] = [rel];
      while (stack.length > 0) {
        const dir = stack.pop() as string;
        const abs = fsPath(this.o.source, dir);
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
            if (!st) {continue;}
            names.push(name);
            stats.push(st.mode, st.size, st.mtimeMs, st.ctimeMs, st.ino, st.nlink, st.dev, st.uid, st.gid);
          } catch (e) {
            const code = (e as NodeJS.ErrnoException).code ?? 'error';
            if (code !== 'ENOENT' && code !== 'ENOTDIR') {unreadable.push({ name, code });}
          }
        }
        stack.push(...listed(dir, names, stats, unreadable));
        if (scanned % 5000 === 0) {await new Promise((r) => setImmediate(r));}
      }
    }
    // Whatever the tree has there and the walk did not meet is gone. When every known path was
    // met (the usual case), there is nothing to look for.
    if (hadDir) {
      let expected = this.tree.size;
      if (rel !== '') {
        expected = 0;
        for (const k of this.tree.keys()) {if (k !== rel && within(k, rel)) {expected++;}}
      }
      if (known !== expected) {
        for (const [k, e] of this.tree) {if ((e as Stamped)[SEEN] !== stamp && k !== rel && within(k, rel)) {queue(k, 0);}}
      }
    }
    if (changed > 0) {
      this.lastChangeAt = Math.max(this.lastChangeAt ?? 0, now);
      this.kick();
    }
    return { scanned, changed };
  }

  /**
   * What change notifications cannot cover, checked every --poll-every: subtrees a watch limit
   * left to scanning, directories and files that could not be read, hard-linked files without a
   * watch on their inode, files mapped for writing.
   */
  private pollLimited(): void {
    if (this.state === 'catching_up' || this.closing) {return;}
    void this.exclusive(async () => {
      for (const d of [...this.watcher.polled.keys()]) {await this.scan(d, null);}
      // Readable again (permissions changed back): watched afresh and compared.
      for (const d of [...this.unreadableDirs]) {
        let ok = false;
        try {
          viaShort(fsPath(this.o.source, d), (a) => fs.readdirSync(a));
          ok = true;
        } catch {
          ok = false;
        }
        if (!ok) {continue;}
        this.unreadableDirs.delete(d);
        this.covered(d);
        this.watcher.remove(d);
        if (this.watcher.polledRoot(d) === undefined) {this.watcher.add(d);}
        await this.scan(d, null);
      }
      const now = Date.now();
      for (const [p, u] of this.uncovered) {
        if (u.kind === 'unreadable' && !this.unreadableDirs.has(p) && !this.pending.has(p)) {this.pending.set(p, { seenAt: now, size: 0, event: true, attempts: 0 });}
      }
      for (const key of this.polledInodes) {for (const p of this.links.get(key) ?? []) {this.recheck(p, now);}}
      this.checkMappings(now);
      this.lastPollAt = now;
      if (this.pending.size > 0) {this.kick();}
    }).catch((e: unknown) => this.die(e));
  }

  /** Queues `p` when its stat differs from its record (or, `always`, to read it anyway). */
  private recheck(p: string, now: number, always = false): void {
    const st = this.lstatSource(p);
    const e = this.tree.get(p);
    if (!always && st instanceof fs.Stats && unchanged(e, st)) {return;}
    if (!this.pending.has(p) && !this.inFlight.has(p)) {this.pending.set(p, { seenAt: now, size: st instanceof fs.Stats ? st.size : 0, event: true, attempts: 0 });}
  }

  /** Drops what is tracked about `p` and everything under it (deleted, or not a file any more). */
  private forget(p: string, gone: boolean): void {
    if (this.linkOf.size > 0) {for (const k of [...this.linkOf.keys()]) {if (within(k, p)) {this.unlink(k);}}}
    if (this.mapped.size > 0) {for (const k of [...this.mapped]) {if (within(k, p)) {this.mapped.delete(k);}}}
    if (gone) {for (const k of [...this.unreadableDirs]) {if (within(k, p)) {this.unreadableDirs.delete(k);}}}
  }

  // ---- hard links ----

  /** Hard-linked files of the tree by inode ("dev:ino"), and each path's inode. */
  private links = new Map<string, Set<string>>();
  private linkOf = new Map<string, string>();
  /** Inodes without a watch of their own (budget or system limit): checked every --poll-every. */
  private polledInodes = new Set<string>();
  /** Devices the tree's files live on (for matching memory mappings). */
  private devices = new Set<number>();

  /**
   * Keeps the hard-link groups current. A file with more than one link is written through any
   * of its names, and a change notification names only the one used (or none, for a name
   * outside the tree): its inode is watched, and a change to it queues every name in the tree.
   */
  private noteLinks(p: string, dev: number, ino: number, nlink: number): void {
    const key = nlink > 1 ? `${dev}:${ino}` : undefined;
    const old = this.linkOf.get(p);
    if (old === key) {return;}
    if (old !== undefined) {this.unlink(p);}
    if (key === undefined) {return;}
    let group = this.links.get(key);
    if (!group) {
      group = new Set();
      this.links.set(key, group);
      if (!this.watcher.watchInode(key, p, () => this.onInodeChange(key))) {this.polledInodes.add(key);}
    }
    group.add(p);
    this.linkOf.set(p, key);
  }

  private unlink(p: string): void {
    const key = this.linkOf.get(p);
    if (key === undefined) {return;}
    this.linkOf.delete(p);
    const group = this.links.get(key);
    group?.delete(p);
    if (group && group.size === 0) {
      this.links.delete(key);
      this.polledInodes.delete(key);
      this.watcher.unwatchInode(key);
    }
  }

  private onInodeChange(key: string): void {
    for (const p of this.links.get(key) ?? []) {this.onEvent(p);}
  }

  // ---- memory mappings ----

  /** Files mapped for writing by some process, as last found. */
  private mapped = new Set<string>();

  /**
   * Files mapped for writing are read again at every check (writes through a mapping raise no
   * notification), with their version checked twice; they are listed as not covered, at risk
   * since the last check.
   */
  private checkMappings(now: number): void {
    const devices = new Set([...this.devices].map(deviceOf));
    if (this.sourceId) {devices.add(deviceOf(this.sourceId.dev));}
    const maps = writableMappings(devices);
    const found = new Map<string, string>();
    if (maps.size > 0) {
      const byIno = new Map<number, { device: string; comm: string; pids: number[] }>();
      for (const m of maps.values()) {byIno.set(m.ino, m);}
      for (const [p, e] of this.tree) {
        if (e.op !== 'file') {continue;}
        const m = byIno.get(e.ino);
        if (m) {found.set(p, `mapped for writing by pid ${m.pids.slice(0, 3).join(', ')} (${m.comm}): its changes are not notified and are checked every ${Math.round(this.o.pollEveryMs / 1000)} s`);}
      }
    }
    for (const p of this.mapped) {
      if (found.has(p)) {continue;}
      this.mapped.delete(p);
      if (this.uncovered.get(p)?.kind === 'mapped') {this.covered(p);}
    }
    for (const [p, reason] of found) {
      this.mapped.add(p);
      // At risk since the last check, not since it was first found: each check reads it.
      this.uncovered.set(p, { kind: 'mapped', reason, since: this.lastPollAt ?? now });
      this.recheck(p, now, true);
    }
  }
  private lastPollAt: number | null = null;
  private lastFullScanMs = 0;
  /** Directories that could not be read, looked at again every --poll-every. */
  private unreadableDirs = new Set<string>();

  /** Why the source cannot be trusted right now (null: it can). */
  private checkSource(): string | null {
    const st = fs.statSync(this.o.source, { throwIfNoEntry: false });
    let problem: string | null = null;
    if (!st?.isDirectory()) {problem = `source ${this.o.source} is missing`;}
    else if (this.sourceId && (st.dev !== this.sourceId.dev || st.ino !== this.sourceId.ino)) {
      problem = `source ${this.o.source} is another directory than at start (unmounted or replaced)`;
    }
    if (problem && problem !== this.sourceProblem) {
      this.o.log.error('not recording: the source is not available', { problem });
      this.noteError(`${problem}; nothing is recorded until it is back`);
      // Its watches are on the old directory: a new start watches and catches up with the new one.
      if (st?.isDirectory()) {this.die(new Error(`${problem}; exiting so that a restart watches it afresh`));}
    }
    if (!problem && this.sourceProblem) {this.o.log.info('the source is back', { source: this.o.source });}
    this.sourceProblem = problem;
    return problem;
  }

  /** Holds the queue while the source is unavailable, and looks again in a second. */
  private block(): void {
    if (this.blocked) {return;}
    this.blocked = setTimeout(() => {
      this.blocked = undefined;
      this.kick();
    }, 1000);
  }

  // ---- capturing ----

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.work.then(fn, fn);
    this.work = run.catch(() => undefined);
    return run;
  }

  private kick(): void {
    if (this.draining || this.closing || !this.journal || this.blocked) {return;}
    this.draining = true;
    setImmediate(() => {
      void this.exclusive(() => this.drain())
        .catch((e: unknown) => this.die(e))
        .finally(() => {
          this.draining = false;
          if (this.pending.size > 0 && !this.closing) {this.kick();}
        });
    });
  }

  private async drain(): Promise<void> {
    while (this.pending.size > 0 && this.journal) {
      if (this.checkSource()) {
        this.block();
        return;
      }
      const batch: Array<[string, Pending]> = [];
      let bytes = 0;
      for (const [p, info] of this.pending) {
        batch.push([p, info]);
        bytes += info.size;
        if (batch.length >= BATCH_PATHS || (bytes >= BATCH_BYTES && batch.length >= BATCH_MIN_PATHS)) {break;}
      }
      for (const [p, info] of batch) {
        this.pending.delete(p);
        this.inFlight.set(p, info);
      }
      await this.processBatch(batch);
      await this.rollIfDue();
      this.scheduleStatus();
      // A long burst must not pile up objects without fsync: checkpoint on time, inside it.
      if (this.checkpointDue || this.unsynced.size >= CHECKPOINT_MAX_OBJECTS) {await this.checkpoint();}
    }
  }

  private async processBatch(batch: Array<[string, Pending]>): Promise<void> {
    const journal = this.journal as JournalWriter;
    // Parents first, so a directory's record precedes its contents'.
    batch.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    const stats = new Map<string, fs.Stats | null | { unreadable: string }>();
    for (const [p] of batch) {stats.set(p, this.lstatSource(p));}
    // Read contents in parallel; decide in order.
    const captures = new Map<string, Promise<Capture>>();
    const toCapture = batch.filter(([p, info]) => {
      const st = stats.get(p);
      return st instanceof fs.Stats && st.isFile() && (info.event || !unchanged(this.tree.get(p), st));
    });
    let next = 0;
    const workers = Array.from({ length: Math.min(CAPTURE_CONCURRENCY, toCapture.length) }, async () => {
      while (next < toCapture.length) {
        const [p] = toCapture[next++] as [string, Pending];
        const pr = captureFile(this.layout, this.src(p), { settleMs: this.o.settleMs, twice: this.mapped.has(p) });
        captures.set(p, pr);
        await pr.catch(() => undefined);
      }
    });
    await Promise.all(workers);
    // Every change notification the kernel queued until now is delivered after this: a write
    // that overlapped a read has marked its path dirty by then.
    const fenced = toCapture.length === 0 || (await this.fence.pass());
    if (!fenced) {this.eventsLost('a fence after the reads did not come back');}

    const records: NewRecord[] = [];
    const dirsToSync = new Set<string>();
    const newDirs: string[] = [];
    const emit = (r: NewRecord) => {
      records.push(r);
      apply(this.tree, { q: 0, ...r } as JournalRecord);
    };
    const ensureParents = (p: string) => {
      const missing: string[] = [];
      for (let d = parentOf(p); d !== '' && this.tree.get(d)?.op !== 'dir'; d = parentOf(d)) {missing.unshift(d);}
      for (const d of missing) {
        const st = this.lstatSource(d);
        if (!(st instanceof fs.Stats) || !st.isDirectory()) {return false;}
        emit({ at: journal.stamp(), op: 'dir', p: d, m: modeOf(st), mt: st.mtimeMs, ...this.metadataOf(d, st.uid, st.gid) });
      }
      return true;
    };
    for (const [p, info] of batch) {
      const st = stats.get(p) ?? null;
      const known = this.tree.get(p);
      if (st !== null && !(st instanceof fs.Stats)) {
        // Not "gone": unknown. The last version stays the recorded one until it can be seen
        // again. (A path the tree does not know lies in a directory that is reported itself.)
        if (known) {this.notCovered(p, 'unreadable', `cannot be read (${st.unreadable}); its last recorded version is kept`);}
        continue;
      }
      if (st === null) {
        if (known) {
          emit({ at: journal.stamp(), op: 'del', p });
          if (known.op === 'dir') {this.watcher.remove(p);}
        }
        this.covered(p, true);
        this.forget(p, true);
        continue;
      }
      if (st.isFile()) {this.noteLinks(p, st.dev, st.ino, st.nlink);}
      else if (this.linkOf.has(p) || this.mapped.has(p)) {this.forget(p, false);}
      if (st.isDirectory()) {
        if (!ensureParents(p)) {continue;}
        if (!known || known.op !== 'dir') {newDirs.push(p);}
        else if (info.dirEvent || (this.watcher.isWatched(p) && this.watcher.inodeOf(p) !== st.ino)) {
          // Its parent reported it (created, deleted, moved, changed): it may be another
          // directory by the same name, even on the same inode, and the watch on the old one
          // sees nothing of the new one. Watch it afresh and compare its contents.
          this.watcher.remove(p);
          newDirs.push(p);
        }
        const meta = this.metadataOf(p, st.uid, st.gid);
        if (!unchanged(known, st) || !sameMetadata(known as Entry, meta)) {emit({ at: journal.stamp(), op: 'dir', p, m: modeOf(st), mt: st.mtimeMs, ...meta });}
        continue;
      }
      if (st.isSymbolicLink()) {
        let l: string;
        try {
          l = decodeName(viaShort(this.src(p), (a) => fs.readlinkSync(a, { encoding: 'buffer' })));
        } catch {
          this.later(p, info, 'unstable');
          continue;
        }
        if (!ensureParents(p)) {continue;}
        const meta = this.metadataOf(p, st.uid, st.gid);
        if (known?.op !== 'link' || known.l !== l || !unchanged(known, st) || !sameMetadata(known, meta)) {
          emit({ at: journal.stamp(), op: 'link', p, l, mt: st.mtimeMs, ct: st.ctimeMs, ino: st.ino, ...meta });
        }
        this.covered(p);
        continue;
      }
      if (!st.isFile()) {continue;} // sockets, fifos, devices: not protected
      const pr = captures.get(p);
      if (!pr) {continue;} // unchanged
      const c = await pr;
      if (c.kind === 'ok' && (info.dirty || !fenced)) {
        // A change notification arrived while it was read: the read may mix two writes.
        if (c.tmp) {fs.rmSync(c.tmp, { force: true });}
        this.later(p, info, 'unstable');
        continue;
      }
      switch (c.kind) {
        case 'gone':
          // Deleted or replaced while being read: look again.
          this.later(p, info, 'unstable');
          continue;
        case 'unreadable':
          this.notCovered(p, 'unreadable', `cannot be read (${c.code}); ${known ? 'its last recorded version is kept' : 'no version recorded yet'}`);
          continue;
        case 'hot':
          this.later(p, info, 'hot', c.waitMs);
          continue;
        case 'unstable':
          this.later(p, info, 'unstable');
          continue;
      }
      if (!ensureParents(p)) {
        if (c.tmp) {fs.rmSync(c.tmp, { force: true });}
        continue;
      }
      const m = c.stat.mode & 0o7777;
      const stored = storeCaptured(this.layout, c, this.verified, dirsToSync);
      if (stored.replacedDamaged) {this.noteError(`store: the object ${c.hash} did not match its hash and was written again from ${p}`);}
      const obj = this.layout.object(c.hash);
      if (stored.stored && c.data) {this.unsynced.add(obj);}
      this.covered(p);
      const meta = this.metadataOf(p, c.stat.uid, c.stat.gid);
      if (known?.op === 'file' && known.h === c.hash && known.m === m && unchangedVersion(known, c.stat) && sameMetadata(known, meta)) {continue;}
      // Until a checkpoint has fsynced the object, the record carries the content itself.
      const d = c.data && this.unsynced.has(obj) ? c.data.toString('base64') : undefined;
      emit({ at: journal.stamp(), op: 'file', p, h: c.hash, s: c.size, m, mt: c.stat.mtimeMs, ct: c.stat.ctimeMs, ino: c.stat.ino, ...meta, ...(d === undefined ? {} : { d }) });
    }
    // The renames into objects/ are durable before any record names them.
    await Promise.all([...dirsToSync].map((d) => fsyncDirAsync(d)));

    const acked = await journal.append(records);
    this.sinceSnapshot += acked.length;
    const ackAt = Date.now();
    const ackedPaths = new Set<string>();
    for (const r of acked) {
      const p = pathOf(r);
      if (p !== undefined) {ackedPaths.add(p);}
    }
    for (const [p, info] of batch) {
      this.inFlight.delete(p);
      if (info.event && ackedPaths.has(p)) {this.sample(ackAt - info.seenAt);}
    }
    if (acked.length > 0) {this.lastReplicatedAt = ackAt;}
    for (const p of ackedPaths) {await this.syncMirror(p);}
    if (this.unsynced.size > 0) {this.scheduleCheckpoint();}
    if (acked.length > 0) {this.writeMirrorSeq(journal.lastSeq);}
    if (this.earliest === null && acked[0]) {this.earliest = acked[0].at;}

    for (const d of newDirs) {
      if (this.watcher.polledRoot(d) === undefined) {this.watcher.add(d);}
      await this.scan(d, this.catchUpOutstanding);
    }
    if (this.catchUpOutstanding) {
      for (const [p] of batch) {this.catchUpOutstanding.delete(p);}
      this.checkCaughtUp();
    }
  }

  /** Owner, group and extended attributes of a source path (metadata.ts): what its record carries. */
  private metadataOf(p: string, uid: number, gid: number, quiet = false): Metadata {
    try {
      return viaShort(this.src(p), (a) => readMetadata(a, uid, gid, quiet ? undefined : (msg, fields) => this.o.log.warn(msg, { path: displayPath(p), ...fields })));
    } catch (e) {
      // A long path's directories could not be opened: gone or unreadable, which its lstat tells.
      return { u: uid, g: gid, xe: `not read: ${(e as NodeJS.ErrnoException).code ?? 'error'}` };
    }
  }

  /** lstat of a source path: the stats, null when it is gone, or why it cannot be seen. */
  private lstatSource(p: string): fs.Stats | null | { unreadable: string } {
    try {
      return viaShort(this.src(p), (a) => fs.lstatSync(a));
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? 'error';
      if (code === 'ENOENT' || code === 'ENOTDIR') {return null;}
      return { unreadable: code };
    }
  }

  /**
   * Tries a path again later: after `waitMs` for a file that has not held still long enough
   * ('hot'), or with a growing delay for a read that did not check out ('unstable'). A path that
   * keeps failing is reported as changing, its last consistent version kept.
   */
  private later(p: string, info: Pending, why: 'hot' | 'unstable', waitMs?: number): void {
    info.dirty = false;
    if (why === 'unstable') {info.attempts++;}
    const now = Date.now();
    if (now - info.seenAt > this.o.changingAfterMs) {
      const last = this.tree.get(p);
      this.notCovered(
        p,
        'changing',
        `changing faster than it can be read consistently; ${last ? `its version of ${new Date(last.at).toISOString()} is kept` : 'no version recorded yet'}`,
        info.seenAt,
      );
    }
    const delay = why === 'hot' ? Math.max(1, waitMs ?? 1) : UNSTABLE_RETRY_MS * Math.min(info.attempts, 20);
    this.retrying.set(p, info);
    setTimeout(() => {
      // Only the latest try of a path counts; an earlier timer has nothing left to do.
      if (this.retrying.get(p) !== info) {return;}
      this.retrying.delete(p);
      if (this.closing) {return;}
      // Queued even while this batch (which may still hold the path) finishes: batches run one at a time.
      if (!this.pending.has(p)) {this.pending.set(p, info);}
      this.kick();
    }, delay);
  }

  /** The source path of `p` for system calls (raw bytes for names that are not UTF-8; may be longer than PATH_MAX). */
  private src(p: string): FsPath {
    return fsPath(this.o.source, p);
  }

  private checkCaughtUp(): void {
    if (!this.catchUpOutstanding || this.catchUp.scanMs === null) {return;}
    if (this.catchUpOutstanding.size > 0) {return;}
    this.catchUpOutstanding = null;
    this.catchUp.finishedAt = new Date().toISOString();
    this.state = 'watching';
    this.o.log.info('caught up; watching', { watches: this.watcher.count, polled: [...this.watcher.polled.keys()] });
    this.writeStatus(true);
  }

  private sample(ms: number): void {
    this.latencies.push(ms);
    if (this.latencies.length > LATENCY_SAMPLES) {this.latencies.splice(0, this.latencies.length - LATENCY_SAMPLES);}
  }

  // ---- checkpoints ----

  private scheduleCheckpoint(): void {
    if (this.checkpointTimer || this.closing) {return;}
    this.checkpointTimer = setTimeout(() => {
      this.checkpointTimer = undefined;
      this.checkpointDue = true;
      void this.exclusive(() => this.checkpoint()).catch((e: unknown) => this.die(e));
    }, this.o.checkpointEveryMs);
  }

  /**
   * Makes the objects written without an fsync durable (many fsyncs side by side, which the
   * file system commits together), then records that with a sync record: from then on the
   * inline contents before it are not needed.
   */
  private async checkpoint(): Promise<void> {
    this.checkpointDue = false;
    if (!this.journal || this.unsynced.size === 0) {return;}
    const files = [...this.unsynced];
    this.unsynced.clear();
    const upTo = this.journal.lastSeq;
    let next = 0;
    const dirs = new Set<string>();
    const worker = async () => {
      while (next < files.length) {
        const f = files[next++] as string;
        dirs.add(path.dirname(f));
        const fh = await fs.promises.open(f, 'r').catch(() => undefined);
        if (!fh) {continue;} // pruned meanwhile
        try {
          await fh.datasync();
        } finally {
          await fh.close();
        }
      }
    };
    await Promise.all(Array.from({ length: CAPTURE_CONCURRENCY }, worker));
    await Promise.all([...dirs].map((d) => fsyncDirAsync(d)));
    await this.journal.append([{ at: this.journal.stamp(), op: 'sync', upTo }]);
    this.writeMirrorSeq(this.journal.lastSeq);
  }

  /**
   * After an unclean stop (a power loss at worst), objects written after the last sync record
   * may be missing or incomplete: rewrite them from their records' inline copies and fsync them.
   */
  private recoverUnsynced(records: readonly FileRecord[]): number {
    let rewritten = 0;
    let checked = 0;
    for (const r of records) {
      if (r.d === undefined) {continue;}
      const obj = this.layout.object(r.h);
      checked++;
      let ok = false;
      try {
        ok = hashBuffer(this.layout.hash, fs.readFileSync(obj)) === r.h;
      } catch {
        ok = false;
      }
      if (!ok) {
        const data = Buffer.from(r.d, 'base64');
        if (hashBuffer(this.layout.hash, data) !== r.h) {
          this.noteError(`store: the inline copy of ${r.p} (record ${r.q}) does not match its hash; its object could not be recovered`);
          continue;
        }
        const tmp = path.join(this.layout.tmp, `recover-${r.h}`);
        fs.writeFileSync(tmp, data, { mode: OBJECT_MODE });
        fs.renameSync(tmp, obj);
        rewritten++;
      }
      this.unsynced.add(obj);
    }
    if (rewritten > 0) {
      this.o.log.warn('objects rewritten from the journal after an unclean stop', { rewritten, checked });
      this.noteError(`store: ${rewritten} object(s) lost in an unclean stop were rewritten from the journal`);
    }
    return rewritten;
  }

  // ---- retention ----

  async prune(now = Date.now()): Promise<PruneResult | null> {
    return this.exclusive(async () => {
      const journal = this.journal;
      if (!journal || this.closing) {return null;}
      await this.rollIfDue();
      if (this.garbageLikely) {
        this.garbageLikely = false;
        this.verified.clear();
        const g = collectGarbage(this.layout, resolveChain(this.layout.root), []);
        if (g.objectsRemoved > 0) {this.o.log.info('unreferenced objects removed', g);}
      }
      const cutoff = now - this.o.retentionMs;
      // Nothing old enough to drop yet: no need to look.
      if (this.earliest === null || this.earliest >= cutoff) {return null;}
      const out = pruneJournal(this.layout, resolveChain(this.layout.root), journal.segment.name, cutoff, journal.epoch);
      if (!out) {return null;}
      this.verified.clear();
      this.earliest = out.earliest;
      this.lastPrune = out;
      this.refreshJournalSize();
      this.o.log.info('retention: pruned', { ...out, cutoff: iso(cutoff), earliest: iso(out.earliest) });
      return out;
    });
  }

  // ---- status ----

  private oldestPending(): number | null {
    let oldest: number | null = null;
    for (const m of [this.pending, this.inFlight, this.retrying]) {for (const v of m.values()) {if (oldest === null || v.seenAt < oldest) {oldest = v.seenAt;}}}
    return oldest;
  }

  private scheduleStatus(): void {
    const wait = STATUS_MIN_GAP_MS - (Date.now() - this.statusWrittenAt);
    if (wait <= 0) {this.writeStatus(false);}
    else if (!this.pendingStatus) {
      this.pendingStatus = setTimeout(() => {
        this.pendingStatus = undefined;
        this.writeStatus(false);
      }, wait);
    }
  }
  private pendingStatus?: NodeJS.Timeout;

  snapshot(): ReplicatorStatus {
    // Until a first catch-up finished, what changed while nothing ran is at risk too.
    const caughtUp = this.catchUp.finishedAt !== null;
    let oldest = this.oldestPending();
    // A known blind spot is never "lag 0": what is not covered is at risk since it stopped being.
    for (const u of this.uncovered.values()) {if (oldest === null || u.since < oldest) {oldest = u.since;}}
    // What is only scanned on a timer (a watch limit, hard links without a watch) is at risk since the last scan.
    if ((this.watcher.polled.size > 0 || this.polledInodes.size > 0) && this.lastPollAt !== null && (oldest === null || this.lastPollAt < oldest)) {
      oldest = this.lastPollAt;
    }
    const atRisk = caughtUp ? oldest : Math.min(this.atRiskBeforeCatchUp, oldest ?? Infinity);
    const notCovered = [...this.uncovered.entries()]
      .sort((a, b) => a[1].since - b[1].since)
      .slice(0, NOT_COVERED_LISTED)
      .map(([p, u]) => ({ path: p, reason: u.reason, since: iso(u.since) as string }));
    let bytes = 0;
    for (const m of [this.pending, this.inFlight, this.retrying]) {for (const v of m.values()) {bytes += v.size;}}
    const sorted = [...this.latencies].sort((a, b) => a - b);
    const polled: WatchLimit[] = [...this.watcher.polled.values()];
    return {
      format: 1,
      pid: process.pid,
      name: this.o.name,
      writtenAt: new Date().toISOString(),
      state: this.state,
      message:
        this.sourceProblem ??
        this.message ??
        (notCovered.length > 0
          ? `${this.uncovered.size} path(s) not covered: ${notCovered
              .slice(0, 3)
              .map((u) => `${u.path} (${u.reason}, since ${u.since})`)
              .join('; ')}`
          : null) ??
        (polled.length > 0
          ? `watch limit reached: ${polled.length} subtree(s) scanned every ${this.o.pollEveryMs < 1000 ? `${this.o.pollEveryMs} ms` : `${Math.round(this.o.pollEveryMs / 1000)} s`} instead of watched (${polled
              .slice(0, 3)
              .map((l) => `${l.dir || '/'}: ${l.reason}`)
              .join('; ')})`
          : null),
      source: this.o.source,
      target: this.o.target,
      lastChangeAt: iso(this.lastChangeAt),
      lastReplicatedAt: iso(this.lastReplicatedAt),
      atRiskSince: iso(atRisk),
      pendingChanges: this.pending.size + this.inFlight.size + this.retrying.size,
      pendingBytes: bytes,
      notCovered,
      notCoveredCount: this.uncovered.size,
      watch: { watches: this.watcher.count, polled },
      catchUp: this.catchUp,
      journal: {
        seq: this.journal?.lastSeq ?? null,
        bytes: this.journal ? this.sealedBytes + this.journal.bytes : null,
        segments: this.segmentCount,
        earliestRestorable: iso(this.earliest),
        paths: this.tree.size,
      },
      latency: { count: sorted.length, p50Ms: percentile(sorted, 50), p99Ms: percentile(sorted, 99), maxMs: sorted[sorted.length - 1] ?? null },
      lastPrune: this.lastPrune ? { ...this.lastPrune, cutoff: iso(this.lastPrune.cutoff) as string, earliest: iso(this.lastPrune.earliest) as string } : null,
      errors: [...this.errors],
      verify: this.lastVerify,
    };
  }

  private writeStatus(force: boolean): void {
    if (!this.o.statusFile) {return;}
    if (!force && Date.now() - this.statusWrittenAt < STATUS_MIN_GAP_MS) {return;}
    this.statusWrittenAt = Date.now();
    const tmp = `${this.o.statusFile}.${process.pid}.tmp`;
    try {
      fs.writeFileSync(tmp, JSON.stringify(this.snapshot()) + '\n', { mode: 0o600 });
      fs.renameSync(tmp, this.o.statusFile);
    } catch (e) {
      this.o.log.warn('cannot write the status file', { file: this.o.statusFile, error: e });
    }
  }

  /**
   * Finishes what is queued (for at most 5 s), releases the lease and writes a last status.
   * After an error that makes writing unsafe (`failure`), nothing more is written but the
   * status, which says why: the process exits at once.
   */
  async stop(failure?: unknown): Promise<void> {
    if (this.closing) {return;}
    this.closing = true;
    for (const t of this.timers) {clearInterval(t);}
    this.watcher.closeAll();
    if (this.journal && failure === undefined) {
      const rest = this.exclusive(async () => {
        await this.drain();
        await this.checkpoint();
      });
      await Promise.race([rest.catch(() => undefined), new Promise((r) => setTimeout(r, 5000))]);
    }
    this.lister.close();
    this.fence.close();
    if (this.lease) {releaseLease(this.layout, this.lease);}
    this.journal?.close();
    if (failure !== undefined) {
      this.state = 'failed';
      this.message = `stopped on an error: ${failure instanceof Error ? failure.message : String(failure)}`;
    } else {this.state = 'stopped';}
    if (this.statusTimer) {clearInterval(this.statusTimer);}
    if (this.pendingStatus) {clearTimeout(this.pendingStatus);}
    if (this.checkpointTimer) {clearTimeout(this.checkpointTimer);}
    if (this.rescanTimer) {clearTimeout(this.rescanTimer);}
    if (this.verifyTimer) {clearTimeout(this.verifyTimer);}
    if (this.blocked) {clearTimeout(this.blocked);}
    this.writeStatus(true);
    this.fatal = undefined;
  }
}
