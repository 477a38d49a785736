import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import {
  baseConfig,
  childProcessConfig,
  control,
  processesWithMarker,
  read,
  startAgent,
  statusOf,
  stopAfterTests,
  tempDir,
  waitFor,
  writeConfig,
} from './helpers';

const { agents, markedDir } = stopAfterTests();

function setup(roleSource: Record<string, unknown>, processExtra: Record<string, unknown> = {}) {
  const { dir, marker } = markedDir();
  const file = writeConfig(
    dir,
    baseConfig(dir, {
      cluster: { name: 'sql-ha', node: 'node-a', role: roleSource },
      processes: [childProcessConfig(marker, processExtra)],
    })
  );
  return { dir, marker, file };
}

test('a role file flips active, passive, active: reported, evented, and nothing is stopped', async () => {
  const dir0 = tempDir();
  const roleFile = path.join(dir0, 'role');
  fs.writeFileSync(roleFile, 'active\n');
  const { file, marker } = setup({ file: roleFile });
  const agent = await startAgent(file);
  agents.push(agent);
  const s = await statusOf(agent);
  assert.deepEqual(
    { name: s.cluster.name, node: s.cluster.node, role: s.cluster.role },
    { name: 'sql-ha', node: 'node-a', role: 'active' }
  );
  const pid = s.processes[0].pid;
  assert.equal(s.processes[0].state, 'running');
  assert.equal(s.processes[0].expected, true);

  fs.writeFileSync(roleFile, 'passive\n');
  const passive = await waitFor('role passive', async () => {
    const x = await statusOf(agent);
    return x.cluster.role === 'passive' ? x : undefined;
  });
  assert.equal(passive.processes[0].expected, false);
  // The agent reports; the monitor acts: CDP keeps running until asked to stop.
  assert.equal(passive.processes[0].state, 'running');
  assert.equal(passive.processes[0].pid, pid);

  fs.writeFileSync(roleFile, 'active\n');
  const active = await waitFor('role active again', async () => {
    const x = await statusOf(agent);
    return x.cluster.role === 'active' ? x : undefined;
  });
  assert.equal(active.processes[0].expected, true);
  assert.equal(active.processes[0].pid, pid);

  const events = (await read(`${agent.baseUrl}/v1/events`)).json.events as Array<Record<string, unknown>>;
  assert.deepEqual(
    events.filter((e) => e.type === 'role_changed').map((e) => [e.from, e.to]),
    [
      ['active', 'passive'],
      ['passive', 'active'],
    ]
  );
  // The metrics say it too.
  const m = await read(`${agent.baseUrl}/metrics`);
  assert.match(m.text, /^vigil_agent_cluster_active 1$/m);

  // An unreadable role is "unknown", with the reason, and nothing is expected.
  fs.writeFileSync(roleFile, 'primary\n');
  const unknown = await waitFor('role unknown', async () => {
    const x = await statusOf(agent);
    return x.cluster.role === 'unknown' ? x : undefined;
  });
  assert.equal(unknown.cluster.roleError, 'role source gave "primary", expected active or passive');
  assert.equal(unknown.processes[0].expected, false);
  await agent.stop('SIGTERM');
  assert.deepEqual(processesWithMarker(marker), []);
});

test('a passive node boots without CDP running; a runOn always process starts anyway', async () => {
  const { dir, marker } = markedDir();
  const file = writeConfig(
    dir,
    baseConfig(dir, {
      cluster: { name: 'sql-ha', node: 'node-b', role: { command: ['sh', '-c', 'echo passive'] } },
      processes: [
        childProcessConfig(marker),
        childProcessConfig(`${marker}-always`, { name: 'helper', runOn: 'always' }),
      ],
    })
  );
  const agent = await startAgent(file);
  agents.push(agent);
  const s = await statusOf(agent);
  assert.equal(s.cluster.role, 'passive');
  const [cdp, helper] = s.processes;
  assert.deepEqual([cdp.state, cdp.expected, cdp.pid], ['stopped', false, null]);
  assert.deepEqual([helper.state, helper.expected], ['running', true]);
  assert.deepEqual(processesWithMarker(`${marker}-always`), [helper.pid]);
  // The monitor may still start it explicitly (for instance to hand over during a failover).
  const r = await control(`${agent.baseUrl}/v1/processes/cdp/restart`, { requestedBy: 'test' });
  assert.equal(r.status, 202);
  await agent.stop('SIGTERM');
  assert.deepEqual(processesWithMarker(marker), []);
});

test('a role command that hangs times out and reports unknown', async () => {
  const { file } = setup({ command: ['sleep', '30'], timeout: '200ms' }, { startOnBoot: false });
  const agent = await startAgent(file);
  agents.push(agent);
  const s = await statusOf(agent);
  assert.equal(s.cluster.role, 'unknown');
  assert.equal(s.cluster.roleError, 'role command timed out after 200 ms');
  await agent.stop('SIGTERM');
});
