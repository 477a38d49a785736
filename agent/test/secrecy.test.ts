// What a read token shows of supervised processes: no command line, no environment. The control
// token's /debug shows them with the values whose names look secret redacted. A real agent.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { baseConfig, CHILD, CONTROL_TOKEN, READ_TOKEN, request, stopAfterTests, waitFor, writeConfig } from './helpers';

const { markedDir, start } = stopAfterTests();

const SECRETS = ['hunter2-env', 'hunter2-arg', 'hunter2-key', 'hunter2-url', 'hunter2-role'];

test("supervised processes' command lines and environment: control token only, secret values redacted", async () => {
  const { dir, marker } = markedDir();
  const file = writeConfig(
    dir,
    baseConfig(dir, {
      cluster: { name: 'c', node: 'n', role: { command: ['/bin/sh', '-c', 'kill -KILL $$', '--token=hunter2-role'] } },
      processes: [
        {
          name: 'cdp',
          kind: 'command',
          runOn: 'always',
          command: [
            process.execPath,
            CHILD,
            marker,
            '--password=hunter2-arg',
            '--api-key',
            'hunter2-key',
            'postgres://u:hunter2-url@db/x',
          ],
          env: { DB_PASSWORD: 'hunter2-env', DB_HOST: 'db.example' },
        },
      ],
    })
  );
  const agent = await start(file);
  await waitFor(
    'the process to run',
    async () =>
      (await request(`${agent.baseUrl}/v1/status`, { token: READ_TOKEN })).json.processes[0].state === 'running'
  );

  const asRead = await request(`${agent.baseUrl}/debug`, { token: READ_TOKEN });
  assert.equal(asRead.status, 403);
  assert.equal(asRead.json.error.code, 'forbidden');

  const d = await request(`${agent.baseUrl}/debug`, { token: CONTROL_TOKEN });
  assert.equal(d.status, 200);
  for (const s of [...SECRETS, READ_TOKEN, CONTROL_TOKEN]) {
    assert.ok(!d.text.includes(s), `/debug shows ${s}`);
  }
  const p = d.json.config.processes[0];
  assert.deepEqual(p.env, { DB_PASSWORD: '[REDACTED]', DB_HOST: 'db.example' });
  assert.deepEqual(p.command.slice(3), [
    '--password=[REDACTED]',
    '--api-key',
    '[REDACTED]',
    'postgres://u:[REDACTED]@db/x',
  ]);
  assert.deepEqual(d.json.supervisors.cdp.command, p.command);
  assert.deepEqual(d.json.config.cluster.role.argv, ['/bin/sh', '-c', 'kill -KILL $$', '--token=[REDACTED]']);
  assert.equal(d.json.status.cluster.roleError, 'role command failed: killed by SIGKILL');

  // What the read token opens shows neither the command line nor the environment.
  for (const path of ['/v1/status', '/v1/processes/cdp', '/metrics', '/v1/events?since=0']) {
    const r = await request(`${agent.baseUrl}${path}`, { token: READ_TOKEN });
    assert.equal(r.status, 200, path);
    for (const s of [...SECRETS, 'DB_PASSWORD', '--password', 'child.js']) {
      assert.ok(!r.text.includes(s), `${path} shows ${s}`);
    }
  }
  for (const s of [...SECRETS, READ_TOKEN, CONTROL_TOKEN]) {
    assert.ok(!agent.stderr().includes(s), `the log shows ${s}`);
  }
  await agent.stop('SIGTERM');
});
