// Benchmark of the built replicator (dist/replicator/bin.js), in one run against data in one
// temporary directory on one disk:
//   1. capture latency: from a write returning to its journal record being fsynced (seen as
//      the mirror link, which is made right after the fsync), paced and in a burst;
//   2. large-file throughput, compared with `cp` (and `cp` followed by an fsync of the copies);
//   3. the catch-up scan of N unchanged files at a restart, compared with `rsync -a --dry-run`.
//   npm run bench:replicator -w agent [-- --files 100000 --large-files 4 --large-mib 256 --writes 300 --burst 1000 --rounds 5
//                                         --only latency,throughput,catchup --keep]
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { statusSchema, type ReplicatorStatus } from '../src/replicator/status';
import { numberArg, percentile, processMemory } from './common';

const FILES = numberArg('files', 100_000);
const LARGE_FILES = numberArg('large-files', 4);
const LARGE_MIB = numberArg('large-mib', 256);
const WRITES = numberArg('writes', 300);
const BURST = numberArg('burst', 1000);
const ROUNDS = numberArg('rounds', 5);
const KEEP = process.argv.includes('--keep');
const ONLY = (() => {
  const i = process.argv.indexOf('--only');
  return i < 0 ? ['latency', 'throughput', 'catchup'] : (process.argv[i + 1] ?? '').split(',');
})();
const BIN = path.join(__dirname, '..', 'dist', 'replicator', 'bin.js');

const now = () => performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function summary(ms: number[]): string {
  const s = [...ms].sort((a, b) => a - b);
  return `p50 ${percentile(s, 50).toFixed(1)} ms, p90 ${percentile(s, 90).toFixed(1)} ms, p99 ${percentile(s, 99).toFixed(1)} ms, max ${(s[s.length - 1] ?? NaN).toFixed(1)} ms (n=${s.length})`;
}

async function until<T>(what: string, fn: () => T | undefined, timeoutMs: number, everyMs = 1): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v !== undefined && v !== false) {
      return v;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}`);
    }
    await sleep(everyMs);
  }
}

class Replicator {
  child: ChildProcess;
  log = '';
  constructor(
    readonly source: string,
    readonly store: string,
    readonly statusFile: string,
    extra: string[] = []
  ) {
    this.child = spawn(
      process.execPath,
      [BIN, '--source', source, '--target', store, '--status', statusFile, ...extra],
      { stdio: ['ignore', 'ignore', 'pipe'] }
    );
    this.child.stderr?.on('data', (d: Buffer) => (this.log += d.toString()));
  }
  status(): ReplicatorStatus | undefined {
    try {
      const s = statusSchema.parse(JSON.parse(fs.readFileSync(this.statusFile, 'utf8')));
      return s.pid === this.child.pid ? s : undefined;
    } catch {
      return undefined;
    }
  }
  async watching(timeoutMs: number): Promise<ReplicatorStatus> {
    return until(
      'the replicator to be watching',
      () => {
        if (this.child.exitCode !== null) {
          throw new Error(`replicator exited:\n${this.log}`);
        }
        const s = this.status();
        return s?.state === 'watching' && s.pendingChanges === 0 ? s : undefined;
      },
      timeoutMs,
      5
    );
  }
  /** Resident memory now and at its peak, in MiB. */
  memory(): { rssMiB: number; peakMiB: number } {
    return processMemory(this.child.pid!);
  }
  async stop(): Promise<void> {
    if (this.child.exitCode !== null) {
      return;
    }
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.kill('SIGTERM');
    await exited;
  }
}

function time(cmd: string, args: string[]): number {
  const t0 = now();
  execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'inherit'] });
  return now() - t0;
}

function have(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

async function latency(root: string): Promise<void> {
  const source = path.join(root, 'source');
  const store = path.join(root, 'store');
  fs.mkdirSync(source, { recursive: true });
  const r = new Replicator(source, store, path.join(root, 'status.json'));
  await r.watching(30_000);
  const mirror = (p: string) => path.join(store, 'mirror', p);
  const payload = randomBytes(1024);
  // Warm-up: the first captures load code paths and create object directories.
  for (let i = 0; i < 20; i++) {
    fs.writeFileSync(path.join(source, `warm-${i}`), Buffer.concat([payload, Buffer.from(String(i))]));
    await until('warm-up capture', () => fs.existsSync(mirror(`warm-${i}`)) || undefined, 10_000);
  }
  const paced: number[] = [];
  for (let i = 0; i < WRITES; i++) {
    const p = `paced-${i}`;
    fs.writeFileSync(path.join(source, p), Buffer.concat([payload, Buffer.from(p)]));
    const t0 = now();
    await until('a paced capture', () => fs.existsSync(mirror(p)) || undefined, 10_000, 0.5);
    paced.push(now() - t0);
    await sleep(10);
  }
  const internalPaced = r.status()?.latency;
  // A burst: every write as fast as the writer can, each timed from its own write.
  const written = new Map<string, number>();
  const seen = new Map<string, number>();
  for (let i = 0; i < BURST; i++) {
    const p = `burst-${i}`;
    fs.writeFileSync(path.join(source, p), Buffer.concat([payload, Buffer.from(p)]));
    written.set(p, now());
  }
  await until(
    'the burst to be captured',
    () => {
      for (const [p, t] of written) {
        if (seen.has(p)) {
          continue;
        }
        if (fs.existsSync(mirror(p))) {
          seen.set(p, now() - t);
        }
      }
      return seen.size === written.size || undefined;
    },
    60_000,
    1
  );
  const internal = r.status()?.latency;
  await r.stop();
  console.log(`- capture latency, paced (one 1 KiB file every ~10 ms, ${WRITES} writes): ${summary(paced)}`);
  console.log(
    `- capture latency, burst (${BURST} files of 1 KiB written back to back): ${summary([...seen.values()])}`
  );
  console.log(
    `  (the replicator's own measure, event to fsync, over the run: p50 ${internalPaced?.p50Ms} → ${internal?.p50Ms} ms, p99 ${internalPaced?.p99Ms} → ${internal?.p99Ms} ms, max ${internal?.maxMs} ms)`
  );
}

