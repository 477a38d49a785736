// autoRestart with a real agent and a command that exits 1 at once: the back-off grows, the
// flap guard's history survives automatic restarts and agent kills, and only a restart through
// the API clears it.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import {
  allEvents,
  baseConfig,
  control,
  CONTROL_TOKEN,
  request,
  statusOf,
  stopAfterTests,
  waitFor,
  writeConfig,
  type RunningAgent,
} from './helpers';

const { markedDir, start } = stopAfterTests();

const at = (e: Record<string, unknown> | undefined) => Date.parse(String(e?.time));

/** A command that exits 1 at once; the marker ($0) makes it findable in /proc. */
function crashingConfig(dir: string, marker: string) {
  return baseConfig(dir, {
    processes: [{ name: 'cdp', kind: 'command', command: ['/bin/sh', '-c', 'exit 1', marker], autoRestart: true }],
  });
}

/** Waits until the n-th crash is recorded and the status shows it. */
async function nthCrash(agent: RunningAgent, n: number, timeoutMs: number) {
  return waitFor(
    `crash ${n}`,
    async () => {
      const crashes = (await allEvents(agent)).filter((e) => e.type === 'crashed');
      return crashes.length >= n ? crashes : undefined;
    },
    timeoutMs
  );
}

test('the back-off grows 1 s, 2 s, 4 s, 8 s across automatic restarts and an agent kill; a restart through the API clears it', async () => {
  const { dir, marker } = markedDir();
  const file = writeConfig(dir, crashingConfig(dir, marker));
  const first = await start(file);

  await nthCrash(first, 2, 5000);
  const two = (await statusOf(first)).processes[0];
  assert.equal(two.recentCrashes, 2);
  assert.equal(two.autoRestartSuspended, false);
  // Scheduled 2 s after the exit it follows.
  assert.equal(Date.parse(two.autoRestartAt) - Date.parse(two.lastExit.at), 2000);

  const crashes = await nthCrash(first, 3, 5000);
  const evs = await allEvents(first);
  const startedAfter = (e: Record<string, unknown> | undefined) =>
    evs.find((x) => x.type === 'started' && (x.seq as number) > (e?.seq as number));
  const gap1 = at(startedAfter(crashes[0])) - at(crashes[0]);
  const gap2 = at(startedAfter(crashes[1])) - at(crashes[1]);
  // The restart itself (role, spawn) adds a little; a loaded machine may add more, not a second.
  assert.ok(gap1 >= 990 && gap1 < 1900, `about 1 s between the first crash and the restart, not ${gap1} ms`);
  assert.ok(gap2 >= 1990 && gap2 < 2900, `about 2 s after the second, not ${gap2} ms`);
  const three = (await statusOf(first)).processes[0];
  assert.equal(three.recentCrashes, 3);
  assert.equal(three.state, 'crashed');
  assert.equal(Date.parse(three.autoRestartAt) - Date.parse(three.lastExit.at), 4000);
  const debug = (await request(`${first.baseUrl}/debug`, { token: CONTROL_TOKEN })).json;
  assert.equal(debug.supervisors.cdp.flapGuard.crashTimes.length, 3);
  assert.equal(debug.supervisors.cdp.flapGuard.timerArmed, true);

  // Killed while it waits: the next agent keeps the history and the schedule.
  await first.stop('SIGKILL');
  const record = JSON.parse(fs.readFileSync(path.join(dir, 'state', 'processes', 'cdp.json'), 'utf8'));
  assert.equal(record.crashTimes.length, 3);
  assert.equal(record.autoRestartAt, three.autoRestartAt);
  const second = await start(file);
  const resumed = (await statusOf(second)).processes[0];
  assert.equal(resumed.recentCrashes, 3);
  assert.equal(resumed.autoRestartAt, three.autoRestartAt);
  assert.equal(resumed.generation, three.generation, 'not started at once by the new agent');
  const fourth = await nthCrash(second, 4, 8000);
  const startedAgain = (await allEvents(second)).find(
    (e) => e.type === 'started' && (e.seq as number) > (crashes[2]?.seq as number)
  );
  assert.ok(
    at(startedAgain) >= Date.parse(three.autoRestartAt) - 5,
    'started when the previous agent had scheduled it, not before'
  );
  assert.equal(fourth.length, 4);
  const four = (await statusOf(second)).processes[0];
  assert.equal(four.recentCrashes, 4);
  assert.equal(Date.parse(four.autoRestartAt) - Date.parse(four.lastExit.at), 8000);

  // A restart through the API clears the history: the next crash waits 1 s again.
  const r = await control(`${second.baseUrl}/v1/processes/cdp/restart`, { requestedBy: 'test', reason: 'resume' });
  assert.equal(r.status, 202, r.text);
  const cleared = await waitFor('the crash after the restart through the API', async () => {
    const p = (await statusOf(second)).processes[0];
    return p.generation === r.json.generation && p.state === 'crashed' ? p : undefined;
  });
  assert.equal(cleared.recentCrashes, 1);
  assert.equal(Date.parse(cleared.autoRestartAt) - Date.parse(cleared.lastExit.at), 1000);

  // A stop through the API cancels the scheduled restart.
  const stopped = await control(`${second.baseUrl}/v1/processes/cdp/stop`, { requestedBy: 'test' });
  assert.equal(stopped.status, 202, stopped.text);
  assert.equal((await statusOf(second)).processes[0].autoRestartAt, null);
  await second.stop('SIGTERM');
});

