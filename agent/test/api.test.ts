import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  baseConfig,
  childProcessConfig,
  CONTROL_TOKEN,
  killMarked,
  markerFor,
  READ_TOKEN,
  request,
  startAgent,
  tempDir,
  writeConfig,
  type RunningAgent,
} from './helpers';

const WRONG_TOKEN = 'wrong-token-0123456789abcdef';
let agent: RunningAgent;
let marker: string;

before(async () => {
  const dir = tempDir();
  marker = markerFor(dir);
  const file = writeConfig(dir, baseConfig(dir, { processes: [childProcessConfig(marker)] }));
  agent = await startAgent(file);
});
after(async () => {
  await agent.stop('SIGTERM');
  killMarked(marker);
});

const url = (p: string) => `${agent.baseUrl}${p}`;

function assertError(r: { status: number; json: any }, status: number, code: string, message?: string | RegExp) {
  assert.equal(r.status, status, JSON.stringify(r.json));
  assert.deepEqual(Object.keys(r.json), ['error']);
  assert.equal(r.json.error.code, code);
  assert.equal(typeof r.json.error.message, 'string');
  if (typeof message === 'string') {
    assert.equal(r.json.error.message, message);
  } else if (message) {
    assert.match(r.json.error.message, message);
  }
}

describe('error statuses and bodies', () => {
  test('401 without a token', async () => {
    const r = await request(url('/v1/status'));
    assertError(r, 401, 'unauthorized', 'an Authorization: Bearer token is required');
    assert.equal(r.headers['www-authenticate'], 'Bearer');
  });
  test('401 with a wrong token, or a token of another scheme', async () => {
    assertError(
      await request(url('/v1/status'), { token: WRONG_TOKEN }),
      401,
      'unauthorized',
      'the token is not valid'
    );
    assertError(
      await request(url('/v1/status'), { headers: { authorization: `Basic ${READ_TOKEN}` } }),
      401,
      'unauthorized'
    );
    assertError(await request(url('/metrics'), { token: WRONG_TOKEN }), 401, 'unauthorized');
    assertError(await request(url('/v1/events'), { token: READ_TOKEN.slice(0, -1) }), 401, 'unauthorized');
  });
  test('403 for the read token on a control endpoint', async () => {
    for (const action of ['restart', 'stop', 'start']) {
      assertError(
        await request(url(`/v1/processes/cdp/${action}`), { method: 'POST', token: READ_TOKEN, body: '{}' }),
        403,
        'forbidden',
        'this endpoint needs the control token'
      );
    }
  });
  test('401 for no token on a control endpoint', async () => {
    assertError(await request(url('/v1/processes/cdp/restart'), { method: 'POST', body: '{}' }), 401, 'unauthorized');
  });
  test('the control token may read', async () => {
    assert.equal((await request(url('/v1/status'), { token: CONTROL_TOKEN })).status, 200);
  });
  test('404 for an unknown process or path', async () => {
    assertError(
      await request(url('/v1/processes/nope/restart'), { method: 'POST', token: CONTROL_TOKEN, body: '{}' }),
      404,
      'unknown_process',
      'no process named "nope"'
    );
    assertError(await request(url('/v1/processes/nope'), { token: READ_TOKEN }), 404, 'unknown_process');
    assertError(await request(url('/v2/status'), { token: READ_TOKEN }), 404, 'not_found', 'no such path /v2/status');
    assertError(await request(url('/')), 404, 'not_found');
  });
  test('400 for malformed JSON and wrong field types', async () => {
    const post = (body: string) =>
      request(url('/v1/processes/cdp/restart'), { method: 'POST', token: CONTROL_TOKEN, body });
    assertError(await post('{"ifGeneration":'), 400, 'malformed_json', /^the body is not valid JSON/);
    assertError(await post('[1,2]'), 400, 'invalid_body', 'the body must be a JSON object');
    assertError(await post('{"ifGeneration":"3"}'), 400, 'invalid_body', /^ifGeneration: /);
    assertError(await post('{"ifGeneration":1.5}'), 400, 'invalid_body', /^ifGeneration: /);
    assertError(await post('{"reason":42}'), 400, 'invalid_body', /^reason: /);
    assertError(await post('{"requestedBy":false}'), 400, 'invalid_body', /^requestedBy: /);
    assertError(
      await request(url('/v1/events?since=abc'), { token: READ_TOKEN }),
      400,
      'invalid_parameter',
      'since must be a non-negative integer'
    );
  });
  test('413 for a body over 64 KiB', async () => {
    const big = JSON.stringify({ reason: 'x'.repeat(70 * 1024) });
    assertError(
      await request(url('/v1/processes/cdp/restart'), { method: 'POST', token: CONTROL_TOKEN, body: big }),
      413,
      'body_too_large',
      'the body is larger than 65536 bytes'
    );
    // Also without a declared length (chunked).
    const chunked = await request(url('/v1/processes/cdp/stop'), {
      method: 'POST',
      token: CONTROL_TOKEN,
      body: Buffer.from(big),
      headers: { 'transfer-encoding': 'chunked' },
    });
    assertError(chunked, 413, 'body_too_large');
  });
  test('405 for a wrong method, with Allow', async () => {
    const r = await request(url('/v1/status'), { method: 'POST', token: READ_TOKEN, body: '{}' });
    assertError(r, 405, 'method_not_allowed', 'POST is not allowed here; use GET');
    assert.equal(r.headers.allow, 'GET');
    assertError(
      await request(url('/v1/processes/cdp/restart'), { method: 'GET', token: CONTROL_TOKEN }),
      405,
      'method_not_allowed'
    );
    assertError(await request(url('/healthz'), { method: 'DELETE' }), 405, 'method_not_allowed');
  });
});

