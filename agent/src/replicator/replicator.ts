// The replicator: captures every change under `source` into the store in `target`.
//
// Flow: changes are seen (inotify events, or scans) and queued by path; a batch of queued
// paths is examined against the source, new contents are stored as objects, and the batch's
// journal records are appended and fsynced (the acknowledgement); only then is the mirror
// updated. At every start the journal is replayed and the source compared with it (the
// catch-up), so changes made while nothing ran are captured too.
//
// Its parts, each in its own module: the lease (leaseholder.ts), the queue of changed paths
// (queue.ts), the comparison of the source with the tree (scanner.ts), a batch turned into
// changes (batch.ts), the journal it writes (journalkeeper.ts, in the readable form of
// journal.ts's codec), checkpoints (checkpoint.ts), the mirror (mirror.ts), what is not
// covered (coverage.ts), hard links and mappings (links.ts), the source (source.ts) and the
// status (report.ts). This class holds the tree, runs the parts one at a time (exclusive) and
// on their timers, and keeps what the status says of the whole.
import * as fs from 'node:fs';
import type { Logger } from '../log';
import { BatchBuilder, CAPTURE_CONCURRENCY } from './batch';
import { Checkpoints } from './checkpoint';
import { Coverage } from './coverage';
import { implementation, loadHasher, type HashAlgorithm, type HashChoice } from './digest';
import { viaShort } from './fspath';
import { pathOfChange, type Change } from './journal';
import { OpenJournal } from './journalkeeper';
import { LEASE_LOST, LeaseHolder } from './leaseholder';
import { HardLinks, MappedFiles } from './links';
import { Mirror } from './mirror';
import { tightenAll, tightenTop, type Tightened } from './modes';
import { ChangeQueue, type Batch } from './queue';
import { Latencies, StatusFile, iso, statusOf } from './report';
import { collectGarbage, type PruneResult } from './retention';
import { Scanner, unchanged } from './scanner';
import { resolveChain } from './segments';
import { Source } from './source';
import { statusSchema, type ReplicatorStatus } from './status';
import { StoreLayout, cleanTmp, fsyncDirAsync, isOwnerOnly, markOwnerOnly, prepareStore } from './store';
import { within, type VersionTree } from './tree';
import { summary as verifySummary, verifyStore, VerifyCancelled } from './verify';
import { TreeWatcher } from './watch';

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

