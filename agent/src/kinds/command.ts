// kind "command": the agent starts the process itself, in its own process group, and owns it.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ProcessSupervisor, type SupervisorDeps } from './supervisor';
import type { ProcessConfig } from '../config';
import { describeArgv, redactArgv } from '../redact';
import {
  cmdline,
  groupExists,
  isSameProcessAlive,
  procInfo,
  sessionLeadersWith,
  signalGroup,
  type SessionLeader,
} from './procfs';

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

/**
 * Every process the agent starts carries these in its environment: which agent (its stateDir),
 * which configured process and which generation. An agent killed between the spawn and the
 * record of the pid leaves a process only these can tell apart; the next agent finds it by them.
 */
export const MARKER_VARS = {
  stateDir: 'VIGIL_STATE_DIR',
  process: 'VIGIL_PROCESS',
  generation: 'VIGIL_GENERATION',
} as const;

export class CommandSupervisor extends ProcessSupervisor {
  readonly stopsWithAgent = true;
  private running?: Running;
  private stopRequested = false;
  private readonly logFile: string;
  /** The stateDir as the marker names it: one spelling whatever path the configuration used. */
  private readonly stateDirId: string;

  constructor(config: ProcessConfig, deps: SupervisorDeps) {
    super(config, deps);
    const dir = path.join(deps.stateDir, 'logs');
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.logFile = path.join(dir, `${config.name}.log`);
    this.stateDirId = fs.realpathSync(deps.stateDir);
  }

  protected get argv(): string[] {
    return this.config.command as string[];
  }

  private openLog(): number {
    try {
      if (fs.statSync(this.logFile).size > LOG_ROTATE_BYTES) {
        fs.renameSync(this.logFile, `${this.logFile}.1`);
      }
    } catch {
      // no log yet
    }
    return fs.openSync(this.logFile, 'a', 0o600);
  }

  protected async launch(reason: string): Promise<void> {
    this.state = 'starting';
    this.stopRequested = false;
    // The intent, persisted before the process exists (the generation is already): what the next
    // agent adopts if this one is killed before it records the pid below.
    this.record.pid = null;
    this.record.pidStartTicks = null;
    this.record.startedAt = new Date().toISOString();
    this.record.command = this.argv;
    this.saveRecord();
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
        env: {
          ...process.env,
          ...this.config.env,
          [MARKER_VARS.stateDir]: this.stateDirId,
          [MARKER_VARS.process]: this.name,
          [MARKER_VARS.generation]: String(this.record.generation),
        },
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
    this.state = 'running';
    this.saveRecord();
    this.event('started', reason, { pid });
  }