async function throughput(root: string): Promise<void> {
  const staging = path.join(root, 'staging');
  fs.mkdirSync(staging, { recursive: true });
  const chunk = randomBytes(16 << 20);
  const names: string[] = [];
  for (let f = 0; f < LARGE_FILES; f++) {
    const name = `large-${f}.bin`;
    names.push(name);
    const fd = fs.openSync(path.join(staging, name), 'w');
    for (let i = 0; i < (LARGE_MIB << 20) / chunk.length; i++) {
      chunk.writeUInt32LE(f * 100_000 + i, 0); // every file distinct: no deduplication helps
      fs.writeSync(fd, chunk);
    }
    fs.closeSync(fd);
  }
  const bytes = LARGE_FILES * LARGE_MIB * (1 << 20);
  const mibs = (ms: number) => bytes / (1 << 20) / (ms / 1000);
  // The replicator with each content hash a store can have: BLAKE3 (what a new store gets
  // where the native module loads) and SHA-256 (stores from before BLAKE3, the single-file build).
  const algorithms = ['blake3', 'sha256'] as const;
  const results: { cp: number[]; cpSync: number[]; repl: Record<(typeof algorithms)[number], number[]> } = {
    cp: [],
    cpSync: [],
    repl: { blake3: [], sha256: [] },
  };
  // Each contender starts with no dirty pages left by the one before, and the sources read
  // once (from the page cache); three rounds, each into a fresh destination.
  const settle = () => {
    execFileSync('sync');
    for (const n of names) {
      fs.readFileSync(path.join(staging, n));
    }
  };
  for (let round = 0; round < ROUNDS; round++) {
    const dest = path.join(root, `cp-${round}`);
    fs.mkdirSync(dest);
    settle();
    results.cp.push(time('cp', [...names.map((n) => path.join(staging, n)), dest]));
    fs.rmSync(dest, { recursive: true });
    fs.mkdirSync(dest);
    settle();
    results.cpSync.push(
      time('sh', [
        '-c',
        `cp "$@" ${JSON.stringify(dest)} && cd ${JSON.stringify(dest)} && sync ${names.join(' ')}`,
        'cp',
        ...names.map((n) => path.join(staging, n)),
      ])
    );
    fs.rmSync(dest, { recursive: true });
    for (const algorithm of algorithms) {
      const source = path.join(root, `source-${algorithm}-${round}`);
      const store = path.join(root, `store-${algorithm}-${round}`);
      fs.mkdirSync(source);
      const r = new Replicator(source, store, path.join(root, `status-${algorithm}-${round}.json`), [
        '--hash',
        algorithm,
      ]);
      await r.watching(30_000);
      const marker = JSON.parse(fs.readFileSync(path.join(store, 'vigil-store.json'), 'utf8')) as { hash?: string };
      if (marker.hash !== algorithm) {
        throw new Error(`the store uses ${marker.hash}, not ${algorithm} (is the native BLAKE3 module installed?)`);
      }
      settle();
      const t0 = now();
      for (const n of names) {
        fs.renameSync(path.join(staging, n), path.join(source, n));
      }
      await until(
        'the large files to be captured',
        () => names.every((n) => fs.existsSync(path.join(store, 'mirror', n))) || undefined,
        600_000,
        2
      );
      results.repl[algorithm].push(now() - t0);
      await r.stop();
      for (const n of names) {
        fs.renameSync(path.join(source, n), path.join(staging, n));
      }
      fs.rmSync(store, { recursive: true });
    }
  }
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
  const fmt = (xs: number[]) =>
    `median ${med(xs).toFixed(0)} ms = ${mibs(med(xs)).toFixed(0)} MiB/s (runs: ${xs.map((x) => x.toFixed(0)).join(', ')} ms)`;
  console.log(
    `- large files (${LARGE_FILES} × ${LARGE_MIB} MiB, distinct contents, read from the page cache; ${ROUNDS} rounds, medians):`
  );
  console.log(`  - cp: ${fmt(results.cp)}`);
  console.log(`  - cp, then fsync of the copies (sync FILE…): ${fmt(results.cpSync)}`);
  for (const algorithm of algorithms) {
    const repl = results.repl[algorithm];
    console.log(
      `  - replicator (${algorithm}), from the files appearing in the source (rename) to every record fsynced and mirrored: ${fmt(repl)}`
    );
    console.log(
      `    replicator / cp: ${((med(results.cp) / med(repl)) * 100).toFixed(0)} %; replicator / (cp + fsync): ${((med(results.cpSync) / med(repl)) * 100).toFixed(0)} %`
    );
  }
}

