// What the agent's benchmarks share: their command line, percentiles, and a process's memory.
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** The number after `--NAME` on the command line, or dflt. */
export function numberArg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) {
    return dflt;
  }
  const v = Number(process.argv[i + 1]);
  if (!Number.isFinite(v) || v < 0) {
    throw new Error(`--${name} needs a non-negative number`);
  }
  return v;
}

/** The p-th percentile (nearest rank) of sorted values; NaN for none. */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) {
    return NaN;
  }
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

/** A process's resident memory now and at its peak, in MiB, from /proc. */
export function processMemory(pid: number): { rssMiB: number; peakMiB: number } {
  const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN);
  return { rssMiB: kb('VmRSS') / 1024, peakMiB: kb('VmHWM') / 1024 };
}

const DIST = path.join(__dirname, '..', 'dist');

/**
 * A store the built replicator (dist/replicator/bin.js) wrote from a source `fill` made, in
 * `root`: the replicator runs until it has caught up and is stopped. Returns the store's path.
 */
export async function captureStore(root: string, name: string, fill: (source: string) => void): Promise<string> {
  const source = path.join(root, `${name}-source`);
  const store = path.join(root, `${name}-store`);
  const status = path.join(root, `${name}-status.json`);
  fs.mkdirSync(source);
  fill(source);
  const t0 = Date.now();
  const child = spawn(
    process.execPath,
    [path.join(DIST, 'replicator', 'bin.js'), '--source', source, '--target', store, '--status', status],
    { stdio: 'ignore' }
  );
  for (;;) {
    await new Promise((r) => setTimeout(r, 200));
    try {
      const s = JSON.parse(fs.readFileSync(status, 'utf8')) as { state: string; pendingChanges: number; pid: number };
      if (s.pid === child.pid && s.state === 'watching' && s.pendingChanges === 0) {
        break;
      }
    } catch {
      // not written yet
    }
    if (child.exitCode !== null) {
      throw new Error(`the replicator exited ${child.exitCode}`);
    }
  }
  child.kill('SIGTERM');
  await new Promise((r) => child.on('exit', r));
  console.log(`${name}: captured in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return store;
}

/** `files` small files (about 12 bytes each), 100 to a directory, in 10 top directories. */
export function fillSmall(source: string, files: number): void {
  for (let d = 0; d < Math.ceil(files / 100); d++) {
    const dir = path.join(source, `p${d % 10}`, `d${d}`);
    fs.mkdirSync(dir, { recursive: true });
    for (let i = 0; i < 100 && d * 100 + i < files; i++) {
      fs.writeFileSync(path.join(dir, `f${i}.txt`), `file ${d * 100 + i}\n`);
    }
  }
}

/** `count` files of `mib` MiB each, every one with content of its own. */
export function fillLarge(source: string, count: number, mib: number): void {
  const chunk = Buffer.allocUnsafe(1 << 20);
  for (let i = 0; i < count; i++) {
    const fd = fs.openSync(path.join(source, `large-${i}.bin`), 'w');
    for (let m = 0; m < mib; m++) {
      for (let k = 0; k < chunk.length; k += 4) {
        chunk.writeUInt32LE((i * 7919 + m * 104729 + k) >>> 0, k);
      }
      fs.writeSync(fd, chunk);
    }
    fs.closeSync(fd);
  }
}

/**
 * Runs `bench` on a store of `files` small files, then on one of `large` files of `largeMib` MiB
 * (either skipped when 0), in a temporary folder removed at the end; exits 0, or 1 on an error.
 */
export function benchStores(
  prefix: string,
  o: { files: number; large: number; largeMib: number },
  bench: (name: string, store: string) => Promise<void>
): void {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const run = async () => {
    const fsType = execFileSync('df', ['-T', root], { encoding: 'utf8' }).trim().split('\n').pop()?.split(/\s+/)[1];
    console.log(
      `stores under ${root} (${fsType}), ${os.cpus().length} cores, load ${os.loadavg()[0]?.toFixed(1)}, node ${process.version}`
    );
    if (o.files > 0) {
      await bench(`${o.files} small files`, await captureStore(root, 'small', (src) => fillSmall(src, o.files)));
    }
    if (o.large > 0) {
      const large = await captureStore(root, 'large', (src) => fillLarge(src, o.large, o.largeMib));
      execFileSync('sync');
      await bench(`${o.large} x ${o.largeMib} MiB`, large);
    }
  };
  void run().then(
    () => {
      fs.rmSync(root, { recursive: true, force: true });
      process.exit(0);
    },
    (e: unknown) => {
      console.error(e);
      fs.rmSync(root, { recursive: true, force: true });
      process.exit(1);
    }
  );
}
