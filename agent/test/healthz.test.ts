import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { baseConfig, request, startAgent, tempDir, writeConfig } from './helpers';

test('the agent serves /healthz on loopback, logs JSON lines and exits 0 on SIGTERM', async () => {
  const dir = tempDir();
  const file = writeConfig(
    dir,
    baseConfig(dir, { processes: [{ name: 'cdp', kind: 'command', command: ['sleep', '1000'], startOnBoot: false }] })
  );
  const agent = await startAgent(file);
  try {
    const res = await request(`${agent.baseUrl}/healthz`);
    assert.equal(res.status, 200);
    assert.deepEqual(res.json, { status: 'ok' });
    assert.match(String(res.headers['content-type']), /^application\/json/);
    // A missing stateDir is created, private to the agent.
    const st = fs.statSync(path.join(dir, 'state'));
    assert.equal(st.mode & 0o777, 0o700);
  } finally {
    const exit = await agent.stop('SIGTERM');
    assert.deepEqual(exit, { code: 0, signal: null });
  }
  for (const line of agent.stderr().trim().split('\n')) {
    const rec = JSON.parse(line) as Record<string, unknown>;
    assert.equal(typeof rec.time, 'string');
    assert.equal(typeof rec.level, 'string');
    assert.equal(typeof rec.msg, 'string');
  }
});
