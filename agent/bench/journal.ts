// Benchmark of a large journal: a store whose journal holds --gib GiB of records (file versions of
// --paths paths, as a busy tree leaves them over a week), written with the replicator's own
// journal code (segments sealed at 64 MiB, indexes, tree snapshots as the replicator takes them).
// Then, each in a process of its own, with resident memory read from /proc:
//   1. the built replicator's start-up: from spawn to "journal replayed" (the source is empty,
//      so it stops there and waits: what follows is the catch-up of the source, not the journal);
//   2. `vigil-agent versions --path P` for a path changed throughout;
//   3. `vigil-agent restore --at T --path links` at a moment in the middle of the journal.
// With --legacy-gib N it also writes the same records into one journal.log (a store from before
// segments) and starts the replicator on it twice: the first start reads the file whole and
// seals it into segments, the second starts from a snapshot. --old-agent DIR runs that store
// with another build's dist/ too (the version before segments, for the comparison).
//   npm run bench:journal -w agent [-- --gib 10 --paths 100000 --legacy-gib 1.9 --old-agent DIR --keep]
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { frame, type JournalRecord, type NewRecord, type SegmentHeader } from '../src/replicator/journal';
import {
  JournalWriter,
  SEGMENT_BYTES,
  buildIndex,
  journalDir,
  resolveChain,
  segmentName,
  writeIndex,
  writeSnapshot,
} from '../src/replicator/segments';
import { StoreLayout, prepareStore } from '../src/replicator/store';
import { apply, type Tree } from '../src/replicator/tree';

import { numberArg, processMemory } from './common';

const GIB = numberArg('gib', 10);
const PATHS = numberArg('paths', 100_000);
const LEGACY_GIB = numberArg('legacy-gib', 0);
const KEEP = process.argv.includes('--keep');
const OLD_AGENT = (() => {
  const i = process.argv.indexOf('--old-agent');
  return i < 0 ? undefined : process.argv[i + 1];
})();
const DIST = path.join(__dirname, '..', 'dist');
const LINKS = 100;

const mib = (n: number) => `${(n / 1024 / 1024).toFixed(0)} MiB`;
const hex64 = (n: number) => n.toString(16).padStart(64, '0');

/** The records of a busy tree: first every path created, then versions of random paths, a millisecond apart. */
function* records(start: number): Generator<NewRecord> {
  let at = start;
  for (let d = 0; d < 100; d++) {
    yield { at: at++, op: 'dir', p: `d${d}`, m: 0o755, mt: at } as NewRecord;
  }
  yield { at: at++, op: 'dir', p: 'links', m: 0o755, mt: at } as NewRecord;
  for (let i = 0; i < LINKS; i++) {
    yield { at: at++, op: 'link', p: `links/l${i}`, l: `../d0/f${i}`, mt: at, ct: at, ino: 9_000_000 + i } as NewRecord;
  }
  for (let i = 0; i < PATHS; i++) {
    yield fileRecord(i, i, at++);
  }
  let v = PATHS;
  let x = 2463534242;
  for (;;) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    // As in a real tree: most changes go to a few hot files (path 0 among them, so that
    // `versions` has a long history to list), some to the first half of the tree, and the other
    // half never changes after it was created (a cold path's history is in one segment).
    const r = x % 100;
    const i = v % 1000 === 0 ? 0 : r < 90 ? x % Math.min(1000, PATHS) : x % Math.max(1, Math.floor(PATHS / 2));
    yield fileRecord(i, v++, at++);
  }
}

function fileRecord(i: number, version: number, at: number): NewRecord {
  return {
    at,
    op: 'file',
    p: `d${i % 100}/f${i}`,
    h: hex64(version + 1),
    s: 4096 + (version % 65536),
    m: 0o644,
    mt: at,
    ct: at,
    ino: 1_000_000 + i,
  } as NewRecord;
}

