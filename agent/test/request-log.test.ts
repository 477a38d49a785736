// What requests add to the agent's log: polls at debug, actions and errors at info, a bounded
// path and nothing else of the request, and refused requests rate-limited.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { RepeatLimiter, type Clock } from '../src/loglimit';
import { PATH_SHOWN_CHARS, shownPath } from '../src/server';
import { CONTROL_TOKEN, READ_TOKEN, request } from './helpers';
import { startInProcess, type InProcessAgent } from './inprocess';

/** A clock that only moves when told, and runs the timers that fall due. */
function fakeClock(): Clock & { advance: (ms: number) => void } {
  let now = 1_000_000;
  const timers: Array<{ at: number; fn: () => void }> = [];
  return {
    now: () => now,
    setTimeout: (fn, ms) => void timers.push({ at: now + ms, fn }),
    advance: (ms) => {
      now += ms;
      for (const t of timers.splice(0).sort((a, b) => a.at - b.at)) {
        if (t.at <= now) {
          t.fn();
        } else {
          timers.push(t);
        }
      }
    },
  };
}

test('shownPath: short paths as they are, long ones cut with their size, unsafe characters escaped', () => {
  assert.equal(shownPath('/v1/status'), '/v1/status');
  const long = `/${'a'.repeat(8191)}`;
  assert.equal(shownPath(long), `${long.slice(0, PATH_SHOWN_CHARS)}…(8192 bytes)`);
  assert.equal(shownPath('/\u001b[2J\n\u202e\u0085x'), '/\\u001b[2J\\u000a\\u202e\\u0085x');
  assert.equal(shownPath(`/${'é'.repeat(300)}`), `/${'é'.repeat(PATH_SHOWN_CHARS - 1)}…(601 bytes)`);
});

test('RepeatLimiter: at most limit lines a window, then one line with the count when the window ends', () => {
  const clock = fakeClock();
  const told: number[] = [];
  const l = new RepeatLimiter({ limit: 3, windowMs: 60_000, clock, onSuppressed: (n) => told.push(n) });
  const admitted = Array.from({ length: 8 }, () => l.admit());
  assert.deepEqual(admitted, [true, true, true, false, false, false, false, false]);
  clock.advance(59_999);
  assert.deepEqual(told, []);
  assert.equal(l.admit(), false);
  clock.advance(1);
  assert.deepEqual(told, [6]);
  assert.equal(l.admit(), true);
  for (let i = 0; i < 4; i++) {
    l.admit();
  }
  clock.advance(60_000);
  assert.deepEqual(told, [6, 2]);
  // A window whose count is told by the next allowed line, before its timer ran.
  const later = fakeClock();
  const told2: number[] = [];
  const l2 = new RepeatLimiter({
    limit: 1,
    windowMs: 1000,
    clock: { now: later.now, setTimeout: () => undefined },
    onSuppressed: (n) => told2.push(n),
  });
  assert.deepEqual([l2.admit(), l2.admit(), l2.admit()], [true, false, false]);
  later.advance(1000);
  assert.equal(l2.admit(), true);
  assert.deepEqual(told2, [2]);
});

let inproc: InProcessAgent | undefined;
after(async () => inproc?.close());

test('one request adds one bounded line: polls at debug, refusals rate-limited, never a query, a header or a token', async () => {
  const clock = fakeClock();
  inproc = await startInProcess({
    level: 'debug',
    handler: { refusedLogLimit: { limit: 10, windowMs: 60_000, clock } },
  });
  const a = inproc;
  const requestLines = () => a.lines().filter((l) => l.msg === 'request');

  // A poll: debug, so not seen at the default level.
  assert.equal((await request(`${a.baseUrl}/v1/status?since=1`, { token: READ_TOKEN })).status, 200);
  assert.deepEqual(
    requestLines().map((l) => [l.level, l.method, l.path, l.status]),
    [['debug', 'GET', '/v1/status', 200]]
  );
  // An action: info.
  assert.equal(
    (await request(`${a.baseUrl}/v1/processes/cdp/stop`, { method: 'POST', token: CONTROL_TOKEN, body: '{}' })).status,
    202
  );
  assert.deepEqual(requestLines()[1] && [requestLines()[1]?.level, requestLines()[1]?.method], ['info', 'POST']);

  // 25 refused requests with 8 KB paths, queries and headers (16 KB in all: Node.js answers 431 beyond): 10 lines, each small.
  const long = 'x'.repeat(8192);
  for (let i = 0; i < 25; i++) {
    const some = long.slice(0, 2000);
    const r = await request(`${a.baseUrl}/${long}${i}?q=${some}`, {
      headers: { 'x-evil': some, authorization: `Bearer ${some}` },
    });
    assert.equal(r.status, 404);
    assert.ok(r.text.length < 400, `the answer is bounded too: ${r.text.length}`);
  }
  const refused = requestLines().filter((l) => l.status === 404);
  assert.equal(refused.length, 10);
  for (const l of refused) {
    assert.equal(l.level, 'info');
    assert.match(String(l.path), /^\/x{199}…\(819[34] bytes\)$/);
  }
  assert.ok(
    !a.text().includes('q=') && !a.text().includes('x-evil') && !a.text().includes('x'.repeat(PATH_SHOWN_CHARS + 1))
  );
  assert.ok(
    a.lines().every((l) => JSON.stringify(l).length < 1000),
    'every line under 1000 bytes'
  );
  // Other answers are not held back by the limit.
  assert.equal(
    (
      await request(`${a.baseUrl}/v1/processes/cdp/stop`, {
        method: 'POST',
        token: CONTROL_TOKEN,
        body: '{"ifGeneration":99}',
      })
    ).status,
    409
  );
  assert.equal(requestLines().at(-1)?.status, 409);

  // The window ends: one line tells how many were left out.
  assert.equal(a.lines().filter((l) => String(l.msg).startsWith('suppressed')).length, 0);
  clock.advance(60_000);
  const summary = a.lines().filter((l) => String(l.msg).startsWith('suppressed'));
  assert.deepEqual(
    summary.map((l) => [l.level, l.msg, l.suppressed, l.windowSeconds]),
    [['info', 'suppressed 15 similar requests', 15, 60]]
  );
  assert.equal((await request(`${a.baseUrl}/v1/status`)).status, 401);
  assert.equal(requestLines().at(-1)?.status, 401);
  for (const t of [READ_TOKEN, CONTROL_TOKEN]) {
    assert.ok(!a.text().includes(t));
  }
});
