// The replicator: captures every change under `source` into the store in `target`.
//
// Flow: changes are seen (inotify events, or scans) and queued by path; a batch of queued
// paths is examined against the source, new contents are stored as objects, and the batch's
// journal records are appended and fsynced (the acknowledgement); only then is the mirror
// updated. At every start the journal is replayed and the source compared with it (the
// catch-up), so changes made while nothing ran are captured too.
//
// Its parts, each in its own module: the lease (leaseholder.ts), the journal it writes
// (journalkeeper.ts, in the readable form of journal.ts's codec), checkpoints (checkpoint.ts),
// the mirror (mirror.ts), what is not covered (coverage.ts), hard links and mappings
// (links.ts), the source (source.ts) and the status (report.ts). This class queues changes
// and turns each batch into records.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger } from '../log';
import { captureFile, storeCaptured, type Capture, type FileVersion } from './capture';
import { Checkpoints } from './checkpoint';
import { Coverage } from './coverage';
import { implementation, loadHasher, type HashAlgorithm, type HashChoice } from './digest';
import { decodeName, fsPath, holdShort, joinFs, viaShort } from './fspath';
import { pathOfChange, type Change, type FileChange, type NewChange, type Version } from './journal';
import { OpenJournal } from './journalkeeper';
import { LEASE_LOST, LeaseHolder } from './leaseholder';
import { HardLinks, MappedFiles } from './links';
import { recordsOwner, sameMetadata, sameOwner, type Metadata } from './metadata';
import { Mirror } from './mirror';
import { tightenAll, tightenTop, type Tightened } from './modes';
import { Latencies, StatusFile, iso, statusOf } from './report';
import { collectGarbage, type PruneResult } from './retention';
import { DirLister, STAT_FIELDS } from './scan';
import { resolveChain } from './segments';
import { Source, type SourceStat } from './source';
import { statusSchema, type ReplicatorStatus } from './status';
import { StoreLayout, cleanTmp, fsyncDirAsync, isOwnerOnly, markOwnerOnly, prepareStore } from './store';
import { applyChange, parentOf, within, type VersionTree } from './tree';
import { summary as verifySummary, verifyStore, VerifyCancelled } from './verify';
import { EventFence, TreeWatcher } from './watch';

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

type Batch = [string, Pending][];

/** What a batch records, and what follows from it once acknowledged. */
interface BatchOutcome {
  changes: NewChange[];
  /** Directories of new objects: fsynced before any record names them. */
  dirsToSync: Set<string>;
  /** Directories to watch and compare after the batch. */
  newDirs: string[];
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
const UNSTABLE_RETRY_MS = 50;

function modeOf(st: fs.Stats): number {
  return st.mode & 0o7777;
}

const { S_IFMT, S_IFREG, S_IFDIR, S_IFLNK } = fs.constants;

/** Size, times, inode and mode as recorded: equal means the content is taken as unchanged. */
function unchanged(e: Version | undefined, st: fs.Stats): boolean {
  return unchangedRaw(e, st.mode, st.size, st.mtimeMs, st.ctimeMs, st.ino, st.uid, st.gid);
}

/** Whether a file record describes the version a capture read (content aside). */
function unchangedVersion(e: FileChange, v: FileVersion): boolean {
  return e.size === v.size && e.mtimeMs === v.mtimeMs && e.ctimeMs === v.ctimeMs && e.ino === v.ino && e.mode === (v.mode & 0o7777);
}

/** unchanged() on an lstat's numbers (as a directory listing worker sends them). */
function unchangedRaw(e: Version | undefined, mode: number, size: number, mt: number, ct: number, ino: number, uid: number, gid: number): boolean {
  if (!e) return false;
  const type = mode & S_IFMT;
  if (type === S_IFREG) return e.op === 'file' && e.size === size && e.mtimeMs === mt && e.ctimeMs === ct && e.ino === ino && e.mode === (mode & 0o7777);
  // A directory's change time moves with every entry: its owner is compared instead (a
  // record from before owners were recorded has none to compare).
  if (type === S_IFDIR) return e.op === 'dir' && e.mode === (mode & 0o7777) && sameOwner(e.meta, uid, gid);
  if (type === S_IFLNK) return e.op === 'link' && e.mtimeMs === mt && e.ctimeMs === ct && e.ino === ino;
  return true;
}

/** Marks the entries a scan met (a symbol: never serialised), cheaper than a set of 100,000 paths. */
const SEEN = Symbol('seen');
type Stamped = Version & { [SEEN]?: number };

export class Replicator {
  readonly layout: StoreLayout;
  private tree: VersionTree = new Map();
  private journal?: OpenJournal;
  private readonly watcher: TreeWatcher;
  private readonly lease: LeaseHolder;
  private readonly checkpoints: Checkpoints;
  private readonly mirror: Mirror;
  private readonly coverage: Coverage;
  private readonly links: HardLinks;
  private readonly mapped = new MappedFiles();
  private readonly source: Source;
  private readonly status: StatusFile;
  private readonly latencies = new Latencies();
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
  private lastPrune: PruneResult | null = null;
  /** Set after an unclean stop: unreferenced objects may be left; the next pruning looks for them. */
  private garbageLikely = false;
  /** Objects whose bytes were checked against their name in this run (emptied by pruning). */
  private verified = new Set<string>();
  /** Orders change notifications against reads (see capture.ts). */
  private readonly fence: EventFence;
  private scanStamp = 0;
  /** Lists the whole tree for full scans, off the event loop. */
  private lister = new DirLister();
  private blocked?: NodeJS.Timeout;
  private timers: NodeJS.Timeout[] = [];
  private work: Promise<unknown> = Promise.resolve();
  private draining = false;
  /** Set by stop(): no new work is taken. */
  private closing = false;
  private statusTimer?: NodeJS.Timeout;
  private readonly errors: string[] = [];
  private fatal?: (e: Error) => void;
  private lastVerify: ReplicatorStatus['verify'] = null;
  private verifyTimer?: NodeJS.Timeout;
  private rescanTimer?: NodeJS.Timeout;
  private lastEventsLost = 0;
  private rescanQueued = false;
  private lastPollAt: number | null = null;
  private lastFullScanMs = 0;

