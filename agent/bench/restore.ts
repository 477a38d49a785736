// Benchmark of `vigil-agent restore` (the built one, dist/cli.js) and of the check it makes of
// every content (its bytes must hash to the object's name and have the recorded size), on
// stores the built replicator wrote: --files small files (default 100,000) and --large files of
// --large-mib MiB (default 4 × 256 MiB). For each store, --rounds times in turn:
//   restore   `restore --at now --to NEW` (a process of its own): copy, check, name, metadata;
//   cp        `cp -a` of the store's mirror: the same bytes copied with no check at all;
//   hash      every object read and hashed in this process: what the check itself costs.
//   npm run bench:restore -w agent [-- --files 100000 --large 4 --large-mib 256 --rounds 3]
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { hashBuffer, loadHasher, newHasher } from '../src/replicator/digest';
import { openStoreForReading } from '../src/replicator/store';
import { benchStores, numberArg } from './common';

const FILES = numberArg('files', 100_000);
const LARGE = numberArg('large', 4);
const LARGE_MIB = numberArg('large-mib', 256);
const ROUNDS = numberArg('rounds', 3);
const CLI = path.join(__dirname, '..', 'dist', 'cli.js');

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

function seconds(fn: () => void): number {
  const t0 = performance.now();
  fn();
  return (performance.now() - t0) / 1000;
}

/** Every object of the store read and hashed as restore hashes it (1 MiB pieces). */
function hashAll(store: string): number {
  const layout = openStoreForReading(store);
  const buf = Buffer.allocUnsafe(1 << 20);
  let n = 0;
  for (const d of fs.readdirSync(layout.objects)) {
    for (const name of fs.readdirSync(path.join(layout.objects, d))) {
      const fd = fs.openSync(path.join(layout.objects, d, name), 'r');
      try {
        const st = fs.fstatSync(fd);
        if (st.size <= buf.length) {
          const k = fs.readSync(fd, buf, 0, buf.length, 0);
          hashBuffer(layout.hash, buf.subarray(0, k));
        } else {
          const h = newHasher(layout.hash);
          for (
            let k = fs.readSync(fd, buf, 0, buf.length, null);
            k > 0;
            k = fs.readSync(fd, buf, 0, buf.length, null)
          ) {
            h.update(buf.subarray(0, k));
          }
          h.digest('hex');
        }
        n++;
      } finally {
        fs.closeSync(fd);
      }
    }
  }
  return n;
}

async function bench(name: string, store: string) {
  await loadHasher(openStoreForReading(store).hash);
  const restoreS: number[] = [];
  const cpS: number[] = [];
  const hashS: number[] = [];
  let objects = 0;
  for (let i = 0; i < ROUNDS; i++) {
    const to = path.join(path.dirname(store), `to-${i}`);
    restoreS.push(
      seconds(() =>
        execFileSync(process.execPath, [CLI, 'restore', '--store', store, '--at', 'now', '--to', to], {
          stdio: 'ignore',
        })
      )
    );
    fs.rmSync(to, { recursive: true, force: true });
    const copy = path.join(path.dirname(store), `cp-${i}`);
    cpS.push(seconds(() => execFileSync('cp', ['-a', path.join(store, 'mirror'), copy])));
    fs.rmSync(copy, { recursive: true, force: true });
    hashS.push(seconds(() => (objects = hashAll(store))));
  }
  const r = median(restoreS);
  const h = median(hashS);
  console.log(
    `${name} (${objects} objects, ${openStoreForReading(store).hash}): restore ${r.toFixed(2)} s (${restoreS.map((x) => x.toFixed(2)).join(', ')}), ` +
      `cp -a of the same tree ${median(cpS).toFixed(2)} s, hashing every object ${h.toFixed(2)} s ` +
      `(the check is about ${Math.round((100 * h) / r)} % of the restore), medians of ${ROUNDS}`
  );
}

benchStores('vigil-bench-restore-', { files: FILES, large: LARGE, largeMib: LARGE_MIB }, bench);