/**
 * Writes the journal of a store in segments as the replicator leaves them (headers, records,
 * sealed at 64 MiB with their indexes, tree snapshots by the replicator's rule), directly: the
 * replicator's own writer fsyncs every batch, which would make 10 GiB take an hour here.
 */
function writeSegments(root: string, bytes: number): { first: number; last: number; records: number } {
  const layout = new StoreLayout(root);
  prepareStore(layout, 'sha256');
  const dir = journalDir(root);
  const tree: Tree = new Map();
  const start = Date.now() - 7 * 24 * 3600 * 1000;
  const t0 = Date.now();
  let q = 1;
  let total = 0;
  let since = 0;
  let lastAt = start;
  let prev: { name: string; last: number } | null = null;
  const gen = records(start);
  while (total < bytes) {
    const first = q;
    const name = segmentName(first, 1);
    const header: SegmentHeader = {
      q: first - 1,
      at: lastAt,
      op: 'segment',
      epoch: 1,
      first,
      prev: prev?.name ?? null,
      prevLast: prev?.last ?? null,
    };
    const fd = fs.openSync(path.join(dir, name), 'w', 0o600);
    const inSegment: Array<{ r: JournalRecord; offset: number }> = [];
    const head = frame(header);
    let size = 0;
    let chunk: Buffer[] = [head];
    while (size < SEGMENT_BYTES) {
      const r = { q: q++, ...(gen.next().value as NewRecord) } as JournalRecord;
      const f = frame(r);
      chunk.push(f);
      inSegment.push({ r, offset: head.length + size });
      size += f.length;
      apply(tree, r);
      lastAt = r.at;
      if (chunk.length >= 10_000) {
        fs.writeSync(fd, Buffer.concat(chunk));
        chunk = [];
      }
    }
    fs.writeSync(fd, Buffer.concat(chunk));
    fs.closeSync(fd);
    const idx = buildIndex(inSegment);
    if (idx) {
      writeIndex(dir, layout.tmp, name, idx);
    }
    total += size;
    since += inSegment.length;
    prev = { name, last: q - 1 };
    if (since >= 4 * Math.max(10_000, tree.size)) {
      writeSnapshot(root, layout.tmp, tree, { upTo: q - 1, at: lastAt, epoch: 1, from: null });
      since = 0;
    }
    process.stdout.write(
      `\r  ${mib(total)} of ${mib(bytes)} (${q - 1} records, ${((Date.now() - t0) / 1000).toFixed(0)} s)`
    );
  }
  // The mirror is up to date (the objects are not there: only the journal is measured).
  fs.writeFileSync(layout.mirrorSeq, `${q - 1}\n`);
  // The writer's own segment, as it is while it runs: records not sealed yet.
  const w = new JournalWriter(root, resolveChain(root), q - 1, lastAt, 2, () => undefined);
  w.close();
  process.stdout.write('\n');
  return { first: start, last: lastAt, records: q - 1 };
}

/** The same records in one journal.log, as a store of version 2 has them. */
function writeLegacy(root: string, bytes: number): { first: number; last: number; records: number } {
  const layout = new StoreLayout(root);
  fs.mkdirSync(root, { recursive: true });
  fs.writeFileSync(
    layout.marker,
    JSON.stringify({ format: 'vigil-cdp-store', version: 2, hash: 'sha256', createdAt: new Date().toISOString() }) +
      '\n'
  );
  prepareStore(layout, 'sha256');
  fs.rmSync(layout.journal, { recursive: true, force: true });
  // A version-2 agent finds its marker as it left it.
  fs.writeFileSync(
    layout.marker,
    JSON.stringify({ format: 'vigil-cdp-store', version: 2, hash: 'sha256', createdAt: new Date().toISOString() }) +
      '\n'
  );
  const fd = fs.openSync(layout.legacyJournal, 'w');
  const start = Date.now() - 7 * 24 * 3600 * 1000;
  let total = 0;
  let q = 1;
  let lastAt = start;
  let chunk: Buffer[] = [];
  let chunkBytes = 0;
  for (const r of records(start)) {
    const f = frame({ q: q++, ...r } as JournalRecord);
    chunk.push(f);
    chunkBytes += f.length;
    lastAt = r.at;
    if (chunkBytes >= 8 << 20) {
      fs.writeSync(fd, Buffer.concat(chunk));
      total += chunkBytes;
      chunk = [];
      chunkBytes = 0;
      if (total >= bytes) {
        break;
      }
    }
  }
  fs.closeSync(fd);
  fs.writeFileSync(layout.mirrorSeq, `${q - 1}\n`);
  return { first: start, last: lastAt, records: q - 1 };
}