test('the sixth crash within 5 minutes suspends automatic restarts, across an agent kill, until a start through the API', async () => {
  const { dir, marker } = markedDir();
  const file = writeConfig(dir, crashingConfig(dir, marker));
  // Five crashes in the last minute, as a killed agent leaves them in the record.
  const now = Date.now();
  fs.mkdirSync(path.join(dir, 'state', 'processes'), { recursive: true });
  fs.writeFileSync(
    path.join(dir, 'state', 'processes', 'cdp.json'),
    JSON.stringify({
      generation: 5,
      restarts: 4,
      lastExit: { code: 1, signal: null, at: new Date(now - 10_000).toISOString() },
      startedAt: null,
      pid: null,
      pidStartTicks: null,
      command: null,
      crashTimes: [50, 40, 30, 20, 10].map((s) => new Date(now - s * 1000).toISOString()),
      autoRestartAt: null,
    })
  );
  const first = await start(file);
  const suspended = await waitFor('auto_restart_suspended', async () =>
    (await allEvents(first)).find((e) => e.type === 'auto_restart_suspended')
  );
  assert.equal(suspended.recentCrashes, 6);
  assert.equal(suspended.generation, 6, 'the start at boot was the one that crashed the sixth time');
  const p = (await statusOf(first)).processes[0];
  assert.deepEqual([p.state, p.autoRestartSuspended, p.recentCrashes, p.autoRestartAt], ['crashed', true, 6, null]);
  // Nothing starts it again (an automatic restart would come after 1 s at the latest).
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal((await statusOf(first)).processes[0].generation, 6);

  await first.stop('SIGKILL');
  const second = await start(file);
  const kept = (await statusOf(second)).processes[0];
  assert.deepEqual(
    [kept.state, kept.generation, kept.autoRestartSuspended, kept.recentCrashes],
    ['crashed', 6, true, 6]
  );
  assert.ok(
    second
      .logLines()
      .some((l) => l.msg === 'not starting: automatic restarts are suspended; a restart through the API resumes them')
  );

  const r = await control(`${second.baseUrl}/v1/processes/cdp/start`, { requestedBy: 'test', reason: 'fixed it' });
  assert.equal(r.status, 202, r.text);
  const resumed = await waitFor('the crash after the start through the API', async () => {
    const q = (await statusOf(second)).processes[0];
    return q.generation === 7 && q.state === 'crashed' && q.autoRestartAt ? q : undefined;
  });
  assert.equal(resumed.autoRestartSuspended, false);
  assert.equal(resumed.recentCrashes, 1);
  assert.equal(Date.parse(resumed.autoRestartAt) - Date.parse(resumed.lastExit.at), 1000);
  await control(`${second.baseUrl}/v1/processes/cdp/stop`, { requestedBy: 'test' });
  await second.stop('SIGTERM');
});
