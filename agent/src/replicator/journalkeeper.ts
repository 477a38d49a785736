// The writer's journal: replayed at start, appended to in readable changes (encoded by
// journal.ts's codec), rolled into a new segment at 64 MiB or at the pruning period, sealed
// and snapshotted as segments.ts describes, and measured for the status.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger } from '../log';
import { decodeReadRecord, encodeNew, type Change, type FileChange, type NewChange, type SyncMark } from './journal';
import { authenticateWriter, loadJournalKey } from './journalauth';
import {
  JournalWriter,
  SEGMENT_BYTES,
  describeDamage,
  replay,
  resolveChain,
  sealSegment,
  writeSnapshot,
  type ChainSegment,
} from './segments';
import { pruneJournal, type PruneResult } from './retention';
import type { StoreLayout } from './store';
import { decodeTree, encodeTree, type VersionTree } from './tree';

/**
 * A snapshot of the tree is written when a segment is sealed and at least four times this many
 * records (and four times as many as the tree has paths) were written since the last one: a
 * start then replays at most about five times the tree's size, and snapshots take at most a
 * quarter of the room records take.
 */
const SNAPSHOT_MIN_RECORDS = 10_000;
const snapshotDue = (since: number, paths: number) => since >= 4 * Math.max(SNAPSHOT_MIN_RECORDS, paths);

/** What the replay at start found, besides the journal itself. */
export interface Opened {
  journal: OpenJournal;
  tree: VersionTree;
  /** File records with inline contents after the last sync record (their objects may be lost). */
  unsynced: FileChange[];
  /** Paths the mirror has not applied yet (null: unknown, rebuild it all). */
  touched: Set<string> | null;
  /** A torn tail was ignored, or records after the last sync: unreferenced objects may be left. */
  unclean: boolean;
}

export class OpenJournal {
  /** Records written since the last tree snapshot (or replayed at start since it). */
  private sinceSnapshot: number;
  /** Bytes of the journal's sealed segments (the current one is the writer's). */
  private sealedBytes = 0;
  private segmentCount = 0;
  /** Segments that an earlier writer left unsealed (or without an index): sealed after the start. */
  private pendingSeal: Array<{ seg: ChainSegment; last: number }>;
  /** The earliest restorable moment (null: nothing recorded yet). */
  private earliestAt: number | null;

  private constructor(
    private readonly layout: StoreLayout,
    private readonly writer: JournalWriter,
    replayed: number,
    earliest: number | null,
    pendingSeal: Array<{ seg: ChainSegment; last: number }>
  ) {
    this.sinceSnapshot = replayed;
    this.earliestAt = earliest;
    this.pendingSeal = pendingSeal;
    this.refreshSize();
  }

  /**
   * Replays the journal (from the newest tree snapshot that fits) and starts this writer's own
   * segment after its last record. Damage and segments left out are reported, never repaired
   * by dropping records.
   */
  static open(
    layout: StoreLayout,
    o: {
      journalKeyFile?: string;
      epoch: number;
      checkLease: () => void;
      mirrorSeq: number;
      log: Logger;
      noteError: (msg: string) => void;
    }
  ): Opened {
    const replayStart = Date.now();
    const auth = authenticateWriter(
      layout.root,
      o.journalKeyFile === undefined ? undefined : loadJournalKey(o.journalKeyFile)
    );
    const chain = resolveChain(layout.root);
    const rep = replay(chain, o.mirrorSeq < 0 ? Infinity : o.mirrorSeq);
    let unclean = rep.lastSync < rep.lastQ;
    for (const p of chain.problems) {
      o.noteError(`journal: ${p}`);
    }
    for (const i of chain.ignored) {
      o.log.warn('journal segment left out', { segment: i.name, why: i.why });
      o.noteError(`journal: ${i.name} is not part of the journal (${i.why})`);
    }
    for (const d of rep.damage) {
      for (const line of describeDamage(d)) {
        o.log.error('journal damage', { detail: line });
        o.noteError(line);
      }
      if (d.tail) {
        o.log.warn('ignored a torn journal tail', { segment: d.segment, damage: d.tail.damage, bytes: d.tail.bytes });
        o.noteError(
          `journal: ignored ${d.tail.bytes} bytes after the last complete record of ${d.segment} (${d.tail.damage})`
        );
        unclean = true;
      }
    }
    auth.start(rep.lastQ + 1);
    const writer = new JournalWriter(layout.root, chain, rep.lastQ, rep.lastAt, o.epoch, o.checkLease);
    const next = (i: number) => chain.segments[i + 1] as ChainSegment | undefined;
    const pendingSeal = chain.segments.map((seg, i) => ({
      seg,
      last: Math.min(seg.last ?? Infinity, next(i) ? (next(i) as ChainSegment).first - 1 : rep.lastQ),
    }));
    const journal = new OpenJournal(layout, writer, rep.replayed, rep.earliest, pendingSeal);
    o.log.info('journal replayed', {
      records: rep.replayed,
      fromSnapshot: rep.snapshot?.name ?? null,
      segments: chain.segments.length,
      paths: rep.tree.size,
      ms: Date.now() - replayStart,
    });
    if (fs.existsSync(path.join(layout.journal, 'prune-pending.json'))) {
      unclean = true;
    }
    return {
      journal,
      tree: decodeTree(rep.tree),
      unsynced: rep.unsynced.map((r) => decodeReadRecord(r)),
      touched: rep.touched,
      unclean,
    };
  }

