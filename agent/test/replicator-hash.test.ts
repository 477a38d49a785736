// The store's content hash: BLAKE3 (native, or WebAssembly without the native module), SHA-256
// for stores from before BLAKE3; the algorithm a store was created with is the one it keeps.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { createBLAKE3 } from 'hash-wasm';
import { hashBuffer, hashFile, nativeBlake3 } from '../src/replicator/digest';
import { hashFileInWorker, hashWhileWritten } from '../src/replicator/hash';
import { STORE_FORMAT, STORE_VERSION } from '../src/replicator/store';
import { runCliToEnd, tempDirsRemovedAfter } from './helpers';
import {
  diffTrees,
  journal,
  killReplicators,
  snapshot,
  startReplicator,
  replicatorDirs,
  storeHash,
  waitMirror,
  waitState,
} from './replicator-helpers';

const tempDir = tempDirsRemovedAfter();

after(killReplicators);

test('BLAKE3 from the native module equals the WebAssembly build and the published values, at every length that matters', async () => {
  assert.ok(nativeBlake3(), 'the native BLAKE3 module loads here (npm ci installs it)');
  // Published BLAKE3 digests of "" and "abc".
  assert.equal(hashBuffer('blake3', ''), 'af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262');
  assert.equal(hashBuffer('blake3', 'abc'), '6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85');
  assert.equal(hashBuffer('sha256', 'abc'), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  const wasm = await createBLAKE3();
  const data = randomBytes(3 * 1024 * 1024 + 7);
  // Block (64), chunk (1024) and SIMD-width boundaries, and sizes past the small-file limits.
  for (const n of [
    0,
    1,
    63,
    64,
    65,
    1023,
    1024,
    1025,
    2048,
    2049,
    8192,
    16_385,
    65_536,
    65_537,
    1 << 20,
    data.length,
  ]) {
    const slice = data.subarray(0, n);
    wasm.init();
    wasm.update(slice);
    assert.equal(hashBuffer('blake3', slice), wasm.digest('hex'), `length ${n}`);
  }
  const file = path.join(tempDir('vigil-hash-'), 'data.bin');
  fs.writeFileSync(file, data);
  wasm.init();
  wasm.update(data);
  const expected = wasm.digest('hex');
  assert.equal(await hashFile('blake3', file), expected, 'streamed in pieces');
  assert.equal(await hashFileInWorker(file, 'blake3'), expected, 'in a worker thread');
  assert.equal(await hashFileInWorker(file, 'sha256'), createHash('sha256').update(data).digest('hex'));
});

const dirs = () => replicatorDirs('vigil-repl-hash-');

const marker = (store: string) =>
  JSON.parse(fs.readFileSync(path.join(store, 'vigil-store.json'), 'utf8')) as {
    version: number;
    hash?: string;
    createdAt?: string;
  };

/** Small, mid-sized (read whole) and large (copied by the kernel, hashed apart) contents. */
function writeMix(source: string, tag: string): void {
  fs.mkdirSync(path.join(source, 'sub'), { recursive: true });
  fs.writeFileSync(path.join(source, `small-${tag}.txt`), `small ${tag}`);
  fs.writeFileSync(path.join(source, 'sub', `mid-${tag}.bin`), randomBytes(300 * 1024));
  fs.writeFileSync(path.join(source, 'sub', `large-${tag}.bin`), randomBytes(6 * 1024 * 1024));
}

function assertObjectsNamedBy(store: string, algorithm: 'blake3' | 'sha256'): number {
  let files = 0;
  for (const r of journal(store)) {
    if (r.op !== 'file') {
      continue;
    }
    const content = fs.readFileSync(path.join(store, 'objects', r.h.slice(0, 2), r.h));
    assert.equal(hashBuffer(algorithm, content), r.h, `object of ${r.p} is named by its ${algorithm}`);
    files++;
  }
  return files;
}

test('without the native module a BLAKE3 store is written through WebAssembly; a new store then gets SHA-256', async () => {
  const d = dirs();
  let r = startReplicator(d.source, d.store, d.status);
  await waitState(r);
  writeMix(d.source, 'native');
  await waitMirror(d.source, d.store);
  assert.deepEqual(await r.stop(), { code: 0, signal: null });
  assert.equal(marker(d.store).hash, 'blake3');
  assert.equal(marker(d.store).version, STORE_VERSION);

  // The same store, the native module switched off: what is captured is still named by BLAKE3.
  r = startReplicator(d.source, d.store, d.status, [], { VIGIL_NATIVE_HASH: '0' });
  await waitState(r);
  writeMix(d.source, 'wasm');
  await waitMirror(d.source, d.store);
  assert.match(r.log(), /"msg":"store opened".*"hash":"blake3","hashing":"wasm"/);
  assert.deepEqual(await r.stop(), { code: 0, signal: null });
  assert.ok(
    assertObjectsNamedBy(d.store, 'blake3') >= 6,
    'every captured version is checked (a file may be caught mid-write once more)'
  );
  assert.deepEqual(diffTrees(snapshot(d.source), snapshot(path.join(d.store, 'mirror'))), []);

  // A new store where the native module does not load: SHA-256 through OpenSSL.
  const e = dirs();
  writeMix(e.source, 'x');
  r = startReplicator(e.source, e.store, e.status, [], { VIGIL_NATIVE_HASH: '0' });
  await waitState(r);
  assert.match(r.log(), /"msg":"store opened".*"hash":"sha256","hashing":"openssl"/);
  assert.deepEqual(await r.stop(), { code: 0, signal: null });
  assert.equal(marker(e.store).hash, 'sha256');
  assert.ok(
    assertObjectsNamedBy(e.store, 'sha256') >= 3,
    'every captured version is checked (a file may be caught mid-write once more)'
  );
});

test('a store from before BLAKE3 (marker version 1) keeps SHA-256 whatever --hash asks, and lists versions with sha256', async () => {
  const d = dirs();
  let r = startReplicator(d.source, d.store, d.status, ['--hash', 'sha256']);
  await waitState(r);
  writeMix(d.source, 'one');
  await waitMirror(d.source, d.store);
  assert.deepEqual(await r.stop(), { code: 0, signal: null });
  // What an earlier vigil-agent wrote: no hash in the marker.
  fs.writeFileSync(
    path.join(d.store, 'vigil-store.json'),
    JSON.stringify({ format: STORE_FORMAT, version: 1, createdAt: '2026-11-20T00:00:00.000Z' }) + '\n'
  );

  r = startReplicator(d.source, d.store, d.status, ['--hash', 'blake3']);
  await waitState(r);
  fs.writeFileSync(path.join(d.source, 'small-one.txt'), 'changed after the upgrade');
  writeMix(d.source, 'two');
  await waitMirror(d.source, d.store);
  assert.match(
    r.log(),
    /"msg":"the store keeps the hash algorithm it was created with".*"store":"sha256","requested":"blake3"/
  );
  assert.deepEqual(await r.stop(), { code: 0, signal: null });
  assert.deepEqual(
    [marker(d.store).version, marker(d.store).hash],
    [STORE_VERSION, 'sha256'],
    'the marker is upgraded and names the algorithm the store keeps'
  );
  assert.equal(marker(d.store).createdAt, '2026-11-20T00:00:00.000Z');
  assert.ok(
    assertObjectsNamedBy(d.store, 'sha256') >= 7,
    'every captured version is checked (a file may be caught mid-write once more)'
  );
  assert.equal(
    storeHash(d.store, 'changed after the upgrade'),
    createHash('sha256').update('changed after the upgrade').digest('hex')
  );

  const v = await runCliToEnd(['versions', '--store', d.store, '--path', 'small-one.txt', '--json']);
  assert.equal(v.code, 0, v.stderr);
  const listed = JSON.parse(v.stdout) as { hashAlgorithm: string; versions: Array<{ hash: string; sha256: string }> };
  assert.equal(listed.hashAlgorithm, 'sha256');
  assert.deepEqual(
    listed.versions.map((x) => x.sha256),
    ['small one', 'changed after the upgrade'].map((c) => createHash('sha256').update(c).digest('hex'))
  );
  assert.deepEqual(
    listed.versions.map((x) => x.hash),
    listed.versions.map((x) => x.sha256)
  );
  const table = await runCliToEnd(['versions', '--store', d.store, '--path', 'small-one.txt']);
  assert.match(table.stdout.split('\n')[0] as string, /SHA256$/);
});

test('a marker naming an unknown algorithm stops the replicator, restore and versions with a clear error', async () => {
  const d = dirs();
  fs.mkdirSync(d.store);
  fs.writeFileSync(
    path.join(d.store, 'vigil-store.json'),
    JSON.stringify({ format: STORE_FORMAT, version: 3, hash: 'k12' })
  );
  // The log escapes the quotes (JSON); the command line's error does not.
  const expected =
    /vigil-store\.json: hash \\?"k12\\?" is not one this vigil-agent knows \(blake3, sha256\); a newer version wrote this store/;
  const r = startReplicator(d.source, d.store, d.status);
  const exit = await r.exited;
  assert.equal(exit.code, 1);
  assert.match(r.log(), expected);
  const v = await runCliToEnd(['versions', '--store', d.store, '--path', 'a.txt']);
  assert.equal(v.code, 1);
  assert.match(v.stderr, expected);
  const bad = await runCliToEnd(['replicate', '--source', d.source, '--target', d.store, '--hash', 'md5']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--hash: must be auto, blake3 or sha256, not \\?"md5\\?"/);
});

test('a file hashed while it is written gets the hash of every byte written, whatever the pace', async () => {
  const dir = tempDir('vigil-follow-');
  try {
    for (const algorithm of ['blake3', 'sha256'] as const) {
      const file = path.join(dir, `grown-${algorithm}`);
      const pieces = Array.from({ length: 40 }, (_, i) => randomBytes(i % 7 === 0 ? 3 << 20 : 1000 + i));
      const r = await hashWhileWritten(file, algorithm, async () => {
        const fh = await fs.promises.open(file, 'r+');
        try {
          for (const [i, p] of pieces.entries()) {
            await fh.write(p);
            if (i % 5 === 0) {
              await new Promise((resolve) => setTimeout(resolve, 3));
            }
          }
        } finally {
          await fh.close();
        }
      });
      const all = Buffer.concat(pieces);
      assert.equal(r.bytes, all.length, algorithm);
      assert.equal(r.hash, hashBuffer(algorithm, all), algorithm);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
