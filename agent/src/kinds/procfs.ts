// Process identity from /proc: a pid alone is not an identity, since pids are reused.
import * as fs from 'node:fs';

export interface ProcInfo {
  state: string;
  startTicks: string;
  pgid: number;
  /** Session id: equal to the pid for a process that started its own session (setsid). */
  sid: number;
}

export function procInfo(pid: number): ProcInfo | undefined {
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) may contain spaces and parentheses: split after the last ')'.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { state: rest[0] ?? '?', pgid: Number(rest[2]), sid: Number(rest[3]), startTicks: rest[19] ?? '' };
}

/** The environment a process was started with; undefined when it is gone or not readable (another user's). */
export function environ(pid: number): Map<string, string> | undefined {
  let raw: string;
  try {
    raw = fs.readFileSync(`/proc/${pid}/environ`, 'utf8');
  } catch {
    return undefined;
  }
  const env = new Map<string, string>();
  for (const entry of raw.split('\0')) {
    const eq = entry.indexOf('=');
    if (eq > 0) {
      env.set(entry.slice(0, eq), entry.slice(eq + 1));
    }
  }
  return env;
}

export interface SessionLeader {
  pid: number;
  info: ProcInfo;
  env: Map<string, string>;
}

/**
 * Live session leaders whose environment has each of `vars` with that value. Children the agent
 * starts lead their own session; their descendants (same session) are not listed.
 */
export function sessionLeadersWith(vars: Record<string, string>): SessionLeader[] {
  const out: SessionLeader[] = [];
  let entries: string[];
  try {
    entries = fs.readdirSync('/proc');
  } catch {
    return out;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) {
      continue;
    }
    const pid = Number(entry);
    const info = procInfo(pid);
    if (!info || info.sid !== pid || info.state === 'Z' || info.state === 'X') {
      continue;
    }
    const env = environ(pid);
    if (env && Object.entries(vars).every(([k, v]) => env.get(k) === v)) {
      out.push({ pid, info, env });
    }
  }
  return out;
}

export function cmdline(pid: number): string[] | undefined {
  try {
    const raw = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    const parts = raw.split('\0');
    if (parts[parts.length - 1] === '') {
      parts.pop();
    }
    return parts;
  } catch {
    return undefined;
  }
}

/** True while `pid` is the same live (not zombie) process that had `startTicks`. */
export function isSameProcessAlive(pid: number, startTicks: string | null): boolean {
  const info = procInfo(pid);
  if (!info || info.state === 'Z' || info.state === 'X') {
    return false;
  }
  return startTicks === null || info.startTicks === startTicks;
}

/** True while any process of the group exists. */
export function groupExists(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function signalGroup(pgid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false;
  }
}
