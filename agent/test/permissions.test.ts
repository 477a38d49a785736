// Token files, and the configuration file when it holds tokens, that others can read or write:
// a warning at start, at each reload and in /v1/status; a refusal with --strict-permissions.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { buildConfig, loadTokens, openPermissions } from '../src/config';
import {
  baseConfig,
  READ_TOKEN,
  request,
  runCliToEnd,
  stopAfterTests,
  tempDirsRemovedAfter,
  waitFor,
  writeConfig,
  type RunningAgent,
} from './helpers';

const { start } = stopAfterTests();
const tempDir = tempDirsRemovedAfter();
const CONTROL = 'control-token-from-a-file-0123456789';
const IDLE = [{ name: 'cdp', kind: 'command', command: ['sleep', '1000'], startOnBoot: false }];

function tokenFile(dir: string, mode: number): string {
  const f = path.join(dir, 'control-token');
  fs.writeFileSync(f, `${CONTROL}\n`);
  fs.chmodSync(f, mode);
  return f;
}

test('openPermissions: group or others, read or write', () => {
  const dir = tempDir();
  const f = path.join(dir, 'f');
  fs.writeFileSync(f, 'x');
  const cases: Array<[number, string | undefined]> = [
    [0o600, undefined],
    [0o400, undefined],
    [0o700, undefined],
    [0o640, 'readable by its group (mode 0640)'],
    [0o604, 'readable by others (mode 0604)'],
    [0o644, 'readable by its group and others (mode 0644)'],
    [0o602, 'writable by others (mode 0602)'],
    [0o620, 'writable by its group (mode 0620)'],
    [0o666, 'readable by its group and others and writable by its group and others (mode 0666)'],
  ];
  for (const [mode, want] of cases) {
    fs.chmodSync(f, mode);
    assert.equal(openPermissions(f), want, mode.toString(8));
  }
  assert.equal(openPermissions(path.join(dir, 'absent')), undefined);
});

test('loadTokens: a warning, or with strictPermissions a problem, naming the file, its mode and the fix; inline tokens make the configuration file a secret', () => {
  const dir = tempDir();
  const f = tokenFile(dir, 0o644);
  const conf = path.join(dir, 'agent.yaml');
  fs.writeFileSync(conf, 'x', { mode: 0o640 });
  fs.chmodSync(conf, 0o640);
  const auth = { readToken: READ_TOKEN, controlTokenFile: f };
  const loose = loadTokens(auth, conf, false);
  assert.deepEqual(loose.problems, []);
  assert.deepEqual(loose.permissionWarnings, [
    `auth.controlTokenFile: token file ${f} is readable by its group and others (mode 0644); run chmod 600 ${f}`,
    `auth: the configuration file, which holds tokens, ${conf} is readable by its group (mode 0640); run chmod 600 ${conf}`,
  ]);
  const strict = loadTokens(auth, conf, true);
  assert.deepEqual(strict.permissionWarnings, []);
  assert.deepEqual(
    strict.problems,
    loose.permissionWarnings.map((w) => `${w} (strictPermissions refuses it)`)
  );
  // Tokens only in files: the configuration file holds no secret and may be 0644.
  fs.chmodSync(conf, 0o644);
  fs.chmodSync(f, 0o600);
  const r = path.join(dir, 'read-token');
  fs.writeFileSync(r, READ_TOKEN, { mode: 0o600 });
  assert.deepEqual(loadTokens({ readTokenFile: r, controlTokenFile: f }, conf, true).problems, []);
  // The configuration key works like the flag.
  const doc = {
    listen: '127.0.0.1:0',
    stateDir: dir,
    strictPermissions: true,
    auth,
    processes: [{ name: 'a', kind: 'command', command: ['x'] }],
  };
  fs.chmodSync(f, 0o604);
  assert.throws(
    () => buildConfig(doc, conf),
    /auth\.controlTokenFile: token file .* is readable by others \(mode 0604\); run chmod 600 .* \(strictPermissions refuses it\)$/
  );
  assert.equal(buildConfig({ ...doc, strictPermissions: false }, conf).permissionWarnings.length, 2);
});

async function statusWarnings(agent: RunningAgent): Promise<string[]> {
  const s = await request(`${agent.baseUrl}/v1/status`, { token: READ_TOKEN });
  assert.equal(s.status, 200);
  return s.json.warnings as string[];
}

