// The replicator as a process of its own: `vigil-agent replicate --source DIR --target DIR …`
// (what the agent starts for a process of kind "replicator"), or `node dist/replicator/bin.js …`.
import * as os from 'node:os';
import { parseDuration } from '../duration';
import { createLogger } from '../log';
import { HASH_ALGORITHMS, HASH_CHOICES, type HashChoice } from './digest';
import { Replicator, type ReplicatorOptions } from './replicator';

export const REPLICATE_USAGE = `usage: vigil-agent replicate --source DIR --target DIR [--retention 7d] [--status FILE]
         [--node NAME] [--name NAME] [--max-watches N] [--poll-every 10s] [--rescan-every 1m]
         [--lease-stale-after 30s] [--checkpoint-every 1s] [--hash auto|blake3|sha256] [--settle 50ms]
         [--changing-after 10s] [--journal-key FILE] [--verify-every 1d]`;

export class UsageError extends Error {}

export function parseReplicateArgs(argv: string[]): Omit<ReplicatorOptions, 'log'> {
  const v: Record<string, string> = {};
  const args = [...argv];
  while (args.length > 0) {
    const a = args.shift() as string;
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(a);
    if (!m) {
      throw new UsageError(`unknown argument ${JSON.stringify(a)}`);
    }
    const value = m[2] ?? args.shift();
    if (value === undefined || value === '') {
      throw new UsageError(`--${m[1]} needs a value`);
    }
    v[m[1] as string] = value;
  }
  const known = [
    'source',
    'target',
    'retention',
    'status',
    'node',
    'name',
    'max-watches',
    'poll-every',
    'rescan-every',
    'lease-stale-after',
    'checkpoint-every',
    'hash',
    'settle',
    'changing-after',
    'journal-key',
    'verify-every',
  ];
  for (const k of Object.keys(v)) {
    if (!known.includes(k)) {
      throw new UsageError(`unknown option --${k}`);
    }
  }
  if (!v.source) {
    throw new UsageError('--source DIR is required');
  }
  if (!v.target) {
    throw new UsageError('--target DIR is required');
  }
  const dur = (k: string, dflt: number): number => {
    if (v[k] === undefined) {
      return dflt;
    }
    const ms = parseDuration(v[k] as string);
    if (ms === undefined) {
      throw new UsageError(`--${k}: invalid duration ${JSON.stringify(v[k])}`);
    }
    return ms;
  };
  const retentionMs = dur('retention', 7 * 24 * 3_600_000);
  const hash = (v.hash ?? 'auto') as HashChoice;
  if (!(HASH_CHOICES as readonly string[]).includes(hash)) {
    throw new UsageError(`--hash: must be auto, ${HASH_ALGORITHMS.join(' or ')}, not ${JSON.stringify(v.hash)}`);
  }
  const maxWatches = v['max-watches'] === undefined ? Number.MAX_SAFE_INTEGER : Number(v['max-watches']);
  if (!Number.isInteger(maxWatches) || maxWatches < 0) {
    throw new UsageError('--max-watches: must be a whole number');
  }
  return {
    source: v.source,
    target: v.target,
    retentionMs,
    statusFile: v.status,
    node: v.node ?? os.hostname(),
    name: v.name ?? 'replicator',
    maxWatches,
    pollEveryMs: Math.max(100, dur('poll-every', 10_000)),
    rescanEveryMs: Math.max(1000, dur('rescan-every', 60_000)),
    leaseStaleAfterMs: dur('lease-stale-after', 30_000),
    leaseRenewMs: 5000,
    checkpointEveryMs: Math.max(10, dur('checkpoint-every', 1000)),
    settleMs: dur('settle', 50),
    changingAfterMs: Math.max(100, dur('changing-after', 10_000)),
    // Off unless asked for: a verify reads every object back.
    verifyEveryMs: dur('verify-every', 0) === 0 ? 0 : Math.max(1000, dur('verify-every', 0)),
    // Pruning rewrites the journal: often enough to keep the window tight, not more than needed.
    pruneEveryMs: Math.min(3_600_000, Math.max(1000, Math.round(retentionMs / 10))),
    hash,
    journalKeyFile: v['journal-key'],
  };
}

/** Runs the replicator until SIGTERM/SIGINT (exit 0) or a fatal error (exit 1). */
export async function replicateMain(argv: string[]): Promise<number> {
  // Reads, writes and fsyncs of many small files run on libuv's thread pool; its default of
  // 4 threads caps how many fsyncs the file system can group into one commit.
  process.env.UV_THREADPOOL_SIZE ??= '16';
  const log = createLogger();
  let opts: Omit<ReplicatorOptions, 'log'>;
  try {
    opts = parseReplicateArgs(argv);
  } catch (e) {
    if (e instanceof UsageError) {
      log.error('invalid command line', { error: e.message, usage: REPLICATE_USAGE });
      return 2;
    }
    throw e;
  }
  const r = new Replicator({ ...opts, log });
  log.info('replicator starting', {
    source: opts.source,
    target: opts.target,
    retentionMs: opts.retentionMs,
    pid: process.pid,
  });
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (sig: NodeJS.Signals) => {
      if (stopping) {
        return;
      }
      stopping = true;
      log.info('stopping', { signal: sig });
      void r.stop().then(() => {
        log.info('replicator stopped');
        resolve(0);
      });
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
    r.run().catch(async (e: unknown) => {
      log.error('replicator stopped on an error', { error: e });
      await r.stop(e).catch(() => undefined);
      resolve(1);
    });
  });
}
