// Test helpers: run the real agent as a child process on loopback.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as os from 'node:os';
import * as path from 'node:path';
import { after } from 'node:test';
import { stringify } from 'yaml';

export const AGENT_DIR = path.resolve(__dirname, '..');
export const CLI = path.join(AGENT_DIR, 'src', 'cli.ts');
export const READ_TOKEN = 'read-token-0123456789abcdef';
export const CONTROL_TOKEN = 'control-token-0123456789abcdef';

/** Every folder tempDir() made in this process: removed when it exits, whatever the test did. */
const madeDirs: string[] = [];
process.on('exit', () => {
  for (const d of madeDirs) {
    try {
      fs.rmSync(d, { recursive: true, force: true });
    } catch {
      // make test's leftover check names what could not be removed
    }
  }
});

export function tempDir(prefix = 'vigil-agent-test-'): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  madeDirs.push(d);
  return d;
}

/** A tempDir() whose directories are removed after the tests of the file that calls it. */
export function tempDirsRemovedAfter(): (prefix?: string) => string {
  const made: string[] = [];
  after(() => {
    for (const d of made.splice(0)) {
      fs.rmSync(d, { recursive: true, force: true });
    }
  });
  return (prefix?: string) => {
    const d = tempDir(prefix);
    made.push(d);
    return d;
  };
}

/** Polls `check` until it returns a truthy value or the deadline passes. */
export async function waitFor<T>(
  what: string,
  check: () => T | Promise<T>,
  timeoutMs = 10_000,
  everyMs = 25
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) {
        return v as NonNullable<T>;
      }
    } catch (e) {
      lastError = e;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${String(lastError)}` : ''}`
      );
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export interface RunningAgent {
  child: ChildProcess;
  port: number;
  baseUrl: string;
  stderr: () => string;
  logLines: () => Array<Record<string, unknown>>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stop: (signal?: NodeJS.Signals) => Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function runCli(args: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', CLI, ...args], {
    cwd: AGENT_DIR,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** Runs the CLI to completion and returns its exit code and output. */
export async function runCliToEnd(
  args: string[],
  env: NodeJS.ProcessEnv = {}
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = runCli(args, env);
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  // 'close', not 'exit': output can still be in flight when the process has exited.
  const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
  return { code, stdout, stderr };
}

export function writeConfig(dir: string, config: Record<string, unknown>, name = 'agent.yaml'): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, stringify(config));
  return file;
}

export function baseConfig(dir: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    listen: '127.0.0.1:0',
    stateDir: path.join(dir, 'state'),
    auth: { readToken: READ_TOKEN, controlToken: CONTROL_TOKEN },
    processes: [],
    ...extra,
  };
}

export async function startAgent(configFile: string, env: NodeJS.ProcessEnv = {}): Promise<RunningAgent> {
  const child = runCli(['run', '--config', configFile], env);
  let err = '';
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  child.stdout?.resume();
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal }))
  );
  let done = false;
  void exited.then(() => (done = true));
  const logLines = () =>
    err
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => {
        try {
          return JSON.parse(l) as Record<string, unknown>;
        } catch {
          return { unparsed: l };
        }
      });
  // An agent that exits instead of listening fails the wait at once, not at the deadline.
  const early = exited.then(() => {
    throw new Error(`agent exited early:\n${err}`);
  });
  const listening = await Promise.race([
    waitFor(
      'the agent to log its listening address',
      () => (done ? { msg: 'exited' } : logLines().find((l) => l.msg === 'listening')),
      20_000
    ),
    early,
  ]);
  if (listening.msg !== 'listening') {
    await early;
  }
  const port = Number(String(listening.address).split(':').pop());
  const scheme = listening.tls ? 'https' : 'http';
  return {
    child,
    port,
    baseUrl: `${scheme}://127.0.0.1:${port}`,
    stderr: () => err,
    logLines,
    exited,
    stop: async (signal: NodeJS.Signals = 'SIGTERM') => {
      if (!done) {
        child.kill(signal);
      }
      return exited;
    },
  };
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  json: any;
}

export function request(
  url: string,
  opts: { method?: string; token?: string; body?: string | Buffer; headers?: Record<string, string>; ca?: Buffer } = {}
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...opts.headers };
    if (opts.token !== undefined) {
      headers.authorization = `Bearer ${opts.token}`;
    }
    if (opts.body !== undefined) {
      headers['content-type'] ??= 'application/json';
    }
    const mod = url.startsWith('https:') ? https : http;
    const req = mod.request(url, { method: opts.method ?? 'GET', headers, ca: opts.ca, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    if (opts.body !== undefined) {
      req.end(opts.body);
    } else {
      req.end();
    }
  });
}

export const CHILD = path.join(__dirname, 'fixtures', 'child.js');

/** Live (non-zombie) processes whose command line contains `marker`. */
export function processesWithMarker(marker: string): number[] {
  const out: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) {
      continue;
    }
    try {
      const cmd = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (!cmd.includes(marker)) {
        continue;
      }
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
      if (state !== 'Z' && state !== 'X') {
        out.push(Number(entry));
      }
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

export function killMarked(marker: string): void {
  for (const pid of processesWithMarker(marker)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/** A supervised child for the tests; `marker` makes its processes findable in /proc. */
export function childProcessConfig(marker: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { name: 'cdp', kind: 'command', command: [process.execPath, CHILD, marker], stopTimeout: '5s', ...extra };
}

export const read = (url: string) => request(url, { token: READ_TOKEN });
export const control = (url: string, body: unknown = {}) =>
  request(url, { method: 'POST', token: CONTROL_TOKEN, body: JSON.stringify(body) });

/**
 * The agents and marked child processes a test file starts, stopped (SIGKILL) once its tests are
 * done, so that no test leaves a process behind even when it fails half-way; then the marked
 * directories are removed.
 */
export function stopAfterTests(): {
  agents: RunningAgent[];
  markers: string[];
  /** A new temporary directory and the marker for the children started there, killed (and the directory removed) after the tests. */
  markedDir: () => { dir: string; marker: string };
  /** Starts an agent on `configFile`, stopped after the tests. */
  start: (configFile: string, env?: NodeJS.ProcessEnv) => Promise<RunningAgent>;
} {
  const agents: RunningAgent[] = [];
  const markers: string[] = [];
  const dirs: string[] = [];
  after(async () => {
    for (const a of agents) {
      await a.stop('SIGKILL');
    }
    for (const m of markers) {
      killMarked(m);
    }
    for (const d of dirs) {
      fs.rmSync(d, { recursive: true, force: true });
    }
  });
  const markedDir = () => {
    const dir = tempDir();
    const marker = markerFor(dir);
    markers.push(marker);
    dirs.push(dir);
    return { dir, marker };
  };
  const start = async (configFile: string, env: NodeJS.ProcessEnv = {}) => {
    const a = await startAgent(configFile, env);
    agents.push(a);
    return a;
  };
  return { agents, markers, markedDir, start };
}

/** Every event the agent has, from the first. */
export async function allEvents(agent: RunningAgent): Promise<Array<Record<string, unknown>>> {
  return (await read(`${agent.baseUrl}/v1/events?since=0`)).json.events as Array<Record<string, unknown>>;
}

/** The marker of the test children (childProcessConfig) started for the test in `dir`. */
export function markerFor(dir: string): string {
  return `vigil-test-marker-${path.basename(dir)}`;
}

/** The agent's /v1/status answer, read with the read token. */
export async function statusOf(agent: RunningAgent): Promise<any> {
  return (await read(`${agent.baseUrl}/v1/status`)).json;
}