/** Starts a replicator (of `dist`) on `store` with an empty source; time to "journal replayed" and peak memory. */
async function startUp(
  dist: string,
  store: string
): Promise<{
  ms: number;
  readyMs: number;
  replayMs: number | null;
  records: number | null;
  peakMiB: number;
  line: string;
}> {
  const source = fs.mkdtempSync(path.join(path.dirname(store), 'empty-source-'));
  const child = spawn(
    process.execPath,
    [path.join(dist, 'replicator', 'bin.js'), '--source', source, '--target', store],
    { stdio: ['ignore', 'ignore', 'pipe'] }
  );
  const t0 = performance.now();
  let err = '';
  let peak = 0;
  const sample = setInterval(() => {
    try {
      peak = Math.max(peak, processMemory(child.pid as number).peakMiB);
    } catch {
      // exited
    }
  }, 20);
  let ms = 0;
  // "journal replayed", then (sealing what the last writer left done) the wait for the empty source.
  const line = await new Promise<string>((resolve, reject) => {
    child.on('exit', () => {
      clearInterval(sample);
      fs.rmSync(source, { recursive: true, force: true });
    });
    child.stderr.on('data', (b: Buffer) => {
      err += b.toString();
      const l = err.split('\n').find((x) => x.includes('"journal replayed"'));
      if (l && ms === 0) {
        ms = performance.now() - t0;
      }
      if (l && /not recording: the source/.test(err)) {
        resolve(l);
      }
    });
    child.on('exit', (code) => reject(new Error(`replicator exited with ${code}:\n${err}`)));
  });
  const readyMs = performance.now() - t0;
  peak = Math.max(peak, processMemory(child.pid as number).peakMiB);
  clearInterval(sample);
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
  fs.rmSync(source, { recursive: true, force: true });
  const j = JSON.parse(line) as { ms?: number; records?: number };
  return { ms, readyMs, replayMs: j.ms ?? null, records: j.records ?? null, peakMiB: peak, line };
}

/** Runs the CLI to its end; wall time and peak memory (from the process's last /proc reading). */
let scratch = os.tmpdir();
function cli(args: string[]): { ms: number; peakMiB: number; out: string } {
  const t0 = performance.now();
  // /usr/bin/time would be simpler; GNU time is not always installed: wrap in a shell that reads VmHWM.
  const out = execFileSync(
    'sh',
    [
      '-c',
      `"$0" "$@" >"$VIGIL_BENCH_OUT" 2>"$VIGIL_BENCH_OUT.err" & pid=$!; peak=0; while kill -0 $pid 2>/dev/null; do h=$(awk '/VmHWM/ {print $2}' /proc/$pid/status 2>/dev/null); [ -n "$h" ] && [ "$h" -gt "$peak" ] && peak=$h; sleep 0.01; done; wait $pid; echo "peak $peak"`,
      process.execPath,
      path.join(DIST, 'cli.js'),
      ...args,
    ],
    {
      encoding: 'utf8',
      env: { ...process.env, VIGIL_BENCH_OUT: path.join(scratch, 'cli.out') },
    }
  );
  const ms = performance.now() - t0;
  const peak = Number(/peak (\d+)/.exec(out)?.[1] ?? 0) / 1024;
  return { ms, peakMiB: peak, out: fs.readFileSync(path.join(scratch, 'cli.out'), 'utf8') };
}

