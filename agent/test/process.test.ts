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
  stopAfterTests,
  tempDir,
  waitFor,
  writeConfig,
  type RunningAgent,
} from './helpers';

const { agents, markedDir } = stopAfterTests();

async function setup(processExtra: Record<string, unknown> = {}, env: NodeJS.ProcessEnv = {}) {
  const { dir, marker } = markedDir();
  const file = writeConfig(dir, baseConfig(dir, { processes: [childProcessConfig(marker, processExtra)] }));
  const agent = await startAgent(file, env);
  agents.push(agent);
  return { dir, marker, agent, file };
}

async function cdp(agent: RunningAgent) {
  const r = await read(`${agent.baseUrl}/v1/status`);
  assert.equal(r.status, 200);
  return r.json.processes[0];
}

async function events(agent: RunningAgent, since = 0) {
  const r = await read(`${agent.baseUrl}/v1/events?since=${since}`);
  assert.equal(r.status, 200);
  return r.json.events as Array<Record<string, unknown>>;
}

test('crash, restart through the API, stale generation, stop, and a clean SIGTERM', async () => {
  const { agent, marker } = await setup({}, { SPAWN_GRANDCHILD: '1' });
  const first = await cdp(agent);
  assert.equal(first.state, 'running');
  assert.equal(first.expected, true);
  assert.equal(first.generation, 1);
  assert.equal(first.restarts, 0);
  assert.equal(first.lastExit, null);
  assert.equal(first.protection, null);
  assert.ok(processesWithMarker(marker).includes(first.pid));

  // kill -9 the supervised process: the agent reports it crashed, with an event.
  process.kill(first.pid, 'SIGKILL');
  const crashed = await waitFor('state crashed', async () => {
    const p = await cdp(agent);
    return p.state === 'crashed' ? p : undefined;
  });
  assert.equal(crashed.pid, null);
  assert.equal(crashed.lastExit.signal, 'SIGKILL');
  assert.equal(crashed.lastExit.code, null);
  const crash = (await events(agent)).find((e) => e.type === 'crashed');
  assert.ok(crash, 'a crashed event');
  assert.equal(crash.process, 'cdp');
  assert.equal(crash.signal, 'SIGKILL');
  assert.equal(crash.pid, first.pid);
  assert.match(String(crash.reason), /killed by signal SIGKILL/);
  // Its grandchild went with it: the whole process group is cleaned up.
  await waitFor('no orphan after the crash', () => processesWithMarker(marker).length === 0);

  // Restart: a new pid and the next generation, and who asked and why is recorded.
  const r = await control(`${agent.baseUrl}/v1/processes/cdp/restart`, {
    ifGeneration: 1,
    reason: 'crashed',
    requestedBy: 'monitor-a',
  });
  assert.equal(r.status, 202, r.text);
  assert.equal(r.json.generation, 2);
  assert.notEqual(r.json.pid, first.pid);
  assert.equal(typeof r.json.startedAt, 'string');
  const second = await cdp(agent);
  assert.equal(second.state, 'running');
  assert.equal(second.pid, r.json.pid);
  assert.equal(second.generation, 2);

  // A restart for a generation that is no longer current is refused.
  const stale = await control(`${agent.baseUrl}/v1/processes/cdp/restart`, {
    ifGeneration: 1,
    requestedBy: 'monitor-b',
  });
  assert.equal(stale.status, 409);
  assert.equal(stale.json.error.code, 'stale_generation');
  assert.equal(stale.json.error.message, 'ifGeneration 1 is stale: the current generation is 2');
  assert.equal((await cdp(agent)).pid, second.pid);

  const evs = await events(agent);
  const requested = evs.find((e) => e.type === 'restart_requested');
  assert.equal(requested?.requestedBy, 'monitor-a');
  assert.equal(requested?.reason, 'crashed');
  const done = evs.find((e) => e.type === 'restart_done');
  assert.equal(done?.generation, 2);
  assert.equal(done?.pid, second.pid);
  assert.equal(evs.filter((e) => e.type === 'restart_requested').length, 1);

  // Stop: graceful, and the stale generation check applies too.
  assert.equal((await control(`${agent.baseUrl}/v1/processes/cdp/stop`, { ifGeneration: 1 })).status, 409);
  const stop = await control(`${agent.baseUrl}/v1/processes/cdp/stop`, {
    ifGeneration: 2,
    reason: 'node passive',
    requestedBy: 'monitor-a',
  });
  assert.equal(stop.status, 202, stop.text);
  assert.deepEqual(stop.json, { generation: 2, state: 'stopped' });
  const stopped = await cdp(agent);
  assert.equal(stopped.state, 'stopped');
  assert.equal(stopped.lastExit.signal, 'SIGTERM');
  assert.deepEqual(processesWithMarker(marker), []);
  const stopEvents = (await events(agent)).filter((e) => e.type === 'stop_requested' || e.type === 'stop_done');
  assert.deepEqual(
    stopEvents.map((e) => [e.type, e.requestedBy, e.reason]),
    [
      ['stop_requested', 'monitor-a', 'node passive'],
      ['stop_done', 'monitor-a', 'node passive'],
    ]
  );

  // A stopped process is started by a restart.
  const again = await control(`${agent.baseUrl}/v1/processes/cdp/restart`, {});
  assert.equal(again.status, 202);
  assert.equal(again.json.generation, 3);
  await waitFor('child and grandchild up', () => processesWithMarker(marker).length === 2);

  // SIGTERM: the agent stops its processes (and their groups) and exits 0.
  const exit = await agent.stop('SIGTERM');
  assert.deepEqual(exit, { code: 0, signal: null });
  assert.deepEqual(processesWithMarker(marker), []);
  const lines = agent.logLines();
  assert.ok(lines.some((l) => l.msg === 'event' && l.type === 'agent_stopped'));
});

