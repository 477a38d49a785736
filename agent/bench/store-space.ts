// What capturing costs in time and in store space: large files and many small ones, captured
// by a replicator build (this checkout's by default, or another's: --bin), measured from the
// files appearing in the source to every one of them mirrored, then `du` of the store's parts.
// Run it against two builds, alternating, to see what a change of the store's layout costs.
//   node --import tsx agent/bench/store-space.ts [--bin PATH/bin.js|PATH/bin.ts] [--large-files 4 --large-mib 256 --files 10000 --rounds 3]
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { statusSchema } from '../src/replicator/status';
import { numberArg } from './common';

const LARGE_FILES = numberArg('large-files', 4);
const LARGE_MIB = numberArg('large-mib', 256);
const FILES = numberArg('files', 10_000);
const ROUNDS = numberArg('rounds', 3);
const BIN = (() => {
  const i = process.argv.indexOf('--bin');
  return path.resolve(
    i < 0 ? path.join(__dirname, '..', 'dist', 'replicator', 'bin.js') : (process.argv[i + 1] as string)
  );
})();

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function start(source: string, store: string, statusFile: string): ChildProcess {
  const args = [BIN, '--source', source, '--target', store, '--status', statusFile];
  return spawn(process.execPath, BIN.endsWith('.ts') ? ['--import', 'tsx', ...args] : args, {
    stdio: ['ignore', 'ignore', 'ignore'],
    cwd: path.dirname(BIN),
  });
}

async function until(what: string, fn: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!fn()) {
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}`);
    }
    await sleep(2);
  }
}

function watching(statusFile: string, pid: number): boolean {
  try {
    const s = statusSchema.parse(JSON.parse(fs.readFileSync(statusFile, 'utf8')));
    return s.pid === pid && s.state === 'watching' && s.pendingChanges === 0;
  } catch {
    return false;
  }
}

/** Allocated MiB under `dir` (du: hard-linked files counted once, where they are first met). */
function du(...dirs: string[]): number[] {
  const out = execFileSync('du', ['-s', '-B1M', ...dirs])
    .toString()
    .trim()
    .split('\n');
  return out.map((l) => Number(l.split('\t')[0]));
}

/** Captures what `fill` puts in `staging` (moved into the source at once); time to all mirrored, store space. */
async function run(
  root: string,
  names: string[],
  fill: (staging: string) => void
): Promise<{ ms: number; objects: number; mirror: number; journal: number; total: number }> {
  const staging = path.join(root, 'staging');
  const source = path.join(root, 'source');
  const store = path.join(root, 'store');
  const statusFile = path.join(root, 'status.json');
  fs.mkdirSync(staging, { recursive: true });
  fs.mkdirSync(source, { recursive: true });
  fill(staging);
  const child = start(source, store, statusFile);
  try {
    await until('the replicator to be watching', () => watching(statusFile, child.pid as number), 60_000);
    execFileSync('sync');
    const t0 = performance.now();
    for (const n of fs.readdirSync(staging)) {
      fs.renameSync(path.join(staging, n), path.join(source, n));
    }
    await until(
      'everything to be mirrored',
      () => names.every((n) => fs.existsSync(path.join(store, 'mirror', n))),
      1_200_000
    );
    await until('the replicator to be caught up', () => watching(statusFile, child.pid as number), 60_000);
    const ms = performance.now() - t0;
    const [objects, mirror, journal] = du(
      path.join(store, 'objects'),
      path.join(store, 'mirror'),
      path.join(store, 'journal')
    ) as [number, number, number];
    const [total] = du(store) as [number];
    return { ms, objects, mirror, journal, total };
  } finally {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
    fs.rmSync(root, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  if (!fs.existsSync(BIN)) {
    throw new Error(`${BIN} is missing: run npm run build -w agent first, or name a build with --bin`);
  }
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'vigil-store-space-'));
  const fsType = execFileSync('stat', ['-f', '-c', '%T', root]).toString().trim();
  console.log(
    `store space bench on ${new Date().toISOString().slice(0, 10)}: ${BIN}, data in ${root} (stat -f: ${fsType}), ${os.cpus().length} cores, load ${os.loadavg()[0]?.toFixed(1)}`
  );
  try {
    const large = Array.from({ length: LARGE_FILES }, (_, f) => `large-${f}.bin`);
    const small = Array.from({ length: FILES }, (_, i) => `d${Math.floor(i / 100)}/f${i}.txt`);
    const chunk = randomBytes(16 << 20);
    for (let round = 0; round < ROUNDS; round++) {
      const l = await run(path.join(root, `large-${round}`), large, (staging) => {
        for (const [f, name] of large.entries()) {
          const fd = fs.openSync(path.join(staging, name), 'w');
          for (let i = 0; i < (LARGE_MIB << 20) / chunk.length; i++) {
            chunk.writeUInt32LE(f * 100_000 + i, 0); // distinct contents
            fs.writeSync(fd, chunk);
          }
          fs.closeSync(fd);
        }
      });
      const s = await run(path.join(root, `small-${round}`), small, (staging) => {
        for (const [i, name] of small.entries()) {
          fs.mkdirSync(path.join(staging, path.dirname(name)), { recursive: true });
          fs.writeFileSync(path.join(staging, name), `small file ${i}\n`);
        }
      });
      const row = (what: string, x: typeof l) =>
        `  ${what}: ${(x.ms / 1000).toFixed(2)} s; store ${x.total} MiB (objects ${x.objects}, mirror ${x.mirror}, journal ${x.journal})`;
      console.log(`round ${round + 1}`);
      console.log(row(`${LARGE_FILES} × ${LARGE_MIB} MiB`, l));
      console.log(row(`${FILES} files of ~20 bytes in ${Math.ceil(FILES / 100)} directories`, s));
    }
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