async function catchUp(root: string): Promise<void> {
  const source = path.join(root, 'source');
  const store = path.join(root, 'store');
  const copy = path.join(root, 'copy');
  const perDir = 100;
  for (let d = 0; d < Math.ceil(FILES / perDir); d++) {
    const dir = path.join(source, `d${Math.floor(d / 100)}`, `d${d}`);
    fs.mkdirSync(dir, { recursive: true });
    for (let i = 0; i < perDir && d * perDir + i < FILES; i++) {
      fs.writeFileSync(path.join(dir, `f${i}.txt`), `file ${d * perDir + i}\n`);
    }
  }
  const statusFile = path.join(root, 'status.json');
  let t0 = now();
  let r = new Replicator(source, store, statusFile);
  const first = await r.watching(3_600_000);
  const initialMs = now() - t0;
  await r.stop();
  console.log(
    `- first capture of ${FILES} files (${first.catchUp.scanned} entries): ${(initialMs / 1000).toFixed(1)} s, ${(FILES / (initialMs / 1000)).toFixed(0)} files/s`
  );
  const runs: Array<{ wall: number; scan: number; scanned: number; changed: number }> = [];
  let mem = { rssMiB: NaN, peakMiB: NaN };
  for (let i = 0; i < 3; i++) {
    t0 = now();
    r = new Replicator(source, store, statusFile);
    const s = await r.watching(600_000);
    runs.push({
      wall: now() - t0,
      scan: s.catchUp.scanMs ?? NaN,
      scanned: s.catchUp.scanned,
      changed: s.catchUp.changed,
    });
    mem = r.memory();
    await r.stop();
  }
  execFileSync('cp', ['-a', source, copy]);
  const rsyncMirror: number[] = [];
  const rsyncCopy: number[] = [];
  for (let i = 0; i < 3; i++) {
    rsyncMirror.push(time('rsync', ['-a', '--dry-run', `${source}/`, `${path.join(store, 'mirror')}/`]));
    rsyncCopy.push(time('rsync', ['-a', '--dry-run', `${source}/`, `${copy}/`]));
  }
  const fmt = (xs: number[]) => xs.map((x) => `${x.toFixed(0)} ms`).join(', ');
  console.log(`- catch-up at a restart with ${FILES} unchanged files (3 runs, warm cache):`);
  console.log(
    `  - replicator scan alone (stat and compare with the journal's state): ${fmt(runs.map((x) => x.scan))}; changed found: ${runs.map((x) => x.changed).join(', ')}`
  );
  console.log(
    `  - replicator, process start to caught up (Node.js start, journal replay, scan): ${fmt(runs.map((x) => x.wall))}`
  );
  console.log(
    `  - replicator memory after the catch-up: RSS ${mem.rssMiB.toFixed(0)} MiB (peak ${mem.peakMiB.toFixed(0)} MiB), watching ${Math.ceil(FILES / perDir) + Math.ceil(FILES / perDir / 100) + 1} directories`
  );
  console.log(`  - rsync -a --dry-run source/ store/mirror/: ${fmt(rsyncMirror)}`);
  console.log(`  - rsync -a --dry-run source/ copy/ (a cp -a copy, nothing to do): ${fmt(rsyncCopy)}`);
}

async function main(): Promise<void> {
  if (!fs.existsSync(BIN)) {
    throw new Error(`${BIN} is missing: run npm run build -w agent first`);
  }
  if (!have('rsync')) {
    throw new Error('rsync is not installed (make bench installs it; or apt-get install -y rsync)');
  }
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'vigil-replicator-bench-'));
  const load = os
    .loadavg()
    .map((x) => x.toFixed(1))
    .join(' ');
  console.log(
    `replicator bench on ${new Date().toISOString().slice(0, 10)}: ${os.cpus().length} × ${os.cpus()[0]?.model.trim()}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node.js ${process.version}, data in ${root} (${execFileSync('df', ['--output=source,fstype', root]).toString().split('\n')[1]?.trim()}), load average ${load}`
  );
  try {
    if (ONLY.includes('latency')) {
      await latency(path.join(root, 'latency'));
    }
    if (ONLY.includes('throughput')) {
      await throughput(path.join(root, 'throughput'));
    }
    fs.rmSync(path.join(root, 'throughput'), { recursive: true, force: true });
    if (ONLY.includes('catchup')) {
      await catchUp(path.join(root, 'catchup'));
    }
  } finally {
    if (!KEEP) {
      fs.rmSync(root, { recursive: true, force: true });
    }
  }
  console.log(
    `load average at the end: ${os
      .loadavg()
      .map((x) => x.toFixed(1))
      .join(' ')}`
  );
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