function du(dir: string): number {
  return Number(execFileSync('du', ['-sb', dir], { encoding: 'utf8' }).split(/\s/)[0]);
}

async function main(): Promise<void> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'vigil-bench-journal-'));
  scratch = root;
  try {
    console.log(
      `journal benchmark: ${GIB} GiB of records, ${PATHS} paths, in ${root} (node ${process.version}, ${os.cpus().length} cores)`
    );
    const store = path.join(root, 'store');
    const t0 = Date.now();
    const span = writeSegments(store, GIB * 1024 ** 3);
    const chain = resolveChain(store);
    const segBytes = chain.segments.reduce((n, s) => n + fs.statSync(s.file).size, 0);
    console.log(
      `written in ${((Date.now() - t0) / 1000).toFixed(0)} s: ${span.records} records in ${chain.segments.length} segments (${mib(segBytes)}), ${chain.snapshots.length} snapshots, journal/ ${mib(du(path.join(store, 'journal')))}`
    );
    const s = await startUp(DIST, store);
    const show = (x: Awaited<ReturnType<typeof startUp>>) =>
      `journal replayed after ${x.ms.toFixed(0)} ms (replay ${x.replayMs} ms, ${x.records} records after the snapshot), ready for the catch-up after ${x.readyMs.toFixed(0)} ms, peak RSS ${x.peakMiB.toFixed(0)} MiB`;
    console.log(`start-up: ${show(s)}`);
    const again = await startUp(DIST, store);
    console.log(`start-up again: ${show(again)}`);
    for (const p of ['d0/f0', `d${(PATHS - 1) % 100}/f${PATHS - 1}`]) {
      const v = cli(['versions', '--store', store, '--path', p, '--json']);
      const listed = (JSON.parse(v.out) as { versions: unknown[] }).versions.length;
      console.log(
        `versions --path ${p}: ${listed} versions in ${v.ms.toFixed(0)} ms, peak RSS ${v.peakMiB.toFixed(0)} MiB`
      );
    }
    const mid = new Date(span.first + (span.last - span.first) / 2).toISOString();
    const to = path.join(root, 'restored');
    const r = cli(['restore', '--store', store, '--at', mid, '--to', to, '--path', 'links']);
    console.log(
      `restore --at ${mid} --path links: ${r.ms.toFixed(0)} ms, peak RSS ${r.peakMiB.toFixed(0)} MiB (${r.out.trim().split('\n').pop()})`
    );
    if (LEGACY_GIB > 0) {
      const legacy = path.join(root, 'legacy');
      const l = writeLegacy(legacy, LEGACY_GIB * 1024 ** 3);
      console.log(
        `legacy store: journal.log ${mib(fs.statSync(path.join(legacy, 'journal.log')).size)}, ${l.records} records`
      );
      if (OLD_AGENT) {
        const copy = path.join(root, 'legacy-old');
        execFileSync('cp', ['-a', legacy, copy]);
        const o = await startUp(path.join(OLD_AGENT, 'dist'), copy).catch((e: Error) => ({
          ms: NaN,
          readyMs: NaN,
          replayMs: null,
          records: null,
          peakMiB: NaN,
          line: e.message,
        }));
        console.log(
          `  the build before segments: journal replayed after ${o.ms.toFixed(0)} ms (replay ${o.replayMs} ms), peak RSS ${o.peakMiB.toFixed(0)} MiB${Number.isNaN(o.ms) ? `: ${o.line.split('\n').slice(-3).join(' ')}` : ''}`
        );
        fs.rmSync(copy, { recursive: true, force: true });
      }
      const f = await startUp(DIST, legacy);
      console.log(`  this build, first start (reads journal.log whole, then seals it into a segment): ${show(f)}`);
      const sealed = await startUp(DIST, legacy);
      console.log(`  this build, next start: ${show(sealed)}`);
    }
  } finally {
    if (KEEP) {
      console.log(`kept ${root}`);
    } else {
      fs.rmSync(root, { recursive: true, force: true });
    }
  }
}

void main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
