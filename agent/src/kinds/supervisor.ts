// What every process kind shares: generation, restart bookkeeping, serialised operations,
// the persisted record in stateDir and the events. A kind only knows how to start, stop,
// observe and recover its process.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ProcessConfig } from '../config';
import type { EventLog } from '../events';
import type { Logger } from '../log';
import { isExpected, type ObservedRole } from '../role';
import { nextAutoRestart, recentCrashes } from './backoff';

export type ProcessState = 'running' | 'starting' | 'stopping' | 'stopped' | 'crashed';

export interface LastExit {
  code: number | null;
  signal: string | null;
  at: string;
}

export interface Protection {
  lastChangeAt: string | null;
  lastReplicatedAt: string | null;
  lagSeconds: number | null;
  pendingChanges: number | null;
  pendingBytes: number | null;
}

export interface ProcessStatus {
  name: string;
  kind: string;
  state: ProcessState;
  expected: boolean;
  pid: number | null;
  generation: number;
  startedAt: string | null;
  restarts: number;
  lastExit: LastExit | null;
  protection: Protection | null;
  autoRestart: boolean;
  autoRestartSuspended: boolean;
  /** Unexpected exits within the flap guard's window since the last start through the API. */
  recentCrashes: number;
  /** When the scheduled automatic restart is due; null when none is scheduled. */
  autoRestartAt: string | null;
}

export interface ControlRequest {
  ifGeneration?: number;
  reason?: string;
  requestedBy?: string;
}

export interface StartResult {
  generation: number;
  pid: number | null;
  startedAt: string | null;
}

export class ConflictError extends Error {
  constructor(
    readonly current: number,
    readonly requested: number
  ) {
    super(`ifGeneration ${requested} is stale: the current generation is ${current}`);
  }
}

export class OperationError extends Error {}

/** The agent is shutting down and takes no more operations. */
export class UnavailableError extends Error {}

/** The persisted record of a process: generation counters and, while it runs, its identity. */
export interface ProcessRecord {
  generation: number;
  restarts: number;
  lastExit: LastExit | null;
  startedAt: string | null;
  pid: number | null;
  /** Start time of the pid in clock ticks since boot (/proc/PID/stat field 22), to tell a reused pid apart. */
  pidStartTicks: string | null;
  command: string[] | null;
  autoRestartSuspended?: boolean;
  /** The flap guard's history: unexpected exits since the last start through the API (ISO times, recent ones only). */
  crashTimes?: string[];
  /** The automatic restart scheduled when the record was written, so that the next agent keeps to it. */
  autoRestartAt?: string | null;
}

export interface SupervisorDeps {
  stateDir: string;
  /** This node's name (cluster.node, or the host name): the replicator's lease names it. */
  node: string;
  events: EventLog;
  log: Logger;
  role: () => Promise<ObservedRole>;
}

export abstract class ProcessSupervisor {
  protected state: ProcessState = 'stopped';
  protected record: ProcessRecord;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly recordFile: string;
  protected closed = false;
  private autoRestartTimer?: NodeJS.Timeout;
  protected lastRole: ObservedRole = 'unknown';

  constructor(
    readonly config: ProcessConfig,
    protected readonly deps: SupervisorDeps
  ) {
    const dir = path.join(deps.stateDir, 'processes');
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.recordFile = path.join(dir, `${config.name}.json`);
    this.record = this.loadRecord();
  }

  get name(): string {
    return this.config.name;
  }

  get generation(): number {
    return this.record.generation;
  }