test('a real agent warns at start and in /v1/status, and checks again at each reload', async () => {
  const dir = tempDir();
  const f = tokenFile(dir, 0o644);
  const file = writeConfig(
    dir,
    baseConfig(dir, { auth: { readToken: READ_TOKEN, controlTokenFile: f }, processes: IDLE })
  );
  fs.chmodSync(file, 0o600);
  const agent = await start(file);
  const warned = agent.logLines().filter((l) => l.msg === 'file permissions');
  const expected = `auth.controlTokenFile: token file ${f} is readable by its group and others (mode 0644); run chmod 600 ${f}`;
  assert.deepEqual(
    warned.map((l) => [l.level, l.warning]),
    [['warn', expected]]
  );
  assert.deepEqual(await statusWarnings(agent), [expected]);

  fs.chmodSync(f, 0o600);
  agent.child.kill('SIGHUP');
  await waitFor('the reload', () => agent.logLines().some((l) => l.msg === 'tokens reloaded'));
  assert.deepEqual(await statusWarnings(agent), []);

  fs.chmodSync(f, 0o660);
  agent.child.kill('SIGHUP');
  await waitFor('the second reload', () => agent.logLines().filter((l) => l.msg === 'tokens reloaded').length === 2);
  assert.deepEqual(await statusWarnings(agent), [
    `auth.controlTokenFile: token file ${f} is readable by its group and writable by its group (mode 0660); run chmod 600 ${f}`,
  ]);
  assert.equal(agent.logLines().filter((l) => l.msg === 'file permissions').length, 2);
  assert.ok(!agent.stderr().includes(CONTROL));
  await agent.stop('SIGTERM');
});

test('--strict-permissions and strictPermissions: true refuse to start (exit 2, invalid configuration)', async () => {
  const dir = tempDir();
  const f = tokenFile(dir, 0o640);
  const file = writeConfig(
    dir,
    baseConfig(dir, { auth: { readToken: READ_TOKEN, controlTokenFile: f }, processes: IDLE })
  );
  fs.chmodSync(file, 0o600);
  // Line 5 of the file: the key auth.controlTokenFile (stringify writes listen, stateDir, auth, readToken first).
  const want = `${file}: auth.controlTokenFile: token file ${f} is readable by its group (line 5; mode 0640); run chmod 600 ${f} (strictPermissions refuses it)`;
  const byFlag = await runCliToEnd(['run', '--config', file, '--strict-permissions']);
  assert.equal(byFlag.code, 2, byFlag.stderr);
  const line = JSON.parse(byFlag.stderr.trim().split('\n').pop() as string);
  assert.deepEqual([line.level, line.msg, line.error], ['error', 'invalid configuration', want]);

  const keyed = writeConfig(
    dir,
    {
      ...baseConfig(dir, { auth: { readToken: READ_TOKEN, controlTokenFile: f }, processes: IDLE }),
      strictPermissions: true,
    },
    'strict.yaml'
  );
  fs.chmodSync(keyed, 0o600);
  const byKey = await runCliToEnd(['run', '--config', keyed]);
  assert.equal(byKey.code, 2, byKey.stderr);
  assert.match(byKey.stderr, /"msg":"invalid configuration".*\(strictPermissions refuses it\)/);
});

test('with strictPermissions a reload that finds an open token file is refused and the current tokens kept', async () => {
  const dir = tempDir();
  const f = tokenFile(dir, 0o600);
  const file = writeConfig(dir, {
    ...baseConfig(dir, { auth: { readToken: READ_TOKEN, controlTokenFile: f }, processes: IDLE }),
    strictPermissions: true,
  });
  fs.chmodSync(file, 0o600);
  const agent = await start(file);
  assert.deepEqual(await statusWarnings(agent), []);
  fs.writeFileSync(f, 'another-control-token-0123456789\n');
  fs.chmodSync(f, 0o644);
  agent.child.kill('SIGHUP');
  const refused = await waitFor('the refusal', () =>
    agent.logLines().find((l) => String(l.msg).startsWith('token reload refused'))
  );
  assert.equal(
    refused.msg,
    `token reload refused: auth.controlTokenFile: token file ${f} is readable by its group and others (mode 0644); run chmod 600 ${f} (strictPermissions refuses it)`
  );
  assert.equal((await request(`${agent.baseUrl}/debug`, { token: CONTROL })).status, 200);
  assert.equal((await request(`${agent.baseUrl}/debug`, { token: 'another-control-token-0123456789' })).status, 401);
  assert.ok(!agent.stderr().includes('another-control-token-0123456789'));
  await agent.stop('SIGTERM');
});
