import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { EventLog } from '../src/events';
import { createLogger } from '../src/log';
import { tempDir } from './helpers';

const quiet = createLogger({ write: () => undefined });

test('the event log is bounded, keeps older failures, and survives a reopen', () => {
  const dir = tempDir();
  const log = new EventLog(dir, 10, 3, quiet);
  for (let i = 1; i <= 40; i++) {
    log.add({ type: i % 5 === 0 ? 'crashed' : 'started', process: 'cdp', reason: `event ${i}` });
  }
  const { events, next } = log.since(0, 1000);
  assert.equal(next, 40);
  // The newest ten, plus the three newest failures older than those.
  assert.deepEqual(
    events.map((e) => e.seq),
    [20, 25, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40]
  );
  assert.ok(events.slice(0, 3).every((e) => e.type === 'crashed'));

  const reopened = new EventLog(dir, 10, 3, quiet);
  assert.deepEqual(reopened.since(0, 1000).events, events);
  assert.equal(reopened.add({ type: 'agent_started', reason: 'again' }).seq, 41);
  // The file on disk does not grow without bound either.
  const lines = fs.readFileSync(path.join(dir, 'events.jsonl'), 'utf8').trim().split('\n');
  assert.ok(lines.length <= 2 * 10 + 3, `${lines.length} lines`);
});

test('a line torn by a kill -9 in the middle of an append is skipped', () => {
  const dir = tempDir();
  const log = new EventLog(dir, 100, 10, quiet);
  log.add({ type: 'started', reason: 'one' });
  log.add({ type: 'started', reason: 'two' });
  fs.appendFileSync(path.join(dir, 'events.jsonl'), '{"seq":3,"time":"2026-');
  const reopened = new EventLog(dir, 100, 10, quiet);
  assert.deepEqual(
    reopened.since(0, 10).events.map((e) => e.reason),
    ['one', 'two']
  );
  assert.equal(reopened.add({ type: 'started', reason: 'three' }).seq, 3);
});
