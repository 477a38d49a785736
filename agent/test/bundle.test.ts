import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { buildSync } from 'esbuild';
import { AGENT_DIR, baseConfig, request, tempDir, waitFor, writeConfig } from './helpers';

test('the single-file build runs on its own and serves its OpenAPI document', async () => {
  const dir = tempDir();
  const out = path.join(dir, 'vigil-agent.js');
  // The same options as `npm run bundle`, into a directory with nothing else in it.
  buildSync({ entryPoints: [path.join(AGENT_DIR, 'src', 'cli.ts')], bundle: true, platform: 'node', target: 'node20', outfile: out, logLevel: 'warning' });
  assert.ok(fs.readFileSync(out, 'utf8').startsWith('#!/usr/bin/env node\n'));
  const file = writeConfig(dir, baseConfig(dir, { processes: [{ name: 'cdp', kind: 'command', command: ['sleep', '1000'], startOnBoot: false }] }));
  const child = spawn(process.execPath, [out, '--config', file], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  try {
    const port = await waitFor('listening', () => /"msg":"listening","address":"[^"]*:(\d+)"/.exec(err)?.[1]);
    const doc = await request(`http://127.0.0.1:${port}/v1/openapi.json`);
    assert.equal(doc.status, 200);
    assert.deepEqual(doc.json, JSON.parse(fs.readFileSync(path.join(AGENT_DIR, 'openapi.json'), 'utf8')));
    const version = (JSON.parse(fs.readFileSync(path.join(AGENT_DIR, 'package.json'), 'utf8')) as { version: string }).version;
    assert.ok(err.includes(`"type":"agent_started","reason":"vigil-agent ${version} started`), err);
  } finally {
    child.kill('SIGTERM');
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    assert.equal(code, 0);
  }
});
