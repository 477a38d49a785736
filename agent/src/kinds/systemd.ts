// kind "systemd": systemd owns the process; the agent observes it with `systemctl show` and
// acts with `systemctl start|stop|restart`. Stopping the agent leaves the unit alone.
import { execFile } from 'node:child_process';
import * as os from 'node:os';
import { ProcessSupervisor, type ProcessState, type SupervisorDeps } from './supervisor';
import type { ProcessConfig } from '../config';

const PROPERTIES = [
  'LoadState',
  'ActiveState',
  'SubState',
  'MainPID',
  'ExecMainStartTimestamp',
  'ExecMainCode',
  'ExecMainStatus',
  'Result',
];
const OBSERVE_EVERY_MS = 2000;
const CACHE_MS = 1000;

const signalNames = new Map<number, string>(Object.entries(os.constants.signals).map(([name, n]) => [n, name]));

export function systemctl(args: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      'systemctl',
      args,
      { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 1 << 20 },
      (err, stdout, stderr) => {
        if (err) {
          const e = err as NodeJS.ErrnoException & { killed?: boolean };
          const detail = String(stderr).trim().split('\n')[0] || e.message;
          reject(
            new Error(
              e.killed
                ? `systemctl ${args[0]} timed out after ${timeoutMs} ms`
                : `systemctl ${args[0]} failed: ${detail}`
            )
          );
        } else {
          resolve(String(stdout));
        }
      }
    );
  });
}

export function parseShow(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) {
      out[line.slice(0, i)] = line.slice(i + 1).trim();
    }
  }
  return out;
}

function stateOf(active: string | undefined): ProcessState {
  switch (active) {
    case 'active':
    case 'reloading':
      return 'running';
    case 'activating':
      return 'starting';
    case 'deactivating':
      return 'stopping';
    case 'failed':
      return 'crashed';
    default:
      return 'stopped';
  }
}

function parseTimestamp(v: string | undefined): string | null {
  if (!v || v === 'n/a' || v === '0') {
    return null;
  }
  // "Thu 2026-11-26 04:20:30 UTC": drop the weekday; Date.parse handles the rest for UTC.
  const m = /^(?:\w{3} )?(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2})(?: (\S+))?$/.exec(v);
  if (!m) {
    return null;
  }
  const zone = m[3] === undefined || m[3] === 'UTC' ? 'Z' : '';
  const t = Date.parse(`${m[1]}T${m[2]}${zone}`);
  return Number.isNaN(t) ? null : new Date(t).toISOString();
}

function exitOf(p: Record<string, string>): { code: number | null; signal: string | null } {
  const code = Number(p.ExecMainCode);
  const status = Number(p.ExecMainStatus);
  if (code === 2 || code === 3) {
    return { code: null, signal: signalNames.get(status) ?? `signal ${status}` };
  }
  return { code: Number.isFinite(status) ? status : null, signal: null };
}

export class SystemdSupervisor extends ProcessSupervisor {
  readonly stopsWithAgent = false;
  private observedAt = 0;
  private busy = 0;
  private timer?: NodeJS.Timeout;
  private last: Record<string, string> = {};

  constructor(config: ProcessConfig, deps: SupervisorDeps) {
    super(config, deps);
  }

  private get unit(): string {
    return this.config.unit as string;
  }

  private async show(): Promise<Record<string, string>> {
    const p = parseShow(await systemctl(['show', this.unit, `--property=${PROPERTIES.join(',')}`], 10_000));
    this.last = p;
    this.observedAt = Date.now();
    return p;
  }