  constructor(private readonly o: ReplicatorOptions) {
    this.layout = new StoreLayout(o.target);
    this.watcher = new TreeWatcher(
      o.source,
      (rel) => this.onEvent(rel),
      (rel) => this.onEvent(rel),
      o.maxWatches,
      (rel, code) => this.coverage.notCovered(rel, 'unreadable', `cannot be read (${code}): changes in it are not seen; the last recorded versions are kept`),
    );
    this.lease = new LeaseHolder(this.layout, { node: o.node, name: o.name, target: o.target, staleAfterMs: o.leaseStaleAfterMs, log: o.log });
    this.checkpoints = new Checkpoints(this.layout, o.checkpointEveryMs, CAPTURE_CONCURRENCY);
    this.mirror = new Mirror(this.layout, () => this.tree, o.log);
    this.status = new StatusFile(o.statusFile, () => this.snapshot(), o.log);
    this.coverage = new Coverage(o.log, () => this.status.schedule(), (p) => this.mapped.has(p));
    this.links = new HardLinks(this.watcher, (p) => this.onEvent(p));
    this.source = new Source(o.source, o.log, (problem, replaced) => {
      this.noteError(`${problem}; nothing is recorded until it is back`);
      // Its watches are on the old directory: a new start watches and catches up with the new one.
      if (replaced) this.die(new Error(`${problem}; exiting so that a restart watches it afresh`));
    });
    this.fence = new EventFence(path.join(this.layout.tmp, 'fence'));
    this.atRiskBeforeCatchUp = this.previousSafePoint() ?? Date.now();
  }

  private logTightened(t: Tightened): void {
    if (t.modes === 0 && t.unlinked === 0) return;
    this.o.log.warn('store permissions tightened: other users could read it', {
      store: this.o.target,
      entries: t.modes,
      mirrorLinksCopied: t.unlinked,
      examples: t.examples,
    });
  }

  /** From the previous run's status: the last moment everything seen was acknowledged. */
  private previousSafePoint(): number | null {
    if (!this.o.statusFile) return null;
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
    const hash = this.openStore();
    await loadHasher(hash);
    this.o.log.info('store opened', { target: this.o.target, hash, hashing: implementation(hash) });
    this.logTightened(tightenTop(this.layout));
    this.lister.warm(); // its start-up overlaps the journal's replay
    this.statusTimer = setInterval(() => this.status.write(true), STATUS_EVERY_MS);
    this.status.write(true);

    const lease = await this.lease.take((reason) => {
      this.state = 'waiting_for_lease';
      this.message = reason;
      this.status.write(true);
    }, () => this.closing);
    if (!lease || this.closing) return;
    this.message = null;
    // Renewed from now on, however long the replay and the catch-up take.
    this.every(this.o.leaseRenewMs, () => this.renew());
    cleanTmp(this.layout);
    if (!isOwnerOnly(this.layout)) {
      // A store of an earlier version: made owner-only, its mirror's hard links copied, once.
      this.logTightened(tightenAll(this.layout));
      markOwnerOnly(this.layout);
    }
    this.fence.open();
    await this.openJournal(lease.epoch);
    await this.exclusive(() => this.checkpoint());
    await this.exclusive(async () => this.journal?.sealLeftovers(this.tree, () => this.closing, this.o.log));
    await this.waitForSource();
    if (this.closing) return;
    await this.catchUpScan();
    if (this.closing) return;

    this.every(this.o.pollEveryMs, () => this.pollLimited());
    this.scheduleRescan();
    this.every(this.o.pruneEveryMs, () => void this.prune().catch((e: unknown) => this.die(e)));
    void this.prune().catch((e: unknown) => this.die(e));
    this.scheduleVerify();
  }

