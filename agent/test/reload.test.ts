// SIGHUP token reload on a real agent: the start's checks apply, invalid new tokens are refused
// and the current ones kept, the outcome is logged, and no token, old or new, reaches the log.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import {
  baseConfig,
  childProcessConfig,
  request,
  stopAfterTests,
  waitFor,
  writeConfig,
  type RunningAgent,
} from './helpers';

const { markedDir, start } = stopAfterTests();

const FIRST_READ = 'first-read-token-0123456789';
const FIRST_CONTROL = 'first-control-token-0123456789';
const SECOND_READ = 'second-read-token-0123456789';
const THIRD_READ = 'third-read-token-0123456789';
const ALL = [FIRST_READ, FIRST_CONTROL, SECOND_READ, THIRD_READ];

/** Sends SIGHUP and waits for the n-th reload outcome in the log. */
async function reload(agent: RunningAgent): Promise<Record<string, unknown>> {
  const outcomes = () =>
    agent.logLines().filter((l) => l.msg === 'tokens reloaded' || String(l.msg).startsWith('token reload refused'));
  const before = outcomes().length;
  agent.child.kill('SIGHUP');
  return waitFor('the reload outcome in the log', () => outcomes()[before]);
}

/** An agent whose tokens come from two files (FIRST_READ, FIRST_CONTROL), mode 0600. */
async function startWithTokenFiles(): Promise<{ agent: RunningAgent; readFile: string; controlFile: string }> {
  const { dir, marker } = markedDir();
  const readFile = path.join(dir, 'read-token');
  const controlFile = path.join(dir, 'control-token');
  fs.writeFileSync(readFile, `${FIRST_READ}\n`, { mode: 0o600 });
  fs.writeFileSync(controlFile, `${FIRST_CONTROL}\n`, { mode: 0o600 });
  const file = writeConfig(
    dir,
    baseConfig(dir, {
      auth: { readTokenFile: readFile, controlTokenFile: controlFile },
      processes: [childProcessConfig(marker, { startOnBoot: false })],
    })
  );
  return { agent: await start(file), readFile, controlFile };
}

test('a reload applies the start checks, keeps the current tokens when the new ones fail them, and never logs a token', async () => {
  const { agent, readFile, controlFile } = await startWithTokenFiles();
  const status = (token: string) => request(`${agent.baseUrl}/v1/status`, { token });
  const restart = (token: string) =>
    request(`${agent.baseUrl}/v1/processes/cdp/restart`, { method: 'POST', token, body: '{}' });
  // A path is logged: a token in it must come out redacted, whether it was taken or refused.
  const probe = (token: string) => request(`${agent.baseUrl}/probe/${token}`);
  await probe(FIRST_READ);

  // A valid rotation of the read token.
  fs.writeFileSync(readFile, `${SECOND_READ}\n`);
  const ok = await reload(agent);
  assert.equal(ok.msg, 'tokens reloaded');
  assert.equal(ok.level, 'info');
  assert.deepEqual(ok.files, [readFile, controlFile]);
  assert.equal((await status(SECOND_READ)).status, 200);
  assert.equal((await status(FIRST_READ)).status, 401);
  await probe(SECOND_READ);

  // The control token made equal to the read token: refused, the current tokens stay.
  fs.writeFileSync(controlFile, `${SECOND_READ}\n`);
  const same = await reload(agent);
  assert.equal(same.level, 'error');
  assert.equal(
    same.msg,
    `token reload refused: auth.controlToken: must differ from every read token (token files ${readFile}, ${controlFile})`
  );
  assert.equal((await restart(SECOND_READ)).status, 403);
  assert.equal((await request(`${agent.baseUrl}/debug`, { token: FIRST_CONTROL })).status, 200);

  // An empty file and one that cannot be read: refused, naming the file.
  fs.writeFileSync(controlFile, FIRST_CONTROL);
  fs.writeFileSync(readFile, '  \n');
  assert.equal((await reload(agent)).msg, `token reload refused: auth.readTokenFile: file ${readFile} is empty`);
  fs.rmSync(readFile);
  assert.equal((await reload(agent)).msg, `token reload refused: auth.readTokenFile: cannot read ${readFile}: ENOENT`);
  assert.equal((await status(SECOND_READ)).status, 200);

  // A refused reload whose new read token was never taken: still never logged.
  fs.writeFileSync(readFile, THIRD_READ, { mode: 0o600 });
  fs.writeFileSync(controlFile, THIRD_READ);
  assert.match(String((await reload(agent)).msg), /^token reload refused: auth\.controlToken: must differ/);
  await probe(THIRD_READ);
  assert.equal((await status(THIRD_READ)).status, 401);
  assert.equal((await restart(FIRST_CONTROL)).status, 202);

  await waitFor(
    'the probes in the log',
    () => agent.logLines().filter((l) => l.msg === 'request' && String(l.path).startsWith('/probe/')).length === 3
  );
  const log = agent.stderr();
  for (const t of ALL) {
    assert.ok(!log.includes(t), `the log shows ${t}`);
  }
  assert.equal(agent.logLines().filter((l) => l.path === '/probe/[REDACTED]').length, 3);
  await agent.stop('SIGTERM');
});

test('a token file may list the old and the new token while a rotation overlaps: no poll is refused', async () => {
  const { agent, readFile, controlFile } = await startWithTokenFiles();
  const status = async (token: string) => (await request(`${agent.baseUrl}/v1/status`, { token })).status;

  // 1. The new token is added beside the old one: both open the agent.
  fs.writeFileSync(readFile, `# old until the monitors move\n${FIRST_READ}\n\n${SECOND_READ}\n`);
  assert.equal((await reload(agent)).msg, 'tokens reloaded');
  assert.deepEqual([await status(FIRST_READ), await status(SECOND_READ)], [200, 200]);
  // 2. The monitors use the new token; the old one is dropped.
  fs.writeFileSync(readFile, `${SECOND_READ}\n`);
  assert.equal((await reload(agent)).msg, 'tokens reloaded');
  assert.deepEqual([await status(FIRST_READ), await status(SECOND_READ)], [401, 200]);
  // A line with two words is a mistake (a token cannot contain white space): refused, kept.
  fs.writeFileSync(readFile, `${THIRD_READ} ${FIRST_READ}\n`);
  assert.equal(
    (await reload(agent)).msg,
    `token reload refused: auth.readTokenFile: file ${readFile} line 1: a token cannot contain white space (one token per line)`
  );
  assert.equal(await status(SECOND_READ), 200);
  // The control file lists a read token among its lines: refused like a single one.
  fs.writeFileSync(readFile, `${SECOND_READ}\n`);
  fs.writeFileSync(controlFile, `${FIRST_CONTROL}\n${SECOND_READ}\n`);
  assert.match(
    String((await reload(agent)).msg),
    /^token reload refused: auth\.controlToken: must differ from every read token/
  );
  for (const t of ALL) {
    assert.ok(!agent.stderr().includes(t), `the log shows ${t}`);
  }
  await agent.stop('SIGTERM');
});
