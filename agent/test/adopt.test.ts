import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import {
  allEvents,
  baseConfig,
  CHILD,
  childProcessConfig,
  processesWithMarker,
  read,
  statusOf,
  stopAfterTests,
  waitFor,
  writeConfig,
} from './helpers';

const { markedDir, start } = stopAfterTests();

test('after kill -9 of the agent, the next agent adopts the process and keeps the events', async () => {
  const { dir, marker } = markedDir();
  const file = writeConfig(dir, baseConfig(dir, { processes: [childProcessConfig(marker)] }));
  const first = await start(file);
  const before = (await statusOf(first)).processes[0];
  assert.equal(before.state, 'running');
  const eventsBefore = await allEvents(first);
  const agentId = (await statusOf(first)).agent.id;

  assert.deepEqual(await first.stop('SIGKILL'), { code: null, signal: 'SIGKILL' });
  // The supervised process outlives the agent (own session and process group).
  assert.deepEqual(processesWithMarker(marker), [before.pid]);

  const second = await start(file);
  const s = await statusOf(second);
  const after = s.processes[0];
  assert.equal(s.agent.id, agentId, 'the agent id is kept in stateDir');
  assert.equal(after.state, 'running');
  assert.equal(after.pid, before.pid);
  assert.equal(after.generation, before.generation);
  assert.equal(after.startedAt, before.startedAt);
  assert.deepEqual(processesWithMarker(marker), [before.pid], 'never two copies');

  const eventsAfter = await allEvents(second);
  // Every event from before the kill is still there, with the same sequence numbers.
  assert.deepEqual(eventsAfter.slice(0, eventsBefore.length), eventsBefore);
  const adopted = eventsAfter.find((e) => e.type === 'adopted');
  assert.ok(adopted);
  assert.equal(adopted.pid, before.pid);
  assert.match(String(adopted.reason), /left running by a previous agent/);
  const seqs = eventsAfter.map((e) => e.seq as number);
  assert.deepEqual(
    seqs,
    [...seqs].sort((a, b) => a - b)
  );
  assert.equal(new Set(seqs).size, seqs.length);

  // The adopted process is still supervised: its death is noticed (exit status unknown).
  process.kill(before.pid, 'SIGKILL');
  const crashed = await waitFor('the adopted process to be seen gone', async () => {
    const p = (await statusOf(second)).processes[0];
    return p.state === 'crashed' ? p : undefined;
  });
  assert.deepEqual([crashed.lastExit.code, crashed.lastExit.signal], [null, null]);

  // And SIGTERM still stops everything cleanly after a restart through the API.
  await read(`${second.baseUrl}/v1/status`);
  assert.equal((await second.stop('SIGTERM')).code, 0);
  assert.deepEqual(processesWithMarker(marker), []);
});

test('a process that died while the agent was down is recorded and started again', async () => {
  const { dir, marker } = markedDir();
  const file = writeConfig(dir, baseConfig(dir, { processes: [childProcessConfig(marker)] }));
  const first = await start(file);
  const before = (await statusOf(first)).processes[0];
  await first.stop('SIGKILL');
  process.kill(before.pid, 'SIGKILL');
  await waitFor('the orphan to be gone', () => processesWithMarker(marker).length === 0);

  const second = await start(file);
  const p = (await statusOf(second)).processes[0];
  assert.equal(p.state, 'running');
  assert.notEqual(p.pid, before.pid);
  assert.equal(p.generation, before.generation + 1);
  const gone = (await allEvents(second)).find((e) => e.type === 'crashed');
  assert.match(String(gone?.reason), /ended while the agent was not running; exit status unknown/);
  assert.deepEqual(processesWithMarker(marker), [p.pid]);
  await second.stop('SIGTERM');
});

test('a leftover process running another command than configured is replaced', async () => {
  const { dir, marker } = markedDir();
  const state = path.join(dir, 'state');
  const oldFile = writeConfig(
    dir,
    baseConfig(dir, {
      processes: [
        childProcessConfig(marker, {
          command: [
            process.execPath,
            path.join(__dirname, 'fixtures', 'child.js'),
            marker,
            'old',
            '--password=old-secret-value',
          ],
        }),
      ],
    }),
    'old.yaml'
  );
  const first = await start(oldFile);
  const old = (await statusOf(first)).processes[0];
  await first.stop('SIGKILL');

  const newFile = writeConfig(
    dir,
    { ...baseConfig(dir, { processes: [childProcessConfig(marker)] }), stateDir: state },
    'new.yaml'
  );
  const second = await start(newFile);
  const p = (await statusOf(second)).processes[0];
  assert.equal(p.state, 'running');
  assert.notEqual(p.pid, old.pid);
  assert.deepEqual(processesWithMarker(marker), [p.pid]);
  const replaced = (await allEvents(second)).find((e) => e.type === 'replaced');
  assert.equal(replaced?.pid, old.pid);
  // The events are open to the read token: the old command line is only in the log, redacted.
  assert.doesNotMatch(JSON.stringify(await allEvents(second)), /child\.js|old-secret-value/);
  assert.ok(!second.stderr().includes('old-secret-value'));
  assert.match(second.stderr(), /"msg":"replaced a process running another command".*--password=\[REDACTED\]/);
  await second.stop('SIGTERM');
});