  /** Checks source and target, and prepares the store (its hash algorithm is the marker's). */
  private openStore(): HashAlgorithm {
    const st = fs.statSync(this.o.source, { throwIfNoEntry: false });
    if (!st?.isDirectory()) throw new Error(`source ${this.o.source} is not a directory`);
    const src = fs.realpathSync(this.o.source);
    fs.mkdirSync(this.o.target, { recursive: true });
    const tgt = fs.realpathSync(this.o.target);
    if (within(tgt, src) || within(src, tgt)) throw new Error(`source ${src} and target ${tgt} must not contain each other`);
    const hash = prepareStore(this.layout, this.o.hash ?? 'auto');
    if (this.o.hash !== undefined && this.o.hash !== 'auto' && this.o.hash !== hash) {
      this.o.log.warn('the store keeps the hash algorithm it was created with', { store: hash, requested: this.o.hash });
    }
    return hash;
  }

  /**
   * An empty source where the journal knows files is far likelier an unmounted disk than a
   * wipe while nothing ran: wait for it rather than record every path as deleted.
   */
  private async waitForSource(): Promise<void> {
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
      if (problem === null || this.closing) break;
      if (this.source.problem !== problem) {
        this.source.problem = problem;
        this.o.log.error('not recording: the source is not available', { source: this.o.source, problem, knownPaths: this.tree.size });
        this.status.write(true);
      }
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
    if (this.closing) return;
    this.source.problem = null;
    const rootStat = fs.statSync(this.o.source);
    this.source.id = { dev: rootStat.dev, ino: rootStat.ino };
  }

  /** The first comparison of the whole source with the journal's tree. */
  private async catchUpScan(): Promise<void> {
    this.state = 'catching_up';
    this.catchUp = { startedAt: new Date().toISOString(), finishedAt: null, scanned: 0, changed: 0, scanMs: null };
    this.status.write(true);
    const t0 = Date.now();
    this.catchUpOutstanding = new Set();
    this.watcher.add('');
    const outstanding = this.catchUpOutstanding;
    const found = await this.exclusive(() => this.scan('', outstanding));
    if (this.closing) return;
    this.catchUp.scanned = found.scanned;
    this.catchUp.changed = found.changed;
    this.catchUp.scanMs = Date.now() - t0;
    this.o.log.info('catch-up scan done', { scanned: found.scanned, changed: found.changed, ms: this.catchUp.scanMs });
    this.kick();
    this.checkCaughtUp();
  }

  // ---- scheduled verify ----

