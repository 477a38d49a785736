// kind "replicator": Vigil's own CDP process. The agent starts it like a command (its own
// process group, log in stateDir/logs, adopted after an agent restart) and reads its
// progress from the status file it rewrites in stateDir/replicator/NAME.json.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ProcessConfig } from '../config';
import { statusSchema, type ReplicatorStatus } from '../replicator/status';
import { CommandSupervisor } from './command';
import type { Protection, SupervisorDeps } from './supervisor';

/** A status file older than this while the process runs means the replicator is stuck. */
const STALE_STATUS_MS = 5000;
const READ_CACHE_MS = 200;

export interface ReplicatorProtection extends Protection {
  state: ReplicatorStatus['state'] | 'not_running' | 'unresponsive' | 'unknown';
  message: string | null;
  /** Paths whose changes are not captured right now (null: unknown). */
  notCovered: number | null;
  /** The last scheduled verify of the store (verifyEvery); null before the first or when off. */
  verify: NonNullable<ReplicatorStatus['verify']> | null;
}

/** How this agent starts the replicator: the same Node.js and entry point, subcommand `replicate`. */
export function replicatorArgv(config: ProcessConfig, statusFile: string, node: string): string[] {
  const execArgv = process.execArgv.filter((a) => !a.startsWith('--inspect'));
  return [
    process.execPath,
    ...execArgv,
    process.argv[1] as string,
    'replicate',
    '--source',
    config.source as string,
    '--target',
    config.target as string,
    '--retention',
    `${Math.round((config.retentionMs as number) / 1000)}s`,
    '--hash',
    config.hash ?? 'auto',
    '--status',
    statusFile,
    '--node',
    node,
    '--name',
    config.name,
    ...(config.journalKey ? ['--journal-key', config.journalKey] : []),
    ...(config.verifyEveryMs ? ['--verify-every', `${config.verifyEveryMs}ms`] : []),
  ];
}

export class ReplicatorSupervisor extends CommandSupervisor {
  readonly statusFile: string;
  private readonly command: string[];
  private cache?: { at: number; status: ReplicatorStatus | null; error?: string };

  constructor(config: ProcessConfig, deps: SupervisorDeps) {
    super(config, deps);
    const dir = path.join(deps.stateDir, 'replicator');
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.statusFile = path.join(dir, `${config.name}.json`);
    this.command = replicatorArgv(config, this.statusFile, deps.node);
  }

  protected get argv(): string[] {
    return this.command;
  }

  private readStatus(): { status: ReplicatorStatus | null; error?: string } {
    const now = Date.now();
    if (this.cache && now - this.cache.at < READ_CACHE_MS) {
      return this.cache;
    }
    let status: ReplicatorStatus | null = null;
    let error: string | undefined;
    try {
      const parsed = statusSchema.safeParse(JSON.parse(fs.readFileSync(this.statusFile, 'utf8')));
      if (parsed.success) {
        status = parsed.data;
      } else {
        error = `the status file ${this.statusFile} is not understood: ${parsed.error.issues[0]?.message ?? 'invalid'}`;
      }
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
        error = `cannot read ${this.statusFile}: ${(e as Error).message}`;
      }
    }
    this.cache = { at: now, status, error };
    return this.cache;
  }

  /**
   * Lag is the age of the oldest change not yet acknowledged (0 when there is none). While
   * the replicator is not running, or runs but has not rewritten its status in time,
   * everything since its last safe point is at risk and the lag grows from there.
   */
  protected protection(): ReplicatorProtection {
    const { status: s, error } = this.readStatus();
    const now = Date.now();
    if (!s) {
      return {
        lastChangeAt: null,
        lastReplicatedAt: null,
        lagSeconds: null,
        pendingChanges: null,
        pendingBytes: null,
        state: 'unknown',
        message: error ?? null,
        notCovered: null,
        verify: null,
      };
    }
    const written = Date.parse(s.writtenAt);
    const ours = this.isUp() && s.pid === this.record.pid;
    const fresh = ours && now - written < STALE_STATUS_MS;
    const lag = (since: string | null) => (since === null ? 0 : Math.max(0, (now - Date.parse(since)) / 1000));
    // A verify's result is about the store, not the process: it stays true while the process is down.
    const base = { lastChangeAt: s.lastChangeAt, lastReplicatedAt: s.lastReplicatedAt, verify: s.verify ?? null };
    if (fresh) {
      return {
        ...base,
        lagSeconds: lag(s.atRiskSince),
        pendingChanges: s.pendingChanges,
        pendingBytes: s.pendingBytes,
        state: s.state,
        message: s.message,
        notCovered: s.notCoveredCount,
      };
    }
    // Not running (or not answering): nothing written since the last safe point is protected.
    const since = s.atRiskSince ?? s.writtenAt;
    return {
      ...base,
      lagSeconds: lag(since),
      pendingChanges: null,
      pendingBytes: null,
      notCovered: null,
      state: ours ? 'unresponsive' : this.isUp() ? 'starting' : 'not_running',
      message: ours
        ? `the replicator has not reported for ${Math.round((now - written) / 1000)} s`
        : this.isUp()
          ? `the replicator is starting; changes since ${since} are not captured yet`
          : `the replicator is not running; changes since ${since} are not protected`,
    };
  }

  debug(): Record<string, unknown> {
    const { status, error } = this.readStatus();
    return { ...super.debug(), statusFile: this.statusFile, replicator: status, statusError: error ?? null };
  }
}
