// The replicator's status: what it reports (ReplicatorStatus, status.ts) built from its parts,
// and the status file the agent reads, rewritten atomically and at most every 100 ms.
import * as fs from 'node:fs';
import type { Logger } from '../log';
import type { Coverage } from './coverage';
import type { PruneResult } from './retention';
import type { ReplicatorStatus } from './status';
import type { WatchLimit } from './watch';

const STATUS_MIN_GAP_MS = 100;
/** At most this many paths are listed in the status (all are counted). */
const NOT_COVERED_LISTED = 20;
const LATENCY_SAMPLES = 10_000;

export const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());

function percentile(sorted: number[], p: number): number | null {
  if (sorted.length === 0) {
    return null;
  }
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

/** Acknowledgement latencies (from a change seen to its record fsynced), the last 10,000. */
export class Latencies {
  private readonly samples: number[] = [];

  add(ms: number): void {
    this.samples.push(ms);
    if (this.samples.length > LATENCY_SAMPLES) {
      this.samples.splice(0, this.samples.length - LATENCY_SAMPLES);
    }
  }

  summary(): ReplicatorStatus['latency'] {
    const sorted = [...this.samples].sort((a, b) => a - b);
    return {
      count: sorted.length,
      p50Ms: percentile(sorted, 50),
      p99Ms: percentile(sorted, 99),
      maxMs: sorted[sorted.length - 1] ?? null,
    };
  }
}

/** Everything the status is made of. */
export interface StatusParts {
  name: string;
  source: string;
  target: string;
  pollEveryMs: number;
  state: ReplicatorStatus['state'];
  /** Said before anything else (the source missing, the lease held by another writer). */
  problem: string | null;
  /** Until a first catch-up finished: since when changes may be uncaptured. */
  atRiskBeforeCatchUp: number | null;
  /** Changes seen and not acknowledged yet. */
  queued: Array<{ seenAt: number; size: number }>;
  coverage: Coverage;
  polled: WatchLimit[];
  watches: number;
  /** Hard-linked inodes checked on the poll. */
  polledInodes: number;
  lastPollAt: number | null;
  lastChangeAt: number | null;
  lastReplicatedAt: number | null;
  catchUp: ReplicatorStatus['catchUp'];
  journal: ReplicatorStatus['journal'];
  latency: ReplicatorStatus['latency'];
  lastPrune: PruneResult | null;
  errors: string[];
  verify: ReplicatorStatus['verify'];
}

export function statusOf(s: StatusParts): ReplicatorStatus {
  let oldest: number | null = null;
  for (const v of s.queued) {
    if (oldest === null || v.seenAt < oldest) {
      oldest = v.seenAt;
    }
  }
  // A known blind spot is never "lag 0": what is not covered is at risk since it stopped being.
  const uncovered = s.coverage.oldest();
  if (uncovered !== null && (oldest === null || uncovered < oldest)) {
    oldest = uncovered;
  }
  // What is only scanned on a timer (a watch limit, hard links without a watch) is at risk since the last scan.
  if (
    (s.polled.length > 0 || s.polledInodes > 0) &&
    s.lastPollAt !== null &&
    (oldest === null || s.lastPollAt < oldest)
  ) {
    oldest = s.lastPollAt;
  }
  // Until a first catch-up finished, what changed while nothing ran is at risk too.
  const atRisk = s.atRiskBeforeCatchUp === null ? oldest : Math.min(s.atRiskBeforeCatchUp, oldest ?? Infinity);
  const notCovered = [...s.coverage.paths.entries()]
    .sort((a, b) => a[1].since - b[1].since)
    .slice(0, NOT_COVERED_LISTED)
    .map(([p, u]) => ({ path: p, reason: u.reason, since: iso(u.since) as string }));
  let bytes = 0;
  for (const v of s.queued) {
    bytes += v.size;
  }
  return {
    format: 1,
    pid: process.pid,
    name: s.name,
    writtenAt: new Date().toISOString(),
    state: s.state,
    message:
      s.problem ?? notCoveredMessage(s.coverage.paths.size, notCovered) ?? watchLimitMessage(s.polled, s.pollEveryMs),
    source: s.source,
    target: s.target,
    lastChangeAt: iso(s.lastChangeAt),
    lastReplicatedAt: iso(s.lastReplicatedAt),
    atRiskSince: iso(atRisk),
    pendingChanges: s.queued.length,
    pendingBytes: bytes,
    notCovered,
    notCoveredCount: s.coverage.paths.size,
    watch: { watches: s.watches, polled: s.polled },
    catchUp: s.catchUp,
    journal: s.journal,
    latency: s.latency,
    lastPrune: s.lastPrune
      ? { ...s.lastPrune, cutoff: iso(s.lastPrune.cutoff) as string, earliest: iso(s.lastPrune.earliest) as string }
      : null,
    errors: [...s.errors],
    verify: s.verify,
  };
}

function notCoveredMessage(
  count: number,
  listed: Array<{ path: string; reason: string; since: string }>
): string | null {
  if (listed.length === 0) {
    return null;
  }
  const first = listed
    .slice(0, 3)
    .map((u) => `${u.path} (${u.reason}, since ${u.since})`)
    .join('; ');
  return `${count} path(s) not covered: ${first}`;
}

function watchLimitMessage(polled: WatchLimit[], pollEveryMs: number): string | null {
  if (polled.length === 0) {
    return null;
  }
  const every = pollEveryMs < 1000 ? `${pollEveryMs} ms` : `${Math.round(pollEveryMs / 1000)} s`;
  const first = polled
    .slice(0, 3)
    .map((l) => `${l.dir || '/'}: ${l.reason}`)
    .join('; ');
  return `watch limit reached: ${polled.length} subtree(s) scanned every ${every} instead of watched (${first})`;
}

/** The status file (none configured: nothing written), at most every 100 ms unless forced. */
export class StatusFile {
  private writtenAt = 0;
  private pending?: NodeJS.Timeout;

  constructor(
    private readonly file: string | undefined,
    private readonly status: () => ReplicatorStatus,
    private readonly log: Logger
  ) {}

  write(force: boolean): void {
    if (!this.file) {
      return;
    }
    if (!force && Date.now() - this.writtenAt < STATUS_MIN_GAP_MS) {
      return;
    }
    this.writtenAt = Date.now();
    const tmp = `${this.file}.${process.pid}.tmp`;
    try {
      fs.writeFileSync(tmp, JSON.stringify(this.status()) + '\n', { mode: 0o600 });
      fs.renameSync(tmp, this.file);
    } catch (e) {
      this.log.warn('cannot write the status file', { file: this.file, error: e });
    }
  }

  /** Writes now, or as soon as 100 ms have passed since the last write. */
  schedule(): void {
    const wait = STATUS_MIN_GAP_MS - (Date.now() - this.writtenAt);
    if (wait <= 0) {
      this.write(false);
    } else if (!this.pending) {
      this.pending = setTimeout(() => {
        this.pending = undefined;
        this.write(false);
      }, wait);
    }
  }

  cancel(): void {
    if (this.pending) {
      clearTimeout(this.pending);
    }
  }
}