  /**
   * Every --verify-every (after the previous one finished), the store is verified beside the
   * capture, read-only: it works in slices of 20 ms with as long a rest after each, so capture
   * keeps the event loop (a journal segment is read in one piece, though).
   */
  private scheduleVerify(): void {
    const every = this.o.verifyEveryMs ?? 0;
    if (every <= 0 || this.closing) return;
    this.verifyTimer = setTimeout(() => {
      verifyStore(this.o.target, { pace: { workMs: 20, restMs: 20 }, cancelled: () => this.closing })
        .then((r) => {
          this.lastVerify = verifySummary(r);
          if (r.ok) this.o.log.info('store verified', { problems: 0, ms: r.ms, records: r.checked.records, objects: r.checked.objects });
          else this.o.log.error('store verify found problems', { problems: r.problems.length, first: r.problems.slice(0, 5).map((p) => p.message), ms: r.ms });
          this.status.write(true);
        })
        .catch((e: unknown) => {
          if (e instanceof VerifyCancelled) return;
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
    if (this.closing) return;
    const wait = Math.max(this.o.rescanEveryMs, 100 * this.lastFullScanMs);
    this.rescanTimer = setTimeout(() => {
      void this.exclusive(() => this.scan('', null))
        .catch((e: unknown) => this.die(e))
        .finally(() => this.scheduleRescan());
    }, wait);
  }

  private every(ms: number, fn: () => void): void {
    const t = setInterval(fn, ms);
    this.timers.push(t);
  }

  private noteError(msg: string): void {
    this.errors.push(`${new Date().toISOString()} ${msg}`);
    if (this.errors.length > 20) this.errors.shift();
  }

  // ---- the journal and the lease ----

  private async openJournal(epoch: number): Promise<void> {
    const opened = OpenJournal.open(this.layout, {
      journalKeyFile: this.o.journalKeyFile,
      epoch,
      checkLease: () => this.lease.check(),
      mirrorSeq: this.mirror.readSeq(),
      log: this.o.log,
      noteError: (msg) => this.noteError(msg),
    });
    this.journal = opened.journal;
    this.tree = opened.tree;
    if (opened.unclean) this.garbageLikely = true;
    const lost = this.checkpoints.recover(opened.unsynced, (msg) => this.noteError(msg), this.o.log);
    if (lost > 0) this.garbageLikely = true;
    // Objects were lost, so the mirror's links may be too, whatever mirror.seq says: rebuild it.
    await this.mirror.repair(lost > 0 ? null : opened.touched, this.journal.lastSeq);
  }

  /** Seals the current segment and starts the next (at 64 MiB, or when it is older than the pruning period). */
  private async rollIfDue(): Promise<void> {
    const journal = this.journal;
    if (!journal || this.closing || !journal.rollDue(this.o.pruneEveryMs)) return;
    // Inline contents are dropped at sealing: the checkpoint makes their objects durable first.
    await this.checkpoint();
    journal.roll(this.tree);
  }

  private renew(): void {
    if (this.closing) return;
    const r = this.lease.renew();
    if (r === 'lost') this.die(new Error(LEASE_LOST));
    else if (r instanceof Error) this.noteError(`lease renewal failed: ${r.message}`);
  }

  // ---- seeing changes ----

  private onEvent(rel: string): void {
    if (this.closing) return;
    const now = Date.now();
    this.lastChangeAt = now;
    const flying = this.inFlight.get(rel);
    if (flying) flying.dirty = true;
    const prev = this.pending.get(rel) ?? this.retrying.get(rel);
    const st = this.source.lstat(rel);
    const size = st instanceof fs.Stats ? st.size : 0;
    // An event naming a directory the tree knows comes from its parent's watch: the entry itself changed.
    const dirEvent = prev?.dirEvent || this.tree.get(rel)?.op === 'dir' || this.watcher.isWatched(rel);
    this.pending.set(rel, { seenAt: prev?.seenAt ?? now, size, event: true, attempts: prev?.attempts ?? 0, ...(dirEvent ? { dirEvent } : {}) });
    this.kick();
  }

  /** Change notifications may have been lost (the kernel's queue overflowed): compare everything again. */
  private eventsLost(why: string): void {
    const now = Date.now();
    if (now - this.lastEventsLost > 10_000) {
      this.o.log.warn('change notifications may have been lost; rescanning the whole tree', { why });
      this.noteError(`change notifications may have been lost (${why}); the whole tree is compared again`);
    }
    this.lastEventsLost = now;
    if (this.rescanQueued) return;
    this.rescanQueued = true;
    void this.exclusive(async () => {
      this.rescanQueued = false;
      await this.scan('', null);
    }).catch((e: unknown) => this.die(e));
  }

  /**
   * Compares the subtree `rel` of the source with the tree and queues every difference.
   * Directories found are watched (unless a limit sends them to polling). A directory or entry
   * that cannot be read is reported as not covered and its known contents are kept as they
   * were: unreadable is unknown, never deleted.
   */
  private async scan(rel: string, outstanding: Set<string> | null): Promise<{ scanned: number; changed: number }> {
    if (this.source.check()) return { scanned: 0, changed: 0 };
    const stamp = ++this.scanStamp;
    const started = Date.now();
    let scanned = 0;
    let changed = 0;
    let known = 0;
    const now = Date.now();
    const queue = (p: string, size: number) => {
      changed++;
      if (!this.pending.has(p) && !this.inFlight.has(p)) this.pending.set(p, { seenAt: now, size, event: false, attempts: 0 });
      outstanding?.add(p);
    };
    const hadDir = rel === '' || this.tree.get(rel)?.op === 'dir';
    /** Keeps what the tree has under an unreadable `dir` as it is (met, so not taken for deleted). */
    const keepUnder = (dir: string, code: string) => {
      this.coverage.unreadableDir(dir, code);
      for (const [k, e] of this.tree) {
        if (k === dir || !within(k, dir) || (e as Stamped)[SEEN] === stamp) continue;
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
        if (nlink > 1 || this.links.has(p)) this.links.note(p, dev, ino, nlink);
        this.mapped.devices.add(dev);
      }
      if (!unchangedRaw(e, mode, size, mt, ct, ino, uid, gid)) queue(p, type === S_IFREG ? size : 0);
      // Nothing in a directory's stat tells of a new extended attribute: they are compared.
      else if (type === S_IFDIR && e?.op === 'dir' && recordsOwner(e.meta) && !sameMetadata(e.meta ?? {}, this.source.metadata(p, uid, gid, true))) queue(p, 0);
      if (type !== S_IFDIR) return false;
      if (!this.closing && !this.watcher.isWatched(p) && this.watcher.polledRoot(p) === undefined) {
        if (this.watcher.add(p) === 'unreadable') return false;
      }
      return true;
    };
    const listed = (dir: string, names: string[], stats: ArrayLike<number>, unreadable: { name: string; code: string }[] | undefined) => {
      const subdirs: string[] = [];
      if (this.coverage.unreadableDirs.delete(dir)) this.coverage.covered(dir);
      for (let i = 0, k = 0; i < names.length; i++, k += STAT_FIELDS) {
        const p = dir === '' ? (names[i] as string) : `${dir}/${names[i] as string}`;
        const f = (j: number) => stats[k + j] as number;
        if (entry(p, f(0), f(1), f(2), f(3), f(4), f(5), f(6), f(7), f(8))) subdirs.push(p);
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
      if (code !== 'ENOENT' && code !== 'ENOTDIR') keepUnder(dir, code);
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
        if (this.closing) return { scanned, changed };
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
        const unreadable: { name: string; code: string }[] = [];
        for (const b of raw) {
          const name = decodeName(b);
          try {
            const st = viaShort(joinFs(abs, name), (a) => fs.lstatSync(a, { throwIfNoEntry: false }));
            if (!st) continue;
            names.push(name);
            stats.push(st.mode, st.size, st.mtimeMs, st.ctimeMs, st.ino, st.nlink, st.dev, st.uid, st.gid);
          } catch (e) {
            const code = (e as NodeJS.ErrnoException).code ?? 'error';
            if (code !== 'ENOENT' && code !== 'ENOTDIR') unreadable.push({ name, code });
          }
        }
        stack.push(...listed(dir, names, stats, unreadable));
        if (scanned % 5000 === 0) await new Promise((r) => setImmediate(r));
      }
    }
    // Whatever the tree has there and the walk did not meet is gone. When every known path was
    // met (the usual case), there is nothing to look for.
    if (hadDir) {
      let expected = this.tree.size;
      if (rel !== '') {
        expected = 0;
        for (const k of this.tree.keys()) if (k !== rel && within(k, rel)) expected++;
      }
      if (known !== expected) {
        for (const [k, e] of this.tree) if ((e as Stamped)[SEEN] !== stamp && k !== rel && within(k, rel)) queue(k, 0);
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
    if (this.state === 'catching_up' || this.closing) return;
    void this.exclusive(async () => {
      for (const d of [...this.watcher.polled.keys()]) await this.scan(d, null);
      // Readable again (permissions changed back): watched afresh and compared.
      for (const d of [...this.coverage.unreadableDirs]) {
        let ok = false;
        try {
          viaShort(this.source.path(d), (a) => fs.readdirSync(a));
          ok = true;
        } catch {
          ok = false;
        }
        if (!ok) continue;
        this.coverage.unreadableDirs.delete(d);
        this.coverage.covered(d);
        this.watcher.remove(d);
        if (this.watcher.polledRoot(d) === undefined) this.watcher.add(d);
        await this.scan(d, null);
      }
      const now = Date.now();
      for (const [p, u] of this.coverage.paths) {
        if (u.kind === 'unreadable' && !this.coverage.unreadableDirs.has(p) && !this.pending.has(p)) this.pending.set(p, { seenAt: now, size: 0, event: true, attempts: 0 });
      }
      for (const p of this.links.polledPaths()) this.recheck(p, now);
      this.checkMappings(now);
      this.lastPollAt = now;
      if (this.pending.size > 0) this.kick();
    }).catch((e: unknown) => this.die(e));
  }

  /** Queues `p` when its stat differs from its record (or, `always`, to read it anyway). */
  private recheck(p: string, now: number, always = false): void {
    const st = this.source.lstat(p);
    const e = this.tree.get(p);
    if (!always && st instanceof fs.Stats && unchanged(e, st)) return;
    if (!this.pending.has(p) && !this.inFlight.has(p)) this.pending.set(p, { seenAt: now, size: st instanceof fs.Stats ? st.size : 0, event: true, attempts: 0 });
  }

  /** Drops what is tracked about `p` and everything under it (deleted, or not a file any more). */
  private forget(p: string, gone: boolean): void {
    this.links.forgetUnder(p);
    this.mapped.forgetUnder(p);
    if (gone) this.coverage.gone(p);
  }

  /**
   * Files mapped for writing are read again at every check (writes through a mapping raise no
   * notification), with their version checked twice; they are listed as not covered, at risk
   * since the last check.
   */
  private checkMappings(now: number): void {
    const { found, dropped } = this.mapped.check(this.tree, this.source.id?.dev, this.o.pollEveryMs);
    for (const p of dropped) if (this.coverage.paths.get(p)?.kind === 'mapped') this.coverage.covered(p);
    for (const [p, reason] of found) {
      // At risk since the last check, not since it was first found: each check reads it.
      this.coverage.paths.set(p, { kind: 'mapped', reason, since: this.lastPollAt ?? now });
      this.recheck(p, now, true);
    }
  }

  /** Holds the queue while the source is unavailable, and looks again in a second. */
  private block(): void {
    if (this.blocked) return;
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
    if (this.draining || this.closing || !this.journal || this.blocked) return;
    this.draining = true;
    setImmediate(() => {
      void this.exclusive(() => this.drain())
        .catch((e: unknown) => this.die(e))
        .finally(() => {
          this.draining = false;
          if (this.pending.size > 0 && !this.closing) this.kick();
        });
    });
  }

  private async drain(): Promise<void> {
    while (this.pending.size > 0 && this.journal) {
      if (this.source.check()) {
        this.block();
        return;
      }
      await this.processBatch(this.takeBatch());
      await this.rollIfDue();
      this.status.schedule();
      // A long burst must not pile up objects without fsync: checkpoint on time, inside it.
      if (this.checkpoints.needed) await this.checkpoint();
    }
  }

  /** The next batch from the queue, moved in flight. */
  private takeBatch(): Batch {
    const batch: Batch = [];
    let bytes = 0;
    for (const [p, info] of this.pending) {
      batch.push([p, info]);
      bytes += info.size;
      if (batch.length >= BATCH_PATHS || (bytes >= BATCH_BYTES && batch.length >= BATCH_MIN_PATHS)) break;
    }
    for (const [p, info] of batch) {
      this.pending.delete(p);
      this.inFlight.set(p, info);
    }
    // Parents first, so a directory's record precedes its contents'.
    return batch.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  }

  private async processBatch(batch: Batch): Promise<void> {
    const journal = this.journal as OpenJournal;
    const stats = new Map<string, SourceStat>(batch.map(([p]) => [p, this.source.lstat(p)]));
    const { captures, fenced } = await this.readContents(batch, stats);
    const out = await this.decide(batch, stats, captures, fenced);
    // The renames into objects/ are durable before any record names them.
    await Promise.all([...out.dirsToSync].map((d) => fsyncDirAsync(d)));
    const acked = await journal.append(out.changes);
    await this.acknowledged(batch, acked);
    for (const d of out.newDirs) {
      if (this.watcher.polledRoot(d) === undefined) this.watcher.add(d);
      await this.scan(d, this.catchUpOutstanding);
    }
    if (this.catchUpOutstanding) {
      for (const [p] of batch) this.catchUpOutstanding.delete(p);
      this.checkCaughtUp();
    }
  }

  /** Reads the batch's changed files side by side, then passes the event fence. */
  private async readContents(batch: Batch, stats: Map<string, SourceStat>): Promise<{ captures: Map<string, Promise<Capture>>; fenced: boolean }> {
    const captures = new Map<string, Promise<Capture>>();
    const toCapture = batch.filter(([p, info]) => {
      const st = stats.get(p);
      return st instanceof fs.Stats && st.isFile() && (info.event || !unchanged(this.tree.get(p), st));
    });
    let next = 0;
    const workers = Array.from({ length: Math.min(CAPTURE_CONCURRENCY, toCapture.length) }, async () => {
      while (next < toCapture.length) {
        const [p] = toCapture[next++] as [string, Pending];
        const pr = captureFile(this.layout, this.source.path(p), { settleMs: this.o.settleMs, twice: this.mapped.has(p) });
        captures.set(p, pr);
        await pr.catch(() => undefined);
      }
    });
    await Promise.all(workers);
    // Every change notification the kernel queued until now is delivered after this: a write
    // that overlapped a read has marked its path dirty by then.
    const fenced = toCapture.length === 0 || (await this.fence.pass());
    if (!fenced) this.eventsLost('a fence after the reads did not come back');
    return { captures, fenced };
  }

  /** Decides, path by path in order, what the batch records; the tree follows at once. */
  private async decide(batch: Batch, stats: Map<string, SourceStat>, captures: Map<string, Promise<Capture>>, fenced: boolean): Promise<BatchOutcome> {
    const out: BatchOutcome = { changes: [], dirsToSync: new Set(), newDirs: [] };
    for (const [p, info] of batch) {
      const st = stats.get(p) ?? null;
      const known = this.tree.get(p);
      if (st !== null && !(st instanceof fs.Stats)) {
        // Not "gone": unknown. The last version stays the recorded one until it can be seen
        // again. (A path the tree does not know lies in a directory that is reported itself.)
        if (known) this.coverage.notCovered(p, 'unreadable', `cannot be read (${st.unreadable}); its last recorded version is kept`);
      } else if (st === null) this.decideGone(out, p, known);
      else {
        if (st.isFile()) this.links.note(p, st.dev, st.ino, st.nlink);
        else if (this.links.has(p) || this.mapped.has(p)) this.forget(p, false);
        if (st.isDirectory()) this.decideDir(out, p, info, st, known);
        else if (st.isSymbolicLink()) this.decideLink(out, p, info, st, known);
        else if (st.isFile() && captures.has(p)) await this.decideFile(out, p, info, await (captures.get(p) as Promise<Capture>), fenced, known);
        // otherwise unchanged, or sockets, fifos, devices: not protected
      }
    }
    return out;
  }

  private emit(out: BatchOutcome, c: NewChange): void {
    out.changes.push(c);
    applyChange(this.tree, { seq: 0, ...c } as Change);
  }

  /** Records the parent directories the tree lacks; false when one is not a directory (any more). */
  private ensureParents(out: BatchOutcome, p: string): boolean {
    const missing: string[] = [];
    for (let d = parentOf(p); d !== '' && this.tree.get(d)?.op !== 'dir'; d = parentOf(d)) missing.unshift(d);
    for (const d of missing) {
      const st = this.source.lstat(d);
      if (!(st instanceof fs.Stats) || !st.isDirectory()) return false;
      this.emit(out, { at: this.stamp(), op: 'dir', path: d, mode: modeOf(st), mtimeMs: st.mtimeMs, meta: this.source.metadata(d, st.uid, st.gid) });
    }
    return true;
  }

  private stamp(): number {
    return (this.journal as OpenJournal).stamp();
  }

  private decideGone(out: BatchOutcome, p: string, known: Version | undefined): void {
    if (known) {
      this.emit(out, { at: this.stamp(), op: 'del', path: p });
      if (known.op === 'dir') this.watcher.remove(p);
    }
    this.coverage.covered(p, true);
    this.forget(p, true);
  }

  private decideDir(out: BatchOutcome, p: string, info: Pending, st: fs.Stats, known: Version | undefined): void {
    if (!this.ensureParents(out, p)) return;
    if (!known || known.op !== 'dir') out.newDirs.push(p);
    else if (info.dirEvent || (this.watcher.isWatched(p) && this.watcher.inodeOf(p) !== st.ino)) {
      // Its parent reported it (created, deleted, moved, changed): it may be another
      // directory by the same name, even on the same inode, and the watch on the old one
      // sees nothing of the new one. Watch it afresh and compare its contents.
      this.watcher.remove(p);
      out.newDirs.push(p);
    }
    const meta = this.source.metadata(p, st.uid, st.gid);
    if (!unchanged(known, st) || !sameMetadata(known?.meta ?? {}, meta)) this.emit(out, { at: this.stamp(), op: 'dir', path: p, mode: modeOf(st), mtimeMs: st.mtimeMs, meta });
  }

  private decideLink(out: BatchOutcome, p: string, info: Pending, st: fs.Stats, known: Version | undefined): void {
    let linkTarget: string;
    try {
      linkTarget = this.source.readlink(p);
    } catch {
      this.later(p, info, 'unstable');
      return;
    }
    if (!this.ensureParents(out, p)) return;
    const meta = this.source.metadata(p, st.uid, st.gid);
    if (known?.op !== 'link' || known.linkTarget !== linkTarget || !unchanged(known, st) || !sameMetadata(known.meta ?? {}, meta)) {
      this.emit(out, { at: this.stamp(), op: 'link', path: p, linkTarget, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, ino: st.ino, meta });
    }
    this.coverage.covered(p);
  }

  private async decideFile(out: BatchOutcome, p: string, info: Pending, c: Capture, fenced: boolean, known: Version | undefined): Promise<void> {
    if (c.kind === 'ok' && (info.dirty || !fenced)) {
      // A change notification arrived while it was read: the read may mix two writes.
      if (c.tmp) fs.rmSync(c.tmp, { force: true });
      this.later(p, info, 'unstable');
      return;
    }
    switch (c.kind) {
      case 'gone':
        // Deleted or replaced while being read: look again.
        this.later(p, info, 'unstable');
        return;
      case 'unreadable':
        this.coverage.notCovered(p, 'unreadable', `cannot be read (${c.code}); ${known ? 'its last recorded version is kept' : 'no version recorded yet'}`);
        return;
      case 'hot':
        this.later(p, info, 'hot', c.waitMs);
        return;
      case 'unstable':
        this.later(p, info, 'unstable');
        return;
    }
    if (!this.ensureParents(out, p)) {
      if (c.tmp) fs.rmSync(c.tmp, { force: true });
      return;
    }
    const mode = c.stat.mode & 0o7777;
    const stored = storeCaptured(this.layout, c, this.verified, out.dirsToSync);
    if (stored.replacedDamaged) this.noteError(`store: the object ${c.hash} did not match its hash and was written again from ${p}`);
    const obj = this.layout.object(c.hash);
    if (stored.stored && c.data) this.checkpoints.add(obj);
    this.coverage.covered(p);
    const meta: Metadata = this.source.metadata(p, c.stat.uid, c.stat.gid);
    if (known?.op === 'file' && known.hash === c.hash && known.mode === mode && unchangedVersion(known, c.stat) && sameMetadata(known.meta ?? {}, meta)) return;
    // Until a checkpoint has fsynced the object, the record carries the content itself.
    const data = c.data && this.checkpoints.waits(obj) ? c.data.toString('base64') : undefined;
    this.emit(out, { at: this.stamp(), op: 'file', path: p, hash: c.hash, size: c.size, mode, mtimeMs: c.stat.mtimeMs, ctimeMs: c.stat.ctimeMs, ino: c.stat.ino, meta, ...(data === undefined ? {} : { data }) });
  }

  /** The batch's records are durable: latencies, the mirror, its sequence number, the next checkpoint. */
  private async acknowledged(batch: Batch, acked: Change[]): Promise<void> {
    const ackAt = Date.now();
    const ackedPaths = new Set<string>();
    for (const c of acked) {
      const p = pathOfChange(c);
      if (p !== undefined) ackedPaths.add(p);
    }
    for (const [p, info] of batch) {
      this.inFlight.delete(p);
      if (info.event && ackedPaths.has(p)) this.latencies.add(ackAt - info.seenAt);
    }
    if (acked.length > 0) this.lastReplicatedAt = ackAt;
    for (const p of ackedPaths) await this.mirror.sync(p);
    if (!this.closing) this.checkpoints.schedule(() => void this.exclusive(() => this.checkpoint()).catch((e: unknown) => this.die(e)));
    if (acked.length > 0) this.mirror.writeSeq((this.journal as OpenJournal).lastSeq);
  }

  /**
   * Tries a path again later: after `waitMs` for a file that has not held still long enough
   * ('hot'), or with a growing delay for a read that did not check out ('unstable'). A path that
   * keeps failing is reported as changing, its last consistent version kept.
   */
  private later(p: string, info: Pending, why: 'hot' | 'unstable', waitMs?: number): void {
    info.dirty = false;
    if (why === 'unstable') info.attempts++;
    const now = Date.now();
    if (now - info.seenAt > this.o.changingAfterMs) {
      const last = this.tree.get(p);
      this.coverage.notCovered(
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
      if (this.retrying.get(p) !== info) return;
      this.retrying.delete(p);
      if (this.closing) return;
      // Queued even while this batch (which may still hold the path) finishes: batches run one at a time.
      if (!this.pending.has(p)) this.pending.set(p, info);
      this.kick();
    }, delay);
  }

  private checkCaughtUp(): void {
    if (!this.catchUpOutstanding || this.catchUp.scanMs === null) return;
    if (this.catchUpOutstanding.size > 0) return;
    this.catchUpOutstanding = null;
    this.catchUp.finishedAt = new Date().toISOString();
    this.state = 'watching';
    this.o.log.info('caught up; watching', { watches: this.watcher.count, polled: [...this.watcher.polled.keys()] });
    this.status.write(true);
  }

  /** A checkpoint (checkpoint.ts); the mirror is current up to its sync record. */
  private async checkpoint(): Promise<void> {
    const journal = this.journal;
    if (journal && (await this.checkpoints.run(journal))) this.mirror.writeSeq(journal.lastSeq);
  }

  // ---- retention ----

  async prune(now = Date.now()): Promise<PruneResult | null> {
    return this.exclusive(async () => {
      const journal = this.journal;
      if (!journal || this.closing) return null;
      await this.rollIfDue();
      if (this.garbageLikely) {
        this.garbageLikely = false;
        this.verified.clear();
        const g = collectGarbage(this.layout, resolveChain(this.layout.root), []);
        if (g.objectsRemoved > 0) this.o.log.info('unreferenced objects removed', g);
      }
      const cutoff = now - this.o.retentionMs;
      const out = journal.prune(cutoff);
      if (!out) return null;
      this.verified.clear();
      this.lastPrune = out;
      this.o.log.info('retention: pruned', { ...out, cutoff: iso(cutoff), earliest: iso(out.earliest) });
      return out;
    });
  }

  // ---- status ----

  snapshot(): ReplicatorStatus {
    const journal = this.journal;
    const queued = [this.pending, this.inFlight, this.retrying].flatMap((m) => [...m.values()]);
    return statusOf({
      name: this.o.name,
      source: this.o.source,
      target: this.o.target,
      pollEveryMs: this.o.pollEveryMs,
      state: this.state,
      problem: this.source.problem ?? this.message,
      atRiskBeforeCatchUp: this.catchUp.finishedAt !== null ? null : this.atRiskBeforeCatchUp,
      queued,
      coverage: this.coverage,
      polled: [...this.watcher.polled.values()],
      watches: this.watcher.count,
      polledInodes: this.links.polledCount,
      lastPollAt: this.lastPollAt,
      lastChangeAt: this.lastChangeAt,
      lastReplicatedAt: this.lastReplicatedAt,
      catchUp: this.catchUp,
      journal: {
        seq: journal?.lastSeq ?? null,
        bytes: journal ? journal.sizes().bytes : null,
        segments: journal ? journal.sizes().segments : 0,
        earliestRestorable: iso(journal?.earliest ?? null),
        paths: this.tree.size,
      },
      latency: this.latencies.summary(),
      lastPrune: this.lastPrune,
      errors: this.errors,
      verify: this.lastVerify,
    });
  }

  /**
   * Finishes what is queued (for at most 5 s), releases the lease and writes a last status.
   * After an error that makes writing unsafe (`failure`), nothing more is written but the
   * status, which says why: the process exits at once.
   */
  async stop(failure?: unknown): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    for (const t of this.timers) clearInterval(t);
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
    this.lease.release();
    this.journal?.close();
    if (failure !== undefined) {
      this.state = 'failed';
      this.message = `stopped on an error: ${failure instanceof Error ? failure.message : String(failure)}`;
    } else this.state = 'stopped';
    if (this.statusTimer) clearInterval(this.statusTimer);
    this.status.cancel();
    this.checkpoints.cancel();
    if (this.rescanTimer) clearTimeout(this.rescanTimer);
    if (this.verifyTimer) clearTimeout(this.verifyTimer);
    if (this.blocked) clearTimeout(this.blocked);
    this.status.write(true);
    this.fatal = undefined;
  }
}