  private loadRecord(): ProcessRecord {
    const empty: ProcessRecord = {
      generation: 0,
      restarts: 0,
      lastExit: null,
      startedAt: null,
      pid: null,
      pidStartTicks: null,
      command: null,
    };
    try {
      const r = JSON.parse(fs.readFileSync(this.recordFile, 'utf8')) as Partial<ProcessRecord>;
      return { ...empty, ...r };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
        this.deps.log.warn('cannot read the process record; starting from generation 0', {
          process: this.name,
          error: e,
        });
      }
      return empty;
    }
  }

  protected saveRecord(): void {
    const tmp = `${this.recordFile}.tmp`;
    try {
      fs.writeFileSync(tmp, JSON.stringify(this.record, null, 2) + '\n', { mode: 0o600 });
      fs.renameSync(tmp, this.recordFile);
    } catch (e) {
      this.deps.log.error('cannot persist the process record', { process: this.name, error: e });
    }
  }

  protected event(type: string, reason: string, fields: Record<string, unknown> = {}): void {
    this.deps.events.add({ type, process: this.name, reason, generation: this.record.generation, ...fields });
  }

  /** Serialises every operation on this process: restarts, stops and recovery never overlap. */
  protected exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  // ---- what a kind provides ----

  /** Starts the process; resolves once it has started (or rejects). Must set pid/startedAt. */
  protected abstract launch(reason: string): Promise<void>;
  /** Stops the process gracefully; resolves once it is gone. */
  protected abstract terminate(reason: string): Promise<void>;
  /** Restarts; by default stop then start. */
  protected async relaunch(reason: string): Promise<void> {
    if (this.isUp()) {
      await this.terminate(reason);
    }
    this.beginGeneration();
    await this.launch(reason);
  }

  /** Every (re)start is a new generation; it is persisted before the process starts. */
  protected beginGeneration(): void {
    this.record.generation++;
    this.saveRecord();
  }
  /** At agent start: find what a previous agent left and adopt or replace it. */
  protected abstract recoverLeftovers(): Promise<'running' | 'gone'>;
  /** Refreshes the observed state (kinds that are observed rather than owned). */
  async refresh(): Promise<void> {}
  /** Whether the agent's own shutdown stops this process. */
  abstract readonly stopsWithAgent: boolean;
  abstract debug(): Record<string, unknown>;
  protected protection(): Protection | null {
    return null;
  }

  protected isUp(): boolean {
    return this.state === 'running' || this.state === 'starting';
  }

  // ---- shared behaviour ----

  async recover(role: ObservedRole): Promise<void> {
    this.lastRole = role;
    await this.exclusive(async () => {
      const found = await this.recoverLeftovers();
      const expected = isExpected(this.config.runOn, role);
      if (found === 'running' || !this.config.autoRestart) {
        this.forgetAutoRestart();
      }
      if (found === 'gone' && this.config.autoRestart && this.record.autoRestartSuspended) {
        // The flap guard outlives the agent: only a start through the API resumes it.
        if (!this.config.startOnBoot || !expected) {
          return;
        }
        this.deps.log.warn('not starting: automatic restarts are suspended; a restart through the API resumes them', {
          process: this.name,
          recentCrashes: this.recentCrashCount(),
        });
        return;
      }
      if (found === 'gone' && this.config.autoRestart && this.record.autoRestartAt) {
        // A previous agent was waiting out the back-off (or the process ended while the agent was
        // away): keep to the schedule instead of starting at once.
        if (!this.autoRestartTimer) {
          this.armAutoRestart(Date.parse(this.record.autoRestartAt));
        }
        return;
      }
      if (found === 'gone' && this.config.startOnBoot) {
        if (expected) {
          await this.startLocked(`startOnBoot (role ${role})`, 'vigil-agent');
        } else {
          this.deps.log.info('not starting: not expected on this node now', {
            process: this.name,
            role,
            runOn: this.config.runOn,
          });
        }
      }
    }).catch((e: unknown) => {
      this.deps.log.error('could not start at boot', { process: this.name, error: e });
    });
  }

  private async startLocked(reason: string, requestedBy: string): Promise<StartResult> {
    this.beginGeneration();
    try {
      await this.launch(reason);
    } catch (e) {
      this.state = 'crashed';
      this.event('start_failed', `${reason}: ${(e as Error).message}`, { requestedBy });
      throw new OperationError(`could not start ${this.name}: ${(e as Error).message}`);
    }
    return this.result();
  }

  protected result(): StartResult {
    return { generation: this.record.generation, pid: this.record.pid, startedAt: this.record.startedAt };
  }

  private checkGeneration(req: ControlRequest): void {
    if (req.ifGeneration !== undefined && req.ifGeneration !== this.record.generation) {
      throw new ConflictError(this.record.generation, req.ifGeneration);
    }
  }

  /**
   * What every restart, start and stop does first, inside the process's exclusive section: refuse
   * while the agent shuts down, see the process as it is now, refuse a stale generation; then who
   * asked and why, for the events.
   */
  private async admitControl(req: ControlRequest): Promise<{ requestedBy: string; why: string }> {
    if (this.closed) {
      throw new UnavailableError('the agent is shutting down');
    }
    await this.refresh();
    this.checkGeneration(req);
    return { requestedBy: req.requestedBy ?? 'unknown', why: req.reason ?? 'no reason given' };
  }

  /** A restart or start through the API: it also clears the flap guard's history and resumes automatic restarts. */
  restart(req: ControlRequest, action: 'restart' | 'start' = 'restart'): Promise<StartResult> {
    return this.control(req, action, false);
  }

  private control(req: ControlRequest, action: 'restart' | 'start', automatic: boolean): Promise<StartResult> {
    return this.exclusive(async () => {
      const { requestedBy, why } = await this.admitControl(req);
      if (action === 'start' && this.isUp()) {
        return this.result();
      }
      this.event(`${action}_requested`, why, { requestedBy, state: this.state, pid: this.record.pid });
      this.clearAutoRestart();
      this.record.autoRestartAt = null;
      if (!automatic) {
        this.record.crashTimes = [];
        this.record.autoRestartSuspended = false;
      }
      const wasUp = this.isUp();
      try {
        if (wasUp) {
          await this.relaunch(`${action} requested by ${requestedBy}: ${why}`);
        } else {
          this.beginGeneration();
          await this.launch(`${action} requested by ${requestedBy}: ${why}`);
        }
      } catch (e) {
        // A start that failed half-way must not leave the process looking as if it were coming up.
        if (this.state !== 'running') {
          this.state = 'crashed';
        }
        this.event(`${action}_failed`, `${why}: ${(e as Error).message}`, { requestedBy });
        throw new OperationError(`could not ${action} ${this.name}: ${(e as Error).message}`);
      }
      // Any start the API (or autoRestart) asked for counts, whether it was up or had crashed.
      this.record.restarts++;
      this.saveRecord();
      this.event(`${action}_done`, why, { requestedBy, pid: this.record.pid, startedAt: this.record.startedAt });
      return this.result();
    });
  }

  stop(req: ControlRequest): Promise<{ generation: number; state: ProcessState }> {
    return this.exclusive(async () => {
      const { requestedBy, why } = await this.admitControl(req);
      this.forgetAutoRestart();
      if (!this.isUp() && this.state !== 'stopping') {
        return { generation: this.record.generation, state: this.state };
      }
      this.event('stop_requested', why, { requestedBy, pid: this.record.pid });
      try {
        await this.terminate(`stop requested by ${requestedBy}: ${why}`);
      } catch (e) {
        this.event('stop_failed', `${why}: ${(e as Error).message}`, { requestedBy });
        throw new OperationError(`could not stop ${this.name}: ${(e as Error).message}`);
      }
      this.event('stop_done', why, { requestedBy });
      return { generation: this.record.generation, state: this.state };
    });
  }

  /** Stops the process as part of the agent's own shutdown. */
  async shutdown(): Promise<void> {
    this.clearAutoRestart();
    await this.exclusive(async () => {
      this.closed = true;
      if (this.stopsWithAgent && (this.isUp() || this.state === 'stopping')) {
        await this.terminate('the agent is stopping');
      }
      this.close();
    });
  }

  protected close(): void {}

  /**
   * Called by a kind when its process ended without being asked to.
   * Records the exit and, with autoRestart, schedules a restart with backoff.
   */
  protected unexpectedExit(code: number | null, signal: string | null, reason: string): void {
    const crashed = code !== 0 || signal !== null;
    this.state = crashed ? 'crashed' : 'stopped';
    const now = Date.now();
    this.record.lastExit = { code, signal, at: new Date(now).toISOString() };
    const pid = this.record.pid;
    this.record.pid = null;
    this.record.pidStartTicks = null;
    this.noteCrash(now);
    this.saveRecord();
    this.event(crashed ? 'crashed' : 'exited', reason, {
      code,
      signal,
      pid,
      recentCrashes: this.recentCrashCount(now),
    });
    if (this.config.autoRestart && !this.closed) {
      this.scheduleAutoRestart(now);
    }
  }

  /** Called by a kind when its process ended because it was asked to. */
  protected expectedExit(code: number | null, signal: string | null, reason: string): void {
    this.state = 'stopped';
    this.record.lastExit = { code, signal, at: new Date().toISOString() };
    const pid = this.record.pid;
    this.record.pid = null;
    this.record.pidStartTicks = null;
    this.saveRecord();
    this.event('exited', reason, { code, signal, pid });
  }

  /** Cancels the timer only: the schedule stays in the record (the agent's own shutdown keeps it for the next agent). */
  private clearAutoRestart(): void {
    if (this.autoRestartTimer) {
      clearTimeout(this.autoRestartTimer);
    }
    this.autoRestartTimer = undefined;
  }

  /** Cancels the scheduled automatic restart for good (a stop through the API). */
  private forgetAutoRestart(): void {
    this.clearAutoRestart();
    if (this.record.autoRestartAt) {
      this.record.autoRestartAt = null;
      this.saveRecord();
    }
  }

  private crashTimes(now: number): number[] {
    return recentCrashes(
      (this.record.crashTimes ?? []).map((t) => Date.parse(t)),
      now
    );
  }

  private recentCrashCount(now = Date.now()): number {
    return this.crashTimes(now).length;
  }

  /** Adds an unexpected exit to the flap guard's history, which keeps only the recent ones. */
  private noteCrash(now: number): void {
    this.record.crashTimes = [...this.crashTimes(now), now].map((t) => new Date(t).toISOString());
  }

  private scheduleAutoRestart(now: number): void {
    if (this.record.autoRestartSuspended) {
      return;
    }
    const decision = nextAutoRestart(this.crashTimes(now), now);
    if (decision.action === 'suspend') {
      this.clearAutoRestart();
      this.record.autoRestartSuspended = true;
      this.record.autoRestartAt = null;
      this.saveRecord();
      this.event(
        'auto_restart_suspended',
        `${decision.recentCrashes} crashes within 5 minutes; automatic restarts resume after a restart through the API`,
        { recentCrashes: decision.recentCrashes }
      );
      return;
    }
    this.armAutoRestart(now + decision.delayMs);
  }

  /** Persists when the automatic restart is due and sets the timer for it. */
  private armAutoRestart(at: number): void {
    this.clearAutoRestart();
    this.record.autoRestartAt = new Date(at).toISOString();
    this.saveRecord();
    const delay = Math.max(0, at - Date.now());
    this.autoRestartTimer = setTimeout(() => {
      this.autoRestartTimer = undefined;
      this.record.autoRestartAt = null;
      this.saveRecord();
      void this.deps.role().then((role) => {
        if (this.closed || !isExpected(this.config.runOn, role)) {
          return;
        }
        const reason = `${this.recentCrashCount()} unexpected exit(s) within 5 minutes; automatic restart after ${delay} ms`;
        this.control({ requestedBy: 'vigil-agent (autoRestart)', reason }, 'start', true).catch((e: unknown) => {
          this.deps.log.error('automatic restart failed', { process: this.name, error: e });
          // A start that fails counts like a crash, so that it is retried on the same schedule
          // and the flap guard ends it.
          if (e instanceof OperationError && this.state === 'crashed' && this.config.autoRestart && !this.closed) {
            const now = Date.now();
            this.noteCrash(now);
            this.saveRecord();
            this.scheduleAutoRestart(now);
          }
        });
      });
    }, delay);
  }

  /** The flap guard as it stands, for the debug view. */
  flapGuard(): Record<string, unknown> {
    return {
      crashTimes: this.record.crashTimes ?? [],
      autoRestartAt: this.record.autoRestartAt ?? null,
      autoRestartSuspended: Boolean(this.record.autoRestartSuspended),
      timerArmed: this.autoRestartTimer !== undefined,
    };
  }

  async status(role: ObservedRole): Promise<ProcessStatus> {
    this.lastRole = role;
    await this.refresh();
    return {
      name: this.name,
      kind: this.config.kind,
      state: this.state,
      expected: isExpected(this.config.runOn, role),
      pid: this.isUp() || this.state === 'stopping' ? this.record.pid : null,
      generation: this.record.generation,
      startedAt: this.isUp() || this.state === 'stopping' ? this.record.startedAt : null,
      restarts: this.record.restarts,
      lastExit: this.record.lastExit,
      protection: this.protection(),
      autoRestart: this.config.autoRestart,
      autoRestartSuspended: Boolean(this.record.autoRestartSuspended),
      recentCrashes: this.recentCrashCount(),
      autoRestartAt: this.record.autoRestartAt ?? null,
    };
  }
}
