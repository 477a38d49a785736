// What the replicator stores is what was really written: files rewritten in place while they
// are captured never give a version that mixes two writes, and every object's bytes hash to
// its name.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { openStoreForReading } from '../src/replicator/store';
import { runCliToEnd, waitFor } from './helpers';
import {
  badObjects,
  journalRecords,
  killReplicators,
  replicatorDirs,
  startReplicator,
  waitMirror,
  waitState,
} from './replicator-helpers';

after(killReplicators);

/** Runs a process that rewrites `file` in place in bursts for `ms`; resolves to the number of rewrites. */
function rewriter(file: string, size: number, ms: number): Promise<number> {
  const script = `
    const fs = require('node:fs');
    const [file, size, ms] = [process.argv[1], Number(process.argv[2]), Number(process.argv[3])];
    const fd = fs.openSync(file, 'r+');
    const word = Buffer.alloc(4);
    const until = Date.now() + ms;
    let k = 0;
    (async () => {
      while (Date.now() < until) {
        const burstEnd = Date.now() + 20 + Math.random() * 150;
        while (Date.now() < burstEnd) {
          word.writeUInt32LE(++k);
          const c = Buffer.alloc(size, word);
          fs.writeSync(fd, c, 0, c.length, 0);
        }
        await new Promise((r) => setTimeout(r, Math.random() * 200));
      }
      process.stdout.write(String(k));
    })();`;
  const child = spawn(process.execPath, ['-e', script, file, String(size), String(ms)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  return new Promise((resolve, reject) =>
    child.on('exit', (code) => (code === 0 ? resolve(Number(out)) : reject(new Error(`rewriter exited with ${code}`))))
  );
}

/** Content number `k` of a file of `size` bytes: the 32-bit number k repeated, so a mix of two is visible. */
function content(k: number, size: number): Buffer {
  const word = Buffer.alloc(4);
  word.writeUInt32LE(k);
  return Buffer.alloc(size, word);
}

test('files rewritten in place (one pwrite per rewrite) while captured: no stored version mixes two writes', async () => {
  const d = replicatorDirs('vigil-torn-');
  const files = { 'small.bin': 60 * 1024, 'large.bin': 24 * 1024 * 1024 };
  const r = startReplicator(
    d.source,
    d.store,
    d.status,
    process.env.VIGIL_TORN_SETTLE ? ['--settle', process.env.VIGIL_TORN_SETTLE] : []
  );
  await waitState(r);
  for (const [name, size] of Object.entries(files)) {
    fs.writeFileSync(path.join(d.source, name), content(0, size));
  }
  // One writer process per file rewrites it in bursts (each rewrite a single pwrite at offset 0
  // of the whole new content, back to back) with pauses between them, so that reads start in
  // quiet moments and the next burst overlaps them.
  const seconds = Number(process.env.VIGIL_TORN_SECONDS ?? 8);
  const writers = Object.entries(files).map(([name, size]) =>
    rewriter(path.join(d.source, name), size, seconds * 1000)
  );
  const counts = await Promise.all(writers);
  const rewrites = Object.fromEntries(Object.keys(files).map((n, i) => [n, counts[i] as number]));
  await waitMirror(d.source, d.store, 60_000);
  await r.stop();

  // A content that was written is empty (writeFileSync truncates first) or content(k) for a k
  // that was written: one number repeated over the whole size.
  const layout = openStoreForReading(d.store);
  const written = (name: string, data: Buffer) => {
    if (data.length === 0) {
      return true;
    }
    if (data.length !== files[name as keyof typeof files]) {
      return false;
    }
    const k = data.readUInt32LE(0);
    return k <= (rewrites[name] as number) && data.equals(content(k, data.length));
  };
  const versions = new Map<string, number>();
  const invented: string[] = [];
  for (const rec of journalRecords(d.store)) {
    if (rec.op !== 'file' || !(rec.p in files)) {
      continue;
    }
    versions.set(rec.p, (versions.get(rec.p) ?? 0) + 1);
    if (!written(rec.p, fs.readFileSync(layout.object(rec.h)))) {
      invented.push(`${rec.p} at ${new Date(rec.at).toISOString()}: ${rec.h}`);
    }
  }
  assert.deepEqual(
    invented,
    [],
    `versions that were never written (${JSON.stringify(rewrites)} rewrites, ${JSON.stringify([...versions])} versions stored)`
  );
  assert.ok(
    (versions.get('small.bin') ?? 0) > 3 && (versions.get('large.bin') ?? 0) > 1,
    `versions stored: ${JSON.stringify([...versions])}`
  );
  assert.deepEqual(badObjects(d.store), [], 'objects whose content does not hash to their name');
});

test('a tampered object is never trusted: restore refuses to serve it, a capture writes it again', async () => {
  const d = replicatorDirs('vigil-tamper-');
  const r = startReplicator(d.source, d.store, d.status);
  await waitState(r);
  // Over 64 KiB: its record carries no copy of it (a small one's does, until its segment is sealed).
  const big = Buffer.alloc(100 * 1024, 'the real content ');
  fs.writeFileSync(path.join(d.source, 'big.bin'), big);
  fs.writeFileSync(path.join(d.source, 'small.txt'), 'small and real');
  await waitMirror(d.source, d.store);
  const layout = openStoreForReading(d.store);
  const objectOf = (p: string) => {
    const rec = journalRecords(d.store).find((x) => x.op === 'file' && x.p === p);
    assert.ok(rec?.op === 'file');
    return layout.object(rec.h);
  };
  // Someone with write access to the store changes the objects' bytes.
  for (const p of ['big.bin', 'small.txt']) {
    fs.chmodSync(objectOf(p), 0o644);
    fs.writeFileSync(objectOf(p), 'tampered bytes!!');
  }
  fs.writeFileSync(path.join(d.source, 'c.txt'), 'untouched');
  // (The mirror's files are the objects themselves: they show the tampered bytes.)
  await waitFor('c.txt to be captured', () => fs.existsSync(path.join(d.store, 'mirror', 'c.txt')));
  // Restore checks what it copies: big.bin is left out and named, exit 1; small.txt comes from
  // its record's own copy (which hashes to the name); the rest is restored.
  const to = path.join(d.root, 'restored');
  const res = await runCliToEnd(['restore', '--store', d.store, '--at', 'now', '--to', to]);
  assert.equal(res.code, 1, res.stderr);
  assert.match(
    res.stderr,
    /not restored: big\.bin: its content in the store \([0-9a-f]{64}\) is damaged: it does not hash to its name/
  );
  assert.ok(!fs.existsSync(path.join(to, 'big.bin')));
  assert.equal(fs.readFileSync(path.join(to, 'small.txt'), 'utf8'), 'small and real');
  assert.equal(fs.readFileSync(path.join(to, 'c.txt'), 'utf8'), 'untouched');
  // The same content captured again (another file, a new replicator run): the damaged object is
  // not trusted, it is written again from the source.
  await r.stop();
  const again = startReplicator(d.source, d.store, d.status);
  await waitState(again);
  fs.writeFileSync(path.join(d.source, 'copy-of-big.bin'), big);
  fs.writeFileSync(path.join(d.source, 'copy-of-small.txt'), 'small and real');
  await waitFor('the copies to be captured', () =>
    ['copy-of-big.bin', 'copy-of-small.txt'].every((p) => fs.existsSync(path.join(d.store, 'mirror', p)))
  );
  assert.ok(fs.readFileSync(objectOf('big.bin')).equals(big), 'the object holds the real content again');
  assert.equal(fs.readFileSync(objectOf('small.txt'), 'utf8'), 'small and real');
  await waitFor('the status to say so', () =>
    again.status()?.errors.some((e) => /did not match its hash and was written again from copy-of-small\.txt/.test(e))
  );
  await again.stop();
  const to2 = path.join(d.root, 'restored-again');
  const ok = await runCliToEnd(['restore', '--store', d.store, '--at', 'now', '--to', to2]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.ok(fs.readFileSync(path.join(to2, 'big.bin')).equals(big));
});
