import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { baseConfig, control, read, startAgent, tempDir, waitFor, writeConfig, type RunningAgent } from './helpers';

const agents: RunningAgent[] = [];
after(async () => {
  for (const a of agents) {
    await a.stop('SIGKILL');
  }
});

test('kind systemd: state from systemctl show, restart and stop with systemctl', async () => {
  const dir = tempDir();
  const fake = path.join(dir, 'systemd');
  const bin = path.join(dir, 'bin');
  fs.mkdirSync(fake);
  fs.mkdirSync(bin);
  fs.copyFileSync(path.join(__dirname, 'fixtures', 'systemctl'), path.join(bin, 'systemctl'));
  fs.chmodSync(path.join(bin, 'systemctl'), 0o755);
  fs.writeFileSync(path.join(fake, 'state'), 'active\n');
  fs.writeFileSync(path.join(fake, 'pid'), '4242\n');
  const file = writeConfig(
    dir,
    baseConfig(dir, { processes: [{ name: 'cdp', kind: 'systemd', unit: 'lsyncd.service' }] })
  );
  const agent = await startAgent(file, { PATH: `${bin}:${process.env.PATH}`, FAKE_SYSTEMD_DIR: fake });
  agents.push(agent);
  const calls = () => fs.readFileSync(path.join(fake, 'calls.log'), 'utf8').trim().split('\n');
  const cdp = async () => (await read(`${agent.baseUrl}/v1/status`)).json.processes[0];

  const p = await cdp();
  assert.deepEqual([p.kind, p.state, p.pid, p.generation], ['systemd', 'running', 4242, 1]);
  assert.equal(p.startedAt, '2026-11-26T04:20:30.000Z');
  assert.match(calls()[0] as string, /^show lsyncd\.service --property=/);

  const r = await control(`${agent.baseUrl}/v1/processes/cdp/restart`, {
    ifGeneration: 1,
    requestedBy: 'test',
    reason: 'check',
  });
  assert.equal(r.status, 202, r.text);
  assert.equal(r.json.generation, 2);
  assert.equal(r.json.pid, 4001);
  assert.ok(calls().includes('restart lsyncd.service'));
  assert.equal((await control(`${agent.baseUrl}/v1/processes/cdp/restart`, { ifGeneration: 1 })).status, 409);

  // The unit fails behind the agent's back: seen as crashed, with the signal, and an event.
  fs.writeFileSync(path.join(fake, 'state'), 'failed\n');
  const crashed = await waitFor('crashed', async () => {
    const q = await cdp();
    return q.state === 'crashed' ? q : undefined;
  });
  assert.equal(crashed.lastExit.signal, 'SIGKILL');
  const events = (await read(`${agent.baseUrl}/v1/events`)).json.events as Array<Record<string, unknown>>;
  const crash = events.find((e) => e.type === 'crashed');
  assert.match(String(crash?.reason), /unit lsyncd\.service is failed \(result signal\)/);

  // A restart of a failed unit starts it.
  const again = await control(`${agent.baseUrl}/v1/processes/cdp/restart`, {});
  assert.equal(again.status, 202);
  assert.equal(again.json.generation, 3);
  assert.ok(calls().includes('start lsyncd.service'));

  const stop = await control(`${agent.baseUrl}/v1/processes/cdp/stop`, { requestedBy: 'test' });
  assert.equal(stop.status, 202);
  assert.equal(stop.json.state, 'stopped');
  assert.ok(calls().includes('stop lsyncd.service'));
  assert.equal((await cdp()).state, 'stopped');

  // The agent's own shutdown leaves a systemd unit alone.
  fs.writeFileSync(path.join(fake, 'state'), 'active\n');
  await waitFor('running again', async () => (await cdp()).state === 'running');
  const before = calls().length;
  assert.equal((await agent.stop('SIGTERM')).code, 0);
  assert.ok(
    !calls()
      .slice(before)
      .some((c) => c.startsWith('stop'))
  );
});