  private track(r: Running): void {
    this.running = r;
    void r.exited.then((exit) => {
      if (r.poll) {
        clearInterval(r.poll);
      }
      // Whatever else the process group left behind must not outlive it.
      if (groupExists(r.pid)) {
        signalGroup(r.pid, 'SIGKILL');
      }
      if (this.running !== r) {
        return;
      }
      this.running = undefined;
      if (this.stopRequested) {
        return;
      } // terminate() records it
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
    if (timer) {
      clearTimeout(timer);
    }
    let how = `${this.config.stopSignal}`;
    if (timedOut) {
      this.deps.log.warn('process did not stop in time; killing it', {
        process: this.name,
        pid: r.pid,
        stopTimeoutMs: this.config.stopTimeoutMs,
      });
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
    const recordedAlive = r.pid !== null && isSameProcessAlive(r.pid, r.pidStartTicks);
    // Whatever an earlier agent started for this process and did not record: adopt the one it
    // was starting when it was killed (this generation, this command), end every other.
    const unrecorded = this.markedProcesses().filter((m) => !(recordedAlive && m.pid === r.pid));
    const adoptable =
      r.pid === null
        ? unrecorded.find(
            (m) => m.env.get(MARKER_VARS.generation) === String(r.generation) && sameArgv(cmdline(m.pid), this.argv)
          )
        : undefined;
    await Promise.all(unrecorded.filter((m) => m !== adoptable).map((m) => this.endLeftover(m)));
    if (adoptable) {
      r.pid = adoptable.pid;
      r.pidStartTicks = adoptable.info.startTicks;
      r.startedAt ??= new Date().toISOString();
      r.command = this.argv;
      this.saveRecord();
      this.adopt(adoptable.pid);
      this.event(
        'adopted',
        `pid ${adoptable.pid} was started by a previous agent that was stopped before it recorded the pid (found by its ${MARKER_VARS.generation}); supervising it again`,
        { pid: adoptable.pid }
      );
      return 'running';
    }
    if (r.pid === null) {
      this.state = r.lastExit && (r.lastExit.code !== 0 || r.lastExit.signal !== null) ? 'crashed' : 'stopped';
      return 'gone';
    }
    const pid = r.pid;
    if (!recordedAlive) {
      this.unexpectedExitWhileAway(pid);
      return 'gone';
    }
    const current = cmdline(pid);
    const same = sameArgv(current, this.argv);
    this.adopt(pid);
    if (same) {
      this.event('adopted', `pid ${pid} was left running by a previous agent; supervising it again`, { pid });
      return 'running';
    }
    // The configuration changed while the agent was away: stop the old command cleanly.
    await this.terminate(`pid ${pid} runs a different command than configured`);
    // The event is for every read token holder: the command line (and its secrets) goes to the log only.
    this.deps.log.warn('replaced a process running another command', {
      process: this.name,
      pid,
      command: describeArgv(current),
    });
    this.event(
      'replaced',
      `stopped pid ${pid}, which ran another command than the configured one (see the agent log)`,
      { pid }
    );
    return 'gone';
  }

  /** Session leaders started by an agent on this stateDir for this process, found by their marker. */
  private markedProcesses(): SessionLeader[] {
    return sessionLeadersWith({ [MARKER_VARS.stateDir]: this.stateDirId, [MARKER_VARS.process]: this.name });
  }

  /** Ends a process nobody supervises, as terminate() would: its group, stopSignal, then SIGKILL after stopTimeout. */
  private async endLeftover(m: SessionLeader): Promise<void> {
    const generation = m.env.get(MARKER_VARS.generation) ?? 'unknown';
    const command = cmdline(m.pid) ?? [];
    const gone = () => !isSameProcessAlive(m.pid, m.info.startTicks);
    const waitGone = async (ms: number) => {
      const deadline = Date.now() + ms;
      while (!gone() && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
      return gone();
    };
    signalGroup(m.pid, this.config.stopSignal);
    let how = this.config.stopSignal as string;
    if (!(await waitGone(this.config.stopTimeoutMs))) {
      signalGroup(m.pid, 'SIGKILL');
      how += ` then SIGKILL after ${this.config.stopTimeoutMs} ms`;
      await waitGone(2000);
    }
    // Whatever else its group left behind goes too, as when a supervised process ends.
    if (groupExists(m.pid)) {
      signalGroup(m.pid, 'SIGKILL');
    }
    this.deps.log.warn('stopped a leftover process', {
      process: this.name,
      pid: m.pid,
      generation,
      command: describeArgv(command),
    });
    this.event(
      'leftover_stopped',
      `pid ${m.pid} (generation ${generation}) was started for this process by an earlier agent and is not the one supervised; stopped it (${how})`,
      { pid: m.pid }
    );
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
        if (!isSameProcessAlive(pid, startTicks)) {
          resolve({ code: null, signal: null });
        }
      }, ADOPTED_POLL_MS);
      poll.unref();
    });
    this.track({ pid, adopted: true, exited, poll });
    this.state = 'running';
  }

  protected close(): void {
    if (this.running?.poll) {
      clearInterval(this.running.poll);
    }
  }

  debug(): Record<string, unknown> {
    return {
      command: redactArgv(this.argv),
      logFile: this.logFile,
      processGroup: this.running?.pid ?? null,
      adopted: this.running?.adopted ?? false,
      stopRequested: this.stopRequested,
      marker: {
        [MARKER_VARS.stateDir]: this.stateDirId,
        [MARKER_VARS.process]: this.name,
        [MARKER_VARS.generation]: String(this.record.generation),
      },
    };
  }
}

function sameArgv(a: string[] | undefined, b: string[]): boolean {
  return a !== undefined && JSON.stringify(a) === JSON.stringify(b);
}