const STATUS_EVERY_MS = 1000;

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
  private readonly queue: ChangeQueue;
  private readonly scanner: Scanner;
  private readonly batches: BatchBuilder;
  private state: ReplicatorStatus['state'] = 'starting';
  private message: string | null = null;
  private lastChangeAt: number | null = null;
  private lastReplicatedAt: number | null = null;
  /** Until the first catch-up finishes: since when changes may be uncaptured. */
  private atRiskBeforeCatchUp: number;
  private catchUp: ReplicatorStatus['catchUp'] = {
    startedAt: null,
    finishedAt: null,
    scanned: 0,
    changed: 0,
    scanMs: null,
  };
  private catchUpOutstanding: Set<string> | null = null;
  private lastPrune: PruneResult | null = null;
  /** Set after an unclean stop: unreferenced objects may be left; the next pruning looks for them. */
  private garbageLikely = false;
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

  constructor(private readonly o: ReplicatorOptions) {
    this.layout = new StoreLayout(o.target);
    this.watcher = new TreeWatcher(
      o.source,
      (rel) => this.onEvent(rel),
      (rel) => this.onEvent(rel),
      o.maxWatches,
      (rel, code) =>
        this.coverage.notCovered(
          rel,
          'unreadable',
          `cannot be read (${code}): changes in it are not seen; the last recorded versions are kept`
        )
    );
    this.lease = new LeaseHolder(this.layout, {
      node: o.node,
      name: o.name,
      target: o.target,
      staleAfterMs: o.leaseStaleAfterMs,
      log: o.log,
    });
    this.checkpoints = new Checkpoints(this.layout, o.checkpointEveryMs, CAPTURE_CONCURRENCY);
    this.mirror = new Mirror(this.layout, () => this.tree, o.log);
    this.status = new StatusFile(o.statusFile, () => this.snapshot(), o.log);
    this.coverage = new Coverage(
      o.log,
      () => this.status.schedule(),
      (p) => this.mapped.has(p)
    );
    this.links = new HardLinks(this.watcher, (p) => this.onEvent(p));
    this.source = new Source(o.source, o.log, (problem, replaced) => {
      this.noteError(`${problem}; nothing is recorded until it is back`);
      // Its watches are on the old directory: a new start watches and catches up with the new one.
      if (replaced) {
        this.die(new Error(`${problem}; exiting so that a restart watches it afresh`));
      }
    });
    this.queue = new ChangeQueue(
      () => this.kick(),
      () => this.closing
    );
    this.scanner = new Scanner({
      source: this.source,
      tree: () => this.tree,
      queue: this.queue,
      coverage: this.coverage,
      links: this.links,
      mapped: this.mapped,
      watcher: this.watcher,
      closing: () => this.closing,
    });
    this.batches = new BatchBuilder({
      layout: this.layout,
      source: this.source,
      tree: () => this.tree,
      queue: this.queue,
      coverage: this.coverage,
      links: this.links,
      mapped: this.mapped,
      watcher: this.watcher,
      checkpoints: this.checkpoints,
      settleMs: o.settleMs,
      changingAfterMs: o.changingAfterMs,
      stamp: () => (this.journal as OpenJournal).stamp(),
      eventsLost: (why) => this.eventsLost(why),
      noteError: (msg) => this.noteError(msg),
    });
    this.atRiskBeforeCatchUp = this.previousSafePoint() ?? Date.now();
  }

  private logTightened(t: Tightened): void {
    if (t.modes === 0 && t.unlinked === 0) {
      return;
    }
    this.o.log.warn('store permissions tightened: other users could read it', {
      store: this.o.target,
      entries: t.modes,
      mirrorLinksCopied: t.unlinked,
      examples: t.examples,
    });
  }

  /** From the previous run's status: the last moment everything seen was acknowledged. */
  private previousSafePoint(): number | null {
    if (!this.o.statusFile) {
      return null;
    }
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
    this.scanner.warm(); // its start-up overlaps the journal's replay
    this.statusTimer = setInterval(() => this.status.write(true), STATUS_EVERY_MS);
    this.status.write(true);

    const lease = await this.lease.take(
      (reason) => {
        this.state = 'waiting_for_lease';
        this.message = reason;
        this.status.write(true);
      },
      () => this.closing
    );
    if (!lease || this.closing) {
      return;
    }
    this.message = null;
    // Renewed from now on, however long the replay and the catch-up take.
    this.every(this.o.leaseRenewMs, () => this.renew());
    cleanTmp(this.layout);
    if (!isOwnerOnly(this.layout)) {
      // A store of an earlier version: made owner-only, its mirror's hard links copied, once.
      this.logTightened(tightenAll(this.layout));
      markOwnerOnly(this.layout);
    }
    this.batches.open();
    await this.openJournal(lease.epoch);
    await this.exclusive(() => this.checkpoint());
    await this.exclusive(async () => this.journal?.sealLeftovers(this.tree, () => this.closing, this.o.log));
    await this.waitForSource();
    if (this.closing) {
      return;
    }
    await this.catchUpScan();
    if (this.closing) {
      return;
    }

    this.every(this.o.pollEveryMs, () => this.pollLimited());
    this.scheduleRescan();
    this.every(this.o.pruneEveryMs, () => void this.prune().catch((e: unknown) => this.die(e)));
    void this.prune().catch((e: unknown) => this.die(e));
    this.scheduleVerify();
  }

  /** Checks source and target, and prepares the store (its hash algorithm is the marker's). */
  private openStore(): HashAlgorithm {
    const st = fs.statSync(this.o.source, { throwIfNoEntry: false });
    if (!st?.isDirectory()) {
      throw new Error(`source ${this.o.source} is not a directory`);
    }
    const src = fs.realpathSync(this.o.source);
    fs.mkdirSync(this.o.target, { recursive: true });
    const tgt = fs.realpathSync(this.o.target);
    if (within(tgt, src) || within(src, tgt)) {
      throw new Error(`source ${src} and target ${tgt} must not contain each other`);
    }
    const hash = prepareStore(this.layout, this.o.hash ?? 'auto');
    if (this.o.hash !== undefined && this.o.hash !== 'auto' && this.o.hash !== hash) {
      this.o.log.warn('the store keeps the hash algorithm it was created with', {
        store: hash,
        requested: this.o.hash,
      });
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
      if (problem === null || this.closing) {
        break;
      }
      if (this.source.problem !== problem) {
        this.source.problem = problem;
        this.o.log.error('not recording: the source is not available', {
          source: this.o.source,
          problem,
          knownPaths: this.tree.size,
        });
        this.status.write(true);
      }
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
    if (this.closing) {
      return;
    }
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
    if (this.closing) {
      return;
    }
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
    if (every <= 0 || this.closing) {
      return;
    }
    this.verifyTimer = setTimeout(() => {
      verifyStore(this.o.target, { pace: { workMs: 20, restMs: 20 }, cancelled: () => this.closing })
        .then((r) => {
          this.lastVerify = verifySummary(r);
          if (r.ok) {
            this.o.log.info('store verified', {
              problems: 0,
              ms: r.ms,
              records: r.checked.records,
              objects: r.checked.objects,
            });
          } else {
            this.o.log.error('store verify found problems', {
              problems: r.problems.length,
              first: r.problems.slice(0, 5).map((p) => p.message),
              ms: r.ms,
            });
          }
          this.status.write(true);
        })
        .catch((e: unknown) => {
          if (e instanceof VerifyCancelled) {
            return;
          }
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
    if (this.closing) {
      return;
    }
    const wait = Math.max(this.o.rescanEveryMs, 100 * this.scanner.lastFullScanMs);
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
    if (this.errors.length > 20) {
      this.errors.shift();
    }
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
    if (opened.unclean) {
      this.garbageLikely = true;
    }
    const lost = this.checkpoints.recover(opened.unsynced, (msg) => this.noteError(msg), this.o.log);
    if (lost > 0) {
      this.garbageLikely = true;
    }
    // Objects were lost, so the mirror's links may be too, whatever mirror.seq says: rebuild it.
    await this.mirror.repair(lost > 0 ? null : opened.touched, this.journal.lastSeq);
  }

  /** Seals the current segment and starts the next (at 64 MiB, or when it is older than the pruning period). */
  private async rollIfDue(): Promise<void> {
    const journal = this.journal;
    if (!journal || this.closing || !journal.rollDue(this.o.pruneEveryMs)) {
      return;
    }
    // Inline contents are dropped at sealing: the checkpoint makes their objects durable first.
    await this.checkpoint();
    journal.roll(this.tree);
  }

  private renew(): void {
    if (this.closing) {
      return;
    }
    const r = this.lease.renew();
    if (r === 'lost') {
      this.die(new Error(LEASE_LOST));
    } else if (r instanceof Error) {
      this.noteError(`lease renewal failed: ${r.message}`);
    }
  }

  // ---- seeing changes ----

  private onEvent(rel: string): void {
    if (this.closing) {
      return;
    }
    const now = Date.now();
    this.lastChangeAt = now;
    const st = this.source.lstat(rel);
    // An event naming a directory the tree knows comes from its parent's watch: the entry itself changed.
    const dirEvent = this.tree.get(rel)?.op === 'dir' || this.watcher.isWatched(rel);
    this.queue.event(rel, st instanceof fs.Stats ? st.size : 0, dirEvent, now);
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
    if (this.rescanQueued) {
      return;
    }
    this.rescanQueued = true;
    void this.exclusive(async () => {
      this.rescanQueued = false;
      await this.scan('', null);
    }).catch((e: unknown) => this.die(e));
  }

  /** A scan (scanner.ts); what it found is pending, and a change seen. */
  private async scan(rel: string, outstanding: Set<string> | null): Promise<{ scanned: number; changed: number }> {
    const { scanned, changed, at } = await this.scanner.scan(rel, outstanding);
    if (changed > 0) {
      this.lastChangeAt = Math.max(this.lastChangeAt ?? 0, at);
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
    if (this.state === 'catching_up' || this.closing) {
      return;
    }
    void this.exclusive(async () => {
      for (const d of [...this.watcher.polled.keys()]) {
        await this.scan(d, null);
      }
      // Readable again (permissions changed back): watched afresh and compared.
      for (const d of [...this.coverage.unreadableDirs]) {
        let ok = false;
        try {
          viaShort(this.source.path(d), (a) => fs.readdirSync(a));
          ok = true;
        } catch {
          ok = false;
        }
        if (!ok) {
          continue;
        }
        this.coverage.unreadableDirs.delete(d);
        this.coverage.covered(d);
        this.watcher.remove(d);
        if (this.watcher.polledRoot(d) === undefined) {
          this.watcher.add(d);
        }
        await this.scan(d, null);
      }
      const now = Date.now();
      for (const [p, u] of this.coverage.paths) {
        if (u.kind === 'unreadable' && !this.coverage.unreadableDirs.has(p)) {
          this.queue.again(p, now);
        }
      }
      for (const p of this.links.polledPaths()) {
        this.recheck(p, now);
      }
      this.checkMappings(now);
      this.lastPollAt = now;
      if (this.queue.waiting > 0) {
        this.kick();
      }
    }).catch((e: unknown) => this.die(e));
  }

  /** Queues `p` when its stat differs from its record (or, `always`, to read it anyway). */
  private recheck(p: string, now: number, always = false): void {
    const st = this.source.lstat(p);
    const e = this.tree.get(p);
    if (!always && st instanceof fs.Stats && unchanged(e, st)) {
      return;
    }
    this.queue.add(p, now, st instanceof fs.Stats ? st.size : 0, true);
  }

  /**
   * Files mapped for writing are read again at every check (writes through a mapping raise no
   * notification), with their version checked twice; they are listed as not covered, at risk
   * since the last check.
   */
  private checkMappings(now: number): void {
    const { found, dropped } = this.mapped.check(this.tree, this.source.id?.dev, this.o.pollEveryMs);
    for (const p of dropped) {
      if (this.coverage.paths.get(p)?.kind === 'mapped') {
        this.coverage.covered(p);
      }
    }
    for (const [p, reason] of found) {
      // At risk since the last check, not since it was first found: each check reads it.
      this.coverage.mapped(p, reason, this.lastPollAt ?? now);
      this.recheck(p, now, true);
    }
  }

  /** Holds the queue while the source is unavailable, and looks again in a second. */
  private block(): void {
    if (this.blocked) {
      return;
    }
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
    if (this.draining || this.closing || !this.journal || this.blocked) {
      return;
    }
    this.draining = true;
    setImmediate(() => {
      void this.exclusive(() => this.drain())
        .catch((e: unknown) => this.die(e))
        .finally(() => {
          this.draining = false;
          if (this.queue.waiting > 0 && !this.closing) {
            this.kick();
          }
        });
    });
  }

  private async drain(): Promise<void> {
    while (this.queue.waiting > 0 && this.journal) {
      if (this.source.check()) {
        this.block();
        return;
      }
      await this.processBatch(this.queue.take());
      await this.rollIfDue();
      this.status.schedule();
      // A long burst must not pile up objects without fsync: checkpoint on time, inside it.
      if (this.checkpoints.needed) {
        await this.checkpoint();
      }
    }
  }

  private async processBatch(batch: Batch): Promise<void> {
    const journal = this.journal as OpenJournal;
    const out = await this.batches.build(batch);
    // The renames into objects/ are durable before any record names them.
    await Promise.all([...out.dirsToSync].map((d) => fsyncDirAsync(d)));
    const acked = await journal.append(out.changes);
    await this.acknowledged(batch, acked);
    for (const d of out.newDirs) {
      if (this.watcher.polledRoot(d) === undefined) {
        this.watcher.add(d);
      }
      await this.scan(d, this.catchUpOutstanding);
    }
    if (this.catchUpOutstanding) {
      for (const [p] of batch) {
        this.catchUpOutstanding.delete(p);
      }
      this.checkCaughtUp();
    }
  }

  /** The batch's records are durable: latencies, the mirror, its sequence number, the next checkpoint. */
  private async acknowledged(batch: Batch, acked: Change[]): Promise<void> {
    const ackAt = Date.now();
    const ackedPaths = new Set<string>();
    for (const c of acked) {
      const p = pathOfChange(c);
      if (p !== undefined) {
        ackedPaths.add(p);
      }
    }
    for (const [p, info] of batch) {
      this.queue.done(p);
      if (info.event && ackedPaths.has(p)) {
        this.latencies.add(ackAt - info.seenAt);
      }
    }
    if (acked.length > 0) {
      this.lastReplicatedAt = ackAt;
    }
    for (const p of ackedPaths) {
      await this.mirror.sync(p);
    }
    if (!this.closing) {
      this.checkpoints.schedule(() => void this.exclusive(() => this.checkpoint()).catch((e: unknown) => this.die(e)));
    }
    if (acked.length > 0) {
      this.mirror.writeSeq((this.journal as OpenJournal).lastSeq);
    }
  }

  private checkCaughtUp(): void {
    if (!this.catchUpOutstanding || this.catchUp.scanMs === null) {
      return;
    }
    if (this.catchUpOutstanding.size > 0) {
      return;
    }
    this.catchUpOutstanding = null;
    this.catchUp.finishedAt = new Date().toISOString();
    this.state = 'watching';
    this.o.log.info('caught up; watching', { watches: this.watcher.count, polled: [...this.watcher.polled.keys()] });
    this.status.write(true);
  }

  /** A checkpoint (checkpoint.ts); the mirror is current up to its sync record. */
  private async checkpoint(): Promise<void> {
    const journal = this.journal;
    if (journal && (await this.checkpoints.run(journal))) {
      this.mirror.writeSeq(journal.lastSeq);
    }
  }

  // ---- retention ----

  async prune(now = Date.now()): Promise<PruneResult | null> {
    return this.exclusive(async () => {
      const journal = this.journal;
      if (!journal || this.closing) {
        return null;
      }
      await this.rollIfDue();
      if (this.garbageLikely) {
        this.garbageLikely = false;
        this.batches.forgetVerified();
        const g = collectGarbage(this.layout, resolveChain(this.layout.root), []);
        if (g.objectsRemoved > 0) {
          this.o.log.info('unreferenced objects removed', g);
        }
      }
      const cutoff = now - this.o.retentionMs;
      const out = journal.prune(cutoff);
      if (!out) {
        return null;
      }
      this.batches.forgetVerified();
      this.lastPrune = out;
      this.o.log.info('retention: pruned', { ...out, cutoff: iso(cutoff), earliest: iso(out.earliest) });
      return out;
    });
  }

  // ---- status ----

  snapshot(): ReplicatorStatus {
    const journal = this.journal;
    const queued = this.queue.queued();
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
    if (this.closing) {
      return;
    }
    this.closing = true;
    for (const t of this.timers) {
      clearInterval(t);
    }
    this.watcher.closeAll();
    if (this.journal && failure === undefined) {
      const rest = this.exclusive(async () => {
        await this.drain();
        await this.checkpoint();
      });
      await Promise.race([rest.catch(() => undefined), new Promise((r) => setTimeout(r, 5000))]);
    }
    this.scanner.close();
    this.batches.close();
    this.lease.release();
    this.journal?.close();
    if (failure !== undefined) {
      this.state = 'failed';
      this.message = `stopped on an error: ${failure instanceof Error ? failure.message : String(failure)}`;
    } else {
      this.state = 'stopped';
    }
    if (this.statusTimer) {
      clearInterval(this.statusTimer);
    }
    this.status.cancel();
    this.checkpoints.cancel();
    if (this.rescanTimer) {
      clearTimeout(this.rescanTimer);
    }
    if (this.verifyTimer) {
      clearTimeout(this.verifyTimer);
    }
    if (this.blocked) {
      clearTimeout(this.blocked);
    }
    this.status.write(true);
    this.fatal = undefined;
  }
}
