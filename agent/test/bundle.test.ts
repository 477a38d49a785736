import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { buildSync } from 'esbuild';
import { hashBuffer } from '../src/replicator/digest';
import { StoreLayout, openStoreForReading, prepareStore } from '../src/replicator/store';
import { AGENT_DIR, baseConfig, request, waitFor, writeConfig, tempDirsRemovedAfter } from './helpers';

const tempDir = tempDirsRemovedAfter();

/** The same options as `npm run bundle`: the native BLAKE3 module stays outside the file. */
function bundle(out: string): void {
  buildSync({
    entryPoints: [path.join(AGENT_DIR, 'src', 'cli.ts')],
    bundle: true,
    platform: 'node',
    target: 'node20',
    external: ['@napi-rs/blake-hash'],
    outfile: out,
    logLevel: 'warning',
  });
}

test('the single-file build runs on its own and serves its OpenAPI document', async () => {
  const dir = tempDir();
  const out = path.join(dir, 'vigil-agent.js');
  // Into a directory with nothing else in it.
  bundle(out);
  assert.ok(fs.readFileSync(out, 'utf8').startsWith('#!/usr/bin/env node\n'));
  const file = writeConfig(
    dir,
    baseConfig(dir, { processes: [{ name: 'cdp', kind: 'command', command: ['sleep', '1000'], startOnBoot: false }] })
  );
  const child = spawn(process.execPath, [out, '--config', file], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  try {
    const port = await waitFor('listening', () => /"msg":"listening","address":"[^"]*:(\d+)"/.exec(err)?.[1]);
    const doc = await request(`http://127.0.0.1:${port}/v1/openapi.json`);
    assert.equal(doc.status, 200);
    assert.deepEqual(doc.json, JSON.parse(fs.readFileSync(path.join(AGENT_DIR, 'openapi.json'), 'utf8')));
    const version = (JSON.parse(fs.readFileSync(path.join(AGENT_DIR, 'package.json'), 'utf8')) as { version: string })
      .version;
    assert.ok(err.includes(`"type":"agent_started","reason":"vigil-agent ${version} started`), err);
  } finally {
    child.kill('SIGTERM');
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    assert.equal(code, 0);
  }
});

test('the single-file build replicates without the native BLAKE3 module: SHA-256 for a new store, WebAssembly BLAKE3 for a BLAKE3 store', async () => {
  const dir = tempDir();
  const out = path.join(dir, 'vigil-agent.js');
  bundle(out);
  const source = path.join(dir, 'source');
  fs.mkdirSync(source);
  fs.writeFileSync(path.join(source, 'a.txt'), 'protected by the single file');
  const blake3Store = path.join(dir, 'blake3-store');
  prepareStore(new StoreLayout(blake3Store), 'blake3');
  for (const [store, algorithm] of [
    [path.join(dir, 'new-store'), 'sha256'],
    [blake3Store, 'blake3'],
  ] as const) {
    const child = spawn(process.execPath, [out, 'replicate', '--source', source, '--target', store], {
      cwd: dir,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const mirrored = path.join(store, 'mirror', 'a.txt');
    try {
      await waitFor(`a.txt in ${path.basename(store)}`, () => fs.existsSync(mirrored));
    } finally {
      child.kill('SIGTERM');
      assert.equal(await new Promise<number | null>((resolve) => child.on('close', resolve)), 0, err);
    }
    assert.equal(openStoreForReading(store).hash, algorithm);
    assert.match(
      err,
      new RegExp(
        `"msg":"store opened".*"hash":"${algorithm}","hashing":"${algorithm === 'sha256' ? 'openssl' : 'wasm'}"`
      )
    );
    const h = hashBuffer(algorithm, 'protected by the single file');
    // The object is stored; the mirror holds a copy of its own, never the object itself.
    const obj = fs.statSync(path.join(store, 'objects', h.slice(0, 2), h));
    assert.notEqual(obj.ino, fs.statSync(mirrored).ino);
    assert.equal(fs.readFileSync(mirrored, 'utf8'), 'protected by the single file');
  }
});