describe('read endpoints', () => {
  test('status has the documented shape', async () => {
    const r = await request(url('/v1/status'), { token: READ_TOKEN });
    assert.equal(r.status, 200);
    const s = r.json;
    assert.equal(s.apiVersion, 'v1');
    assert.ok(!Number.isNaN(Date.parse(s.time)));
    for (const k of ['id', 'version', 'hostname', 'startedAt']) {
      assert.equal(typeof s.agent[k], 'string', k);
    }
    assert.equal(s.cluster, null, 'standalone agents answer cluster: null');
    const p = s.processes[0];
    for (const k of [
      'name',
      'kind',
      'state',
      'expected',
      'pid',
      'generation',
      'startedAt',
      'restarts',
      'lastExit',
      'protection',
    ]) {
      assert.ok(k in p, k);
    }
  });
  test('events: since is exclusive, next continues, limit pages', async () => {
    const all = (await request(url('/v1/events?since=0'), { token: READ_TOKEN })).json;
    assert.ok(all.events.length >= 2);
    assert.equal(all.events[0].type, 'agent_started');
    for (const e of all.events) {
      for (const k of ['seq', 'time', 'type', 'reason']) {
        assert.ok(k in e, k);
      }
    }
    const firstSeq = all.events[0].seq;
    const page = (await request(url(`/v1/events?since=${firstSeq}&limit=1`), { token: READ_TOKEN })).json;
    assert.equal(page.events.length, 1);
    assert.equal(page.events[0].seq, all.events[1].seq);
    assert.equal(page.next, all.events[1].seq);
    const none = (await request(url(`/v1/events?since=${all.next}`), { token: READ_TOKEN })).json;
    assert.deepEqual(none, { events: [], next: all.next });
    // A client ahead of the log (a wiped stateDir) is brought back to the newest sequence.
    const ahead = (await request(url('/v1/events?since=999999'), { token: READ_TOKEN })).json;
    assert.deepEqual(ahead, { events: [], next: all.next });
  });
  test('metrics in Prometheus text format', async () => {
    const r = await request(url('/metrics'), { token: READ_TOKEN });
    assert.equal(r.status, 200);
    assert.match(String(r.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    for (const name of ['up', 'restarts_total', 'generation', 'expected']) {
      assert.match(r.text, new RegExp(`^vigil_agent_process_${name}\\{process="cdp",kind="command"\\} \\d+$`, 'm'));
    }
    assert.match(r.text, /^# TYPE vigil_agent_process_up gauge$/m);
    assert.match(r.text, /^vigil_agent_process_up\{process="cdp",kind="command"\} 1$/m);
  });
  test('the OpenAPI document is served without a token and is the one in the package', async () => {
    const r = await request(url('/v1/openapi.json'));
    assert.equal(r.status, 200);
    const doc = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'openapi.json'), 'utf8'));
    assert.deepEqual(r.json, doc);
    assert.match(doc.openapi, /^3\./);
    for (const p of [
      '/v1/status',
      '/v1/events',
      '/v1/processes/{name}/restart',
      '/v1/processes/{name}/stop',
      '/healthz',
      '/metrics',
    ]) {
      assert.ok(p in doc.paths, p);
    }
  });
  test('the debug view shows internals but never a token, and only to the control token', async () => {
    assertError(await request(url('/debug'), { token: READ_TOKEN }), 403, 'forbidden');
    assertError(await request(url('/debug')), 401, 'unauthorized');
    const r = await request(url('/debug'), { token: CONTROL_TOKEN });
    assert.equal(r.status, 200);
    assert.ok(r.json.supervisors.cdp);
    assert.deepEqual(r.json.config.tokens, { read: 1, control: 1 });
    assert.ok(!r.text.includes(READ_TOKEN));
    assert.ok(!r.text.includes(CONTROL_TOKEN));
  });
  test('tokens never appear in the logs', () => {
    const log = agent.stderr();
    assert.ok(!log.includes(READ_TOKEN));
    assert.ok(!log.includes(CONTROL_TOKEN));
    assert.ok(!log.includes(WRONG_TOKEN));
  });
});