/**
 * What an agent killed between the spawn and the record of the pid leaves: a process in its own
 * session with the VIGIL_ marker, and a record of its generation without a pid.
 */
function leaveUnrecorded(
  dir: string,
  generation: number,
  marked: Array<{ generation: number; argv: string[]; stateDir?: string }>
): number[] {
  const state = path.join(dir, 'state');
  fs.mkdirSync(path.join(state, 'processes'), { recursive: true });
  fs.writeFileSync(
    path.join(state, 'processes', 'cdp.json'),
    JSON.stringify({
      generation,
      restarts: 0,
      lastExit: null,
      startedAt: '2026-11-26T04:20:00.000Z',
      pid: null,
      pidStartTicks: null,
      command: null,
    })
  );
  return marked.map((m) => {
    const [file, ...args] = m.argv;
    const child = spawn(file as string, args, {
      detached: true,
      stdio: 'ignore',
      env: {
        ...process.env,
        VIGIL_STATE_DIR: m.stateDir ?? fs.realpathSync(state),
        VIGIL_PROCESS: 'cdp',
        VIGIL_GENERATION: String(m.generation),
      },
    });
    child.unref();
    return child.pid as number;
  });
}

test('a process started by a killed agent before it recorded the pid is adopted; other marked leftovers are stopped', async () => {
  const { dir, marker } = markedDir();
  const argv = [process.execPath, CHILD, marker];
  const file = writeConfig(dir, baseConfig(dir, { processes: [childProcessConfig(marker)] }));
  const [current, older, otherStateDir] = leaveUnrecorded(dir, 3, [
    { generation: 3, argv },
    { generation: 2, argv },
    { generation: 3, argv, stateDir: path.join(dir, 'another-state') },
  ]);
  await waitFor('the leftovers to run', () => processesWithMarker(marker).length === 3);

  const agent = await start(file);
  const p = (await statusOf(agent)).processes[0];
  assert.deepEqual([p.state, p.pid, p.generation, p.startedAt], ['running', current, 3, '2026-11-26T04:20:00.000Z']);
  const events = await allEvents(agent);
  const adopted = events.find((e) => e.type === 'adopted');
  assert.equal(adopted?.pid, current);
  assert.match(String(adopted?.reason), /before it recorded the pid \(found by its VIGIL_GENERATION\)/);
  const stopped = events.filter((e) => e.type === 'leftover_stopped');
  assert.deepEqual(
    stopped.map((e) => e.pid),
    [older]
  );
  assert.match(String(stopped[0]?.reason), /generation 2\) .* stopped it \(SIGTERM\)$/);
  assert.doesNotMatch(String(stopped[0]?.reason), new RegExp(marker));
  // Another agent's process (another stateDir) is none of this agent's business.
  assert.deepEqual(processesWithMarker(marker).sort(), [current, otherStateDir].sort());
  const record = JSON.parse(fs.readFileSync(path.join(dir, 'state', 'processes', 'cdp.json'), 'utf8'));
  assert.equal(record.pid, current);

  await agent.stop('SIGTERM');
  assert.deepEqual(processesWithMarker(marker), [otherStateDir]);
});

test('an unrecorded leftover that runs another command than configured is stopped and the configured one started', async () => {
  const { dir, marker } = markedDir();
  const file = writeConfig(
    dir,
    baseConfig(dir, { processes: [childProcessConfig(marker, { stopSignal: 'SIGINT', stopTimeout: '300ms' })] })
  );
  // An old command that ignores the stop signal: it gets SIGKILL after stopTimeout.
  const [old] = leaveUnrecorded(dir, 3, [
    {
      generation: 3,
      argv: [process.execPath, '-e', 'process.on("SIGINT", () => {}); setInterval(() => {}, 1e9)', marker],
    },
  ]);
  await waitFor('the leftover to run', () => processesWithMarker(marker).length === 1);

  const agent = await start(file);
  const p = (await statusOf(agent)).processes[0];
  assert.equal(p.state, 'running');
  assert.equal(p.generation, 4);
  assert.notEqual(p.pid, old);
  assert.deepEqual(processesWithMarker(marker), [p.pid]);
  const stopped = (await allEvents(agent)).find((e) => e.type === 'leftover_stopped');
  assert.equal(stopped?.pid, old);
  assert.match(String(stopped?.reason), /stopped it \(SIGINT then SIGKILL after 300 ms\)$/);
  await agent.stop('SIGTERM');
});