test('twenty concurrent restarts: one new generation per accepted call, no orphans', async () => {
  const { agent, marker } = await setup();
  const start = await cdp(agent);
  const url = `${agent.baseUrl}/v1/processes/cdp/restart`;

  // Without ifGeneration every call is accepted, one after the other.
  const all = await Promise.all(Array.from({ length: 20 }, (_, i) => control(url, { requestedBy: `client-${i}` })));
  assert.deepEqual(
    all.map((r) => r.status),
    Array.from({ length: 20 }, () => 202)
  );
  const gens = all.map((r) => r.json.generation as number).sort((a, b) => a - b);
  assert.deepEqual(
    gens,
    Array.from({ length: 20 }, (_, i) => start.generation + 1 + i)
  );
  assert.equal(new Set(all.map((r) => r.json.pid)).size, 20);
  const now = await cdp(agent);
  assert.equal(now.generation, start.generation + 20);
  assert.equal(now.restarts, 20);
  assert.deepEqual(processesWithMarker(marker), [now.pid]);

  // With ifGeneration, exactly one of twenty monitors wins.
  const racing = await Promise.all(
    Array.from({ length: 20 }, (_, i) => control(url, { ifGeneration: now.generation, requestedBy: `monitor-${i}` }))
  );
  const accepted = racing.filter((r) => r.status === 202);
  assert.equal(accepted.length, 1);
  assert.equal(racing.filter((r) => r.status === 409).length, 19);
  assert.equal(accepted[0]?.json.generation, now.generation + 1);
  const final = await cdp(agent);
  assert.equal(final.generation, now.generation + 1);
  assert.deepEqual(processesWithMarker(marker), [final.pid]);
  const exit = await agent.stop('SIGTERM');
  assert.equal(exit.code, 0);
  assert.deepEqual(processesWithMarker(marker), []);
});

test('a process that ignores its stop signal is killed after stopTimeout', async () => {
  const { agent, marker, dir } = await setup({ stopTimeout: '300ms' }, { IGNORE_SIGTERM: '1' });
  const p = await cdp(agent);
  // The child prints once its SIGTERM handler is installed; its output goes to stateDir/logs.
  const log = path.join(dir, 'state', 'logs', 'cdp.log');
  await waitFor(
    'the child to be ready',
    () => fs.existsSync(log) && fs.readFileSync(log, 'utf8').includes(`child ${p.pid} up`)
  );
  const stop = await control(`${agent.baseUrl}/v1/processes/cdp/stop`, { ifGeneration: p.generation });
  assert.equal(stop.status, 202);
  const exited = agent.logLines().find((l) => l.msg === 'event' && l.type === 'exited');
  assert.ok(exited);
  assert.match(String(exited.reason), /\(SIGTERM then SIGKILL after 300 ms\)$/);
  assert.deepEqual(processesWithMarker(marker), []);
});

test('autoRestart brings a crashed process back and records it', async () => {
  const { agent } = await setup({ autoRestart: true });
  const p = await cdp(agent);
  process.kill(p.pid, 'SIGKILL');
  const back = await waitFor('an automatic restart', async () => {
    const q = await cdp(agent);
    return q.state === 'running' && q.pid !== p.pid ? q : undefined;
  });
  assert.equal(back.generation, p.generation + 1);
  const evs = await events(agent);
  const req = evs.find((e) => e.type === 'start_requested');
  assert.equal(req?.requestedBy, 'vigil-agent (autoRestart)');
});

test('a command that cannot start: start_failed at boot, 500 and restart_failed through the API', async () => {
  const dir = tempDir();
  const file = writeConfig(
    dir,
    baseConfig(dir, { processes: [{ name: 'cdp', kind: 'command', command: [path.join(dir, 'no-such-binary')] }] })
  );
  const agent = await startAgent(file);
  agents.push(agent);
  const p = await cdp(agent);
  assert.equal(p.state, 'crashed');
  assert.equal(p.pid, null);
  assert.equal(p.generation, 1);
  const failed = (await events(agent)).find((e) => e.type === 'start_failed');
  assert.match(String(failed?.reason), /^startOnBoot \(role standalone\): spawn .*no-such-binary ENOENT$/);
  const r = await control(`${agent.baseUrl}/v1/processes/cdp/restart`, { requestedBy: 'test', reason: 'try again' });
  assert.equal(r.status, 500);
  assert.equal(r.json.error.code, 'operation_failed');
  assert.match(r.json.error.message, /^could not restart cdp: spawn .*ENOENT$/);
  const after = await cdp(agent);
  assert.deepEqual([after.state, after.pid, after.generation], ['crashed', null, 2]);
  const rf = (await events(agent)).find((e) => e.type === 'restart_failed');
  assert.equal(rf?.requestedBy, 'test');
  assert.equal((await agent.stop('SIGTERM')).code, 0);
});
