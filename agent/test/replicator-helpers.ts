// Helpers for the replicator tests: run the real replicator process, read its status and
// journal, and compare trees.
import { createHash } from 'node:crypto';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { hashBuffer } from '../src/replicator/digest';
import type { JournalRecord } from '../src/replicator/journal';
import { allRecords, resolveChain } from '../src/replicator/segments';
import { rmrf } from '../src/replicator/fspath';
import { openStoreForReading } from '../src/replicator/store';
import { statusSchema, type ReplicatorStatus } from '../src/replicator/status';
import { AGENT_DIR, CLI, runCli, tempDir, waitFor } from './helpers';

export interface RunningReplicator {
  child: ChildProcess;
  pid: number;
  statusFile: string;
  log: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  status: () => ReplicatorStatus | undefined;
  stop: (signal?: NodeJS.Signals) => Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const running: RunningReplicator[] = [];

const roots: string[] = [];

/** Kills every replicator a test started and removes the directories replicatorDirs() gave (for `after`). */
export async function killReplicators(): Promise<void> {
  for (const r of running) {
    await r.stop('SIGKILL');
  }
  for (const root of roots.splice(0)) {
    // A test may have left something unreadable (mode 000) or mounted: make it removable first.
    try {
      execFileSync('chmod', ['-R', 'u+rwx', root], { stdio: 'ignore' });
    } catch {
      // gone already
    }
    rmrf(root); // paths of any length (the long-path test's)
  }
}

export function readStatus(file: string): ReplicatorStatus | undefined {
  try {
    return statusSchema.parse(JSON.parse(fs.readFileSync(file, 'utf8')));
  } catch {
    return undefined;
  }
}

export function startReplicator(
  source: string,
  target: string,
  statusFile: string,
  extra: string[] = [],
  env: NodeJS.ProcessEnv = {},
  as?: { uid: number; gid: number }
): RunningReplicator {
  const args = ['replicate', '--source', source, '--target', target, '--status', statusFile, ...extra];
  // As another user (an ordinary one, to whom permissions apply): the same command, its own uid.
  const child = as
    ? spawn(process.execPath, ['--import', 'tsx', CLI, ...args], {
        cwd: AGENT_DIR,
        env: { ...process.env, ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
        ...as,
      })
    : runCli(args, env);
  let err = '';
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  child.stdout?.resume();
  let done = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => {
      done = true;
      resolve({ code, signal });
    })
  );
  const r: RunningReplicator = {
    child,
    pid: child.pid as number,
    statusFile,
    log: () => err,
    exited,
    status: () => {
      const s = readStatus(statusFile);
      return s && s.pid === child.pid ? s : undefined;
    },
    stop: async (signal: NodeJS.Signals = 'SIGTERM') => {
      if (!done) {
        child.kill(signal);
      }
      return exited;
    },
  };
  running.push(r);
  return r;
}

/** Waits until this replicator reports `state` (default: caught up and watching, nothing pending). */
export async function waitState(
  r: RunningReplicator,
  state: ReplicatorStatus['state'] = 'watching',
  timeoutMs = 20_000
): Promise<ReplicatorStatus> {
  return waitFor(
    `replicator ${r.pid} to be ${state}`,
    async () => {
      const s = r.status();
      if (s?.state === state && (state !== 'watching' || s.pendingChanges === 0)) {
        return s;
      }
      if (r.child.exitCode !== null || r.child.signalCode !== null) {
        throw new Error(`replicator exited:\n${r.log()}`);
      }
      return undefined;
    },
    timeoutMs
  );
}

export interface Node {
  type: 'file' | 'dir' | 'link';
  sha256?: string;
  target?: string;
}

/** Every path under `root` with its type and content hash (what "equal trees" means here). */
export function snapshot(root: string): Map<string, Node> {
  const out = new Map<string, Node>();
  const walk = (rel: string) => {
    for (const d of fs.readdirSync(path.join(root, rel), { withFileTypes: true })) {
      const p = rel === '' ? d.name : `${rel}/${d.name}`;
      const abs = path.join(root, p);
      if (d.isSymbolicLink()) {
        out.set(p, { type: 'link', target: fs.readlinkSync(abs) });
      } else if (d.isDirectory()) {
        out.set(p, { type: 'dir' });
        walk(p);
      } else if (d.isFile()) {
        out.set(p, { type: 'file', sha256: createHash('sha256').update(fs.readFileSync(abs)).digest('hex') });
      }
    }
  };
  walk('');
  return out;
}

/** Differences between two snapshots, for assertion messages (empty when equal). */
export function diffTrees(a: Map<string, Node>, b: Map<string, Node>): string[] {
  const out: string[] = [];
  for (const [p, n] of a) {
    const m = b.get(p);
    if (!m) {
      out.push(`only in the first: ${p}`);
    } else if (JSON.stringify(m) !== JSON.stringify(n)) {
      out.push(`differs: ${p}`);
    }
  }
  for (const p of b.keys()) {
    if (!a.has(p)) {
      out.push(`only in the second: ${p}`);
    }
  }
  return out;
}

/** Waits until the mirror in `store` equals `source`. */
export async function waitMirror(source: string, store: string, timeoutMs = 20_000): Promise<void> {
  let last: string[] = [];
  try {
    await waitFor(
      'the mirror to equal the source',
      () => {
        last = diffTrees(snapshot(source), snapshot(path.join(store, 'mirror')));
        return last.length === 0;
      },
      timeoutMs,
      50
    );
  } catch (e) {
    throw new Error(`${(e as Error).message}; differences: ${last.slice(0, 10).join(', ')}`);
  }
}

/** Every record of the store's journal, in order, across its segments. */
export function journal(store: string): JournalRecord[] {
  return allRecords(resolveChain(store));
}
export const journalRecords = journal;

/** The journal's segments in order (the last is the writer's). */
export function segmentFiles(store: string): string[] {
  return resolveChain(store).segments.map((s) => s.file);
}

/** All segments' bytes together. */
export function journalBytes(store: string): number {
  return segmentFiles(store).reduce((n, f) => n + fs.statSync(f).size, 0);
}

export function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** The name `store` gives `data` among its objects, in the algorithm its marker names. */
export function storeHash(store: string, data: string | Buffer): string {
  return hashBuffer(openStoreForReading(store).hash, data);
}

/** A temporary root with an empty `source`, and where the store and status file go. */
export function replicatorDirs(prefix = 'vigil-repl-'): {
  root: string;
  source: string;
  store: string;
  status: string;
} {
  const root = tempDir(prefix);
  roots.push(root);
  const source = path.join(root, 'source');
  fs.mkdirSync(source);
  return { root, source, store: path.join(root, 'store'), status: path.join(root, 'status.json') };
}

/** Every object in the store re-hashed: the names whose content does not match. */
export function badObjects(store: string): string[] {
  const layout = openStoreForReading(store);
  const bad: string[] = [];
  for (const d of fs.readdirSync(layout.objects)) {
    for (const h of fs.readdirSync(path.join(layout.objects, d))) {
      if (hashBuffer(layout.hash, fs.readFileSync(path.join(layout.objects, d, h))) !== h) {
        bad.push(h);
      }
    }
  }
  return bad;
}
