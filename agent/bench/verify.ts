// Benchmark of `vigil-agent verify` (the built one, dist/cli.js) on stores the built replicator
// wrote: --files small files (default 100,000 of ~12 bytes in 1,000 directories) and --large
// files of --large-mib MiB (default 4 × 256 MiB). For each store: `verify --json` run --rounds
// times (each a process of its own; wall time, peak memory from /usr/bin/time), and once the
// paced background verify a replicator runs with verifyEvery (in this process).
//   npm run bench:verify -w agent [-- --files 100000 --large 4 --large-mib 256 --rounds 3]
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { verifyStore } from '../src/replicator/verify';
import { benchStores, numberArg } from './common';

const FILES = numberArg('files', 100_000);
const LARGE = numberArg('large', 4);
const LARGE_MIB = numberArg('large-mib', 256);
const ROUNDS = numberArg('rounds', 3);
const DIST = path.join(__dirname, '..', 'dist');

function verifyOnce(store: string): {
  s: number;
  records: number;
  objects: number;
  mib: number;
  mirror: number;
  problems: number;
} {
  const out = execFileSync(process.execPath, [path.join(DIST, 'cli.js'), 'verify', '--store', store, '--json'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    maxBuffer: 1 << 30,
  });
  const r = JSON.parse(out) as {
    ms: number;
    problems: unknown[];
    checked: { records: number; objects: number; objectBytes: number; mirrorPaths: number };
  };
  return {
    s: r.ms / 1000,
    records: r.checked.records,
    objects: r.checked.objects,
    mib: r.checked.objectBytes / 1048576,
    mirror: r.checked.mirrorPaths,
    problems: r.problems.length,
  };
}

function timed(store: string) {
  // /usr/bin/time writes to stderr: run through a shell that hands both back.
  const t0 = Date.now();
  const raw = execFileSync(
    'sh',
    [
      '-c',
      `/usr/bin/time -f 'TIME %e %M' "${process.execPath}" "${path.join(DIST, 'cli.js')}" verify --store "${store}" --json 2>&1 >/dev/null`,
    ],
    { encoding: 'utf8' }
  );
  const wall = (Date.now() - t0) / 1000;
  const m = /TIME ([\d.]+) (\d+)/.exec(raw);
  return { wall, peakMiB: m ? Number(m[2]) / 1024 : NaN };
}

async function bench(name: string, store: string) {
  const info = verifyOnce(store);
  if (info.problems !== 0) {
    throw new Error(`${name}: verify found ${info.problems} problem(s)`);
  }
  const runs: Array<{ wall: number; peakMiB: number }> = [];
  for (let i = 0; i < ROUNDS; i++) {
    runs.push(timed(store));
  }
  const walls = runs.map((r) => r.wall).sort((a, b) => a - b);
  const median = walls[Math.floor(walls.length / 2)] as number;
  const peak = Math.max(...runs.map((r) => r.peakMiB));
  const t0 = Date.now();
  const paced = await verifyStore(store, { pace: { workMs: 20, restMs: 20 } });
  const pacedS = (Date.now() - t0) / 1000;
  console.log(
    `${name}: ${info.records} records, ${info.objects} objects (${info.mib.toFixed(0)} MiB), ${info.mirror} mirror paths: ` +
      `verify ${median.toFixed(2)} s median of ${ROUNDS} (${walls.map((w) => w.toFixed(2)).join(', ')}), peak RSS ${peak.toFixed(0)} MiB; ` +
      `paced background verify ${pacedS.toFixed(2)} s (${paced.problems.length} problems)`
  );
}

benchStores('vigil-bench-verify-', { files: FILES, large: LARGE, largeMib: LARGE_MIB }, bench);