  /** Applies an observation made outside any operation of ours: changes there are someone else's doing. */
  private observe(p: Record<string, string>): void {
    const next = stateOf(p.ActiveState);
    const pid = Number(p.MainPID) > 0 ? Number(p.MainPID) : null;
    const wasUp = this.isUp();
    if (wasUp && next === 'running' && pid !== null && this.record.pid !== null && pid !== this.record.pid) {
      this.record.generation++;
      this.record.pid = pid;
      this.record.startedAt = parseTimestamp(p.ExecMainStartTimestamp) ?? new Date().toISOString();
      this.saveRecord();
      this.event('started', `unit ${this.unit} restarted outside the agent`, { pid });
    } else if (wasUp && (next === 'crashed' || next === 'stopped')) {
      const exit = exitOf(p);
      this.unexpectedExit(
        next === 'crashed' && exit.code === 0 && exit.signal === null ? 1 : exit.code,
        exit.signal,
        `unit ${this.unit} is ${p.ActiveState} (result ${p.Result ?? 'unknown'})`
      );
    } else if (!wasUp && next === 'running') {
      this.record.generation++;
      this.record.pid = pid;
      this.record.startedAt = parseTimestamp(p.ExecMainStartTimestamp) ?? new Date().toISOString();
      this.saveRecord();
      this.event('started', `unit ${this.unit} started outside the agent`, { pid });
    }
    this.state = next;
    if (next === 'running' && pid !== null) {
      this.record.pid = pid;
    }
  }

  private refreshing?: Promise<void>;

  async refresh(): Promise<void> {
    if (this.busy > 0 || Date.now() - this.observedAt < CACHE_MS) {
      return;
    }
    // Concurrent status requests share one `systemctl show`.
    this.refreshing ??= this.show()
      .then(
        (p) => {
          if (this.busy === 0) {
            this.observe(p);
          }
        },
        (e: unknown) => this.deps.log.warn('cannot observe unit', { process: this.name, unit: this.unit, error: e })
      )
      .finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  private async act(verb: 'start' | 'restart', reason: string): Promise<void> {
    this.busy++;
    try {
      this.state = 'starting';
      await systemctl([verb, this.unit], this.config.stopTimeoutMs + 90_000);
      const p = await this.show();
      const state = stateOf(p.ActiveState);
      if (state !== 'running' && state !== 'starting') {
        this.state = state;
        throw new Error(`unit ${this.unit} is ${p.ActiveState} after systemctl ${verb}`);
      }
      this.state = state;
      this.record.pid = Number(p.MainPID) > 0 ? Number(p.MainPID) : null;
      this.record.startedAt = parseTimestamp(p.ExecMainStartTimestamp) ?? new Date().toISOString();
      this.saveRecord();
      this.event('started', reason, { pid: this.record.pid, unit: this.unit });
    } finally {
      this.busy--;
    }
  }

  protected launch(reason: string): Promise<void> {
    return this.act('start', reason);
  }

  protected relaunch(reason: string): Promise<void> {
    this.beginGeneration();
    return this.act('restart', reason);
  }

  protected async terminate(reason: string): Promise<void> {
    this.busy++;
    try {
      this.state = 'stopping';
      await systemctl(['stop', this.unit], this.config.stopTimeoutMs + 90_000);
      const p = await this.show();
      const exit = exitOf(p);
      this.expectedExit(exit.code, exit.signal, reason);
      this.state = stateOf(p.ActiveState);
    } finally {
      this.busy--;
    }
  }

  protected async recoverLeftovers(): Promise<'running' | 'gone'> {
    const p = await this.show();
    this.state = stateOf(p.ActiveState);
    if (!this.timer) {
      this.timer = setInterval(() => void this.refresh(), OBSERVE_EVERY_MS);
      this.timer.unref();
    }
    if (this.state === 'running' || this.state === 'starting') {
      const pid = Number(p.MainPID) > 0 ? Number(p.MainPID) : null;
      if (pid !== this.record.pid || this.record.generation === 0) {
        this.record.generation++;
        this.record.pid = pid;
        this.record.startedAt = parseTimestamp(p.ExecMainStartTimestamp) ?? new Date().toISOString();
        this.saveRecord();
      }
      this.event('adopted', `unit ${this.unit} is already ${p.ActiveState}`, { pid: this.record.pid, unit: this.unit });
      return 'running';
    }
    return 'gone';
  }

  protected close(): void {
    if (this.timer) {
      clearInterval(this.timer);
    }
  }

  debug(): Record<string, unknown> {
    return {
      unit: this.unit,
      lastObservation: this.last,
      observedAt: this.observedAt ? new Date(this.observedAt).toISOString() : null,
    };
  }
}
