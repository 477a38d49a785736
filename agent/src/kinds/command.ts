// kind "command": the agent starts the process itself, in its own process group, and owns it.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ProcessSupervisor, type SupervisorDeps } from './supervisor';
import type { ProcessConfig } from '../config';
import { cmdline, groupExists, isSameProcessAlive, procInfo, signalGroup } from './procfs';

interface Exit {
  code: number | null;
  signal: string | null;
}

interface Running {
  pid: number;
  adopted: boolean;
  exited: Promise<Exit>;
  poll?: NodeJS.Timeout;
}

const LOG_ROTATE_BYTES = 10 * 1024 * 1024;
const ADOPTED_POLL_MS = 250;

export class CommandSupervisor extends ProcessSupervisor {
  readonly stopsWithAgent = true;
  private running?: Running;
  private stopRequested = false;
  private readonly logFile: string;

  constructor(config: ProcessConfig, deps: SupervisorDeps) {
    super(config, deps);
    const dir = path.join(deps.stateDir, 'logs');
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.logFile = path.join(dir, `${config.name}.log`);
  }

  protected get argv(): string[] {
    return this.config.command as string[];
  }

  private openLog(): number {
    try {
      if (fs.statSync(this.logFile).size > LOG_ROTATE_BYTES) fs.renameSync(this.logFile, `${this.logFile}.1`);
    } catch {
      // no log yet
    }
    return fs.openSync(this.logFile, 'a', 0o600);
  }

  protected async launch(reason: string): Promise<void> {
    this.state = 'starting';
    this.stopRequested = false;
    const fd = this.openLog();
    const [file, ...args] = this.argv;
    let child: ChildProcess;
    try {
      // detached: a new session and process group, so the whole tree can be signalled
      // and it survives the agent being killed (the next agent adopts it).
      child = spawn(file as string, args, {
        detached: true,
        stdio: ['ignore', fd, fd],
        cwd: this.config.cwd,
        env: { ...process.env, ...this.config.env },
      });
      await new Promise<void>((resolve, reject) => {
        child.once('spawn', resolve);
        child.once('error', reject);
      });
    } finally {
      fs.closeSync(fd);
    }
    const pid = child.pid as number;
    const exited = new Promise<Exit>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    child.on('error', (e) => this.deps.log.warn('process error', { process: this.name, error: e }));
    this.track({ pid, adopted: false, exited });
    this.record.pid = pid;
    this.record.pidStartTicks = procInfo(pid)?.startTicks ?? null;
    this.record.startedAt = new Date().toISOString();
    this.record.command = this.argv;
    this.state = 'running';
    this.saveRecord();
    this.event('started', reason, { pid });
  }

  private track(r: Running): void {
    this.running = r;
    void r.exited.then((exit) => {
      if (r.poll) clearInterval(r.poll);
      // Whatever else the process group left behind must not outlive it.
      if (groupExists(r.pid)) signalGroup(r.pid, 'SIGKILL');
      if (this.running !== r) return;
      this.running = undefined;
      if (this.stopRequested) return; // terminate() records it
      const why =
        exit.signal !== null
          ? `killed by signal ${exit.signal}`
          : exit.code !== null
            ? `exited with code ${exit.code}`
            : 'process disappeared (it was adopted, so its exit status is unknown)';
      this.unexpectedExit(exit.code, exit.signal, why);
    });
  }

  protected async terminate(reason: string): Promise<void> {
    const r = this.running;
    if (!r) {
      this.state = 'stopped';
      return;
    }
    this.stopRequested = true;
    this.state = 'stopping';
    signalGroup(r.pid, this.config.stopSignal);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      r.exited.then(() => false),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), this.config.stopTimeoutMs))),
    ]);
    if (timer) clearTimeout(timer);
    let how = `${this.config.stopSignal}`;
    if (timedOut) {
      this.deps.log.warn('process did not stop in time; killing it', { process: this.name, pid: r.pid, stopTimeoutMs: this.config.stopTimeoutMs });
      signalGroup(r.pid, 'SIGKILL');
      how += ` then SIGKILL after ${this.config.stopTimeoutMs} ms`;
    }
    const exit = await r.exited;
    // Let track() finish its group clean-up before the process counts as stopped.
    await new Promise<void>((resolve) => setImmediate(resolve));
    this.expectedExit(exit.code, exit.signal, `${reason} (${how})`);
  }

  protected async recoverLeftovers(): Promise<'running' | 'gone'> {
    const r = this.record;
    if (r.pid === null) {
      this.state = r.lastExit && (r.lastExit.code !== 0 || r.lastExit.signal !== null) ? 'crashed' : 'stopped';
      return 'gone';
    }
    const pid = r.pid;
    if (!isSameProcessAlive(pid, r.pidStartTicks)) {
      this.unexpectedExitWhileAway(pid);
      return 'gone';
    }
    const current = cmdline(pid);
    const same = current !== undefined && JSON.stringify(current) === JSON.stringify(this.argv);
    this.adopt(pid);
    if (same) {
      this.event('adopted', `pid ${pid} was left running by a previous agent; supervising it again`, { pid });
      return 'running';
    }
    // The configuration changed while the agent was away: stop the old command cleanly.
    await this.terminate(`pid ${pid} runs a different command than configured`);
    this.event('replaced', `stopped pid ${pid}, which ran ${JSON.stringify(current ?? [])} instead of the configured command`, {
      pid,
    });
    return 'gone';
  }

  private unexpectedExitWhileAway(pid: number): void {
    this.record.pid = pid;
    this.unexpectedExit(null, null, `pid ${pid} ended while the agent was not running; exit status unknown`);
  }

  private adopt(pid: number): void {
    const startTicks = this.record.pidStartTicks;
    let poll: NodeJS.Timeout | undefined;
    const exited = new Promise<Exit>((resolve) => {
      poll = setInterval(() => {
        if (!isSameProcessAlive(pid, startTicks)) resolve({ code: null, signal: null });
      }, ADOPTED_POLL_MS);
      poll.unref();
    });
    this.track({ pid, adopted: true, exited, poll });
    this.state = 'running';
  }

  protected close(): void {
    if (this.running?.poll) clearInterval(this.running.poll);
  }

  debug(): Record<string, unknown> {
    return {
      command: this.argv,
      logFile: this.logFile,
      processGroup: this.running?.pid ?? null,
      adopted: this.running?.adopted ?? false,
      stopRequested: this.stopRequested,
    };
  }
}