  get lastSeq(): number {
    return this.writer.lastSeq;
  }

  stamp(): number {
    return this.writer.stamp();
  }

  /** Appends and fsyncs the changes; when this resolves they are acknowledged (numbered). */
  async append(changes: NewChange[]): Promise<Change[]> {
    const acked = (await this.writer.append(changes.map(encodeNew))).map((r) => decodeReadRecord(r));
    this.sinceSnapshot += acked.length;
    if (this.earliestAt === null && acked[0]) {
      this.earliestAt = acked[0].at;
    }
    return acked;
  }

  /**
   * Appends a checkpoint's sync mark: every object named by a record up to `upTo` is durable.
   * It changes nothing in the tree, so it counts for neither snapshots nor the earliest moment.
   */
  async appendSync(upTo: number): Promise<void> {
    const mark: Omit<SyncMark, 'seq'> = { at: this.writer.stamp(), op: 'sync', upTo };
    await this.writer.append([encodeNew(mark)]);
  }

  /** Seals the segments an earlier writer left unsealed; `closing` stops early. */
  sealLeftovers(tree: VersionTree, closing: () => boolean, log: Logger): void {
    for (const { seg, last } of this.pendingSeal.splice(0)) {
      if (closing()) {
        return;
      }
      // Sealed before (it has its index): nothing to do. The former writer's last segment has none.
      if (!seg.legacy && fs.existsSync(path.join(this.layout.journal, seg.name.replace(/\.log$/, '.idx')))) {
        continue;
      }
      const r = sealSegment(this.layout.root, this.layout.tmp, seg, last);
      if (r.strippedBytes > 0) {
        log.info('journal segment sealed', { segment: r.name, inlineBytesDropped: r.strippedBytes });
      }
    }
    this.snapshotIfDue(tree);
    this.refreshSize();
  }

  /** Whether the current segment should be sealed: at 64 MiB, or older than `maxAgeMs`. */
  rollDue(maxAgeMs: number): boolean {
    const w = this.writer;
    return !w.empty && (w.bytes >= SEGMENT_BYTES || w.age >= maxAgeMs);
  }

  /** Seals the current segment and starts the next (inline contents must be durable by then: a checkpoint first). */
  roll(tree: VersionTree): void {
    const { sealed, last } = this.writer.roll();
    sealSegment(this.layout.root, this.layout.tmp, sealed, last);
    this.snapshotIfDue(tree);
    this.refreshSize();
  }

  private snapshotIfDue(tree: VersionTree): void {
    if (!snapshotDue(this.sinceSnapshot, tree.size)) {
      return;
    }
    const w = this.writer;
    writeSnapshot(this.layout.root, this.layout.tmp, encodeTree(tree), {
      upTo: w.lastSeq,
      at: w.stamp(),
      epoch: w.epoch,
      from: null,
    });
    this.sinceSnapshot = 0;
  }

  get earliest(): number | null {
    return this.earliestAt;
  }

  /**
   * Retention: drops the sealed segments whose records are all older than `cutoff`
   * (retention.ts). Null when nothing is old enough.
   */
  prune(cutoff: number): PruneResult | null {
    // Nothing old enough to drop yet: no need to look.
    if (this.earliestAt === null || this.earliestAt >= cutoff) {
      return null;
    }
    const out = pruneJournal(
      this.layout,
      resolveChain(this.layout.root),
      this.writer.segment.name,
      cutoff,
      this.writer.epoch
    );
    if (!out) {
      return null;
    }
    this.earliestAt = out.earliest;
    this.refreshSize();
    return out;
  }

  private refreshSize(): void {
    let bytes = 0;
    let count = 0;
    for (const name of fs.readdirSync(this.layout.journal)) {
      if (!name.endsWith('.log') || name === this.writer.segment.name) {
        continue;
      }
      bytes += fs.statSync(path.join(this.layout.journal, name), { throwIfNoEntry: false })?.size ?? 0;
      count++;
    }
    this.sealedBytes = bytes;
    this.segmentCount = count + 1;
  }

  sizes(): { bytes: number; segments: number } {
    return { bytes: this.sealedBytes + this.writer.bytes, segments: this.segmentCount };
  }

  close(): void {
    this.writer.close();
  }
}
