// The summary of a scheduled verify, as the status answer carries it: within the contract's
// bounds even when the wall clock stepped back while the verify ran.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { summary, type VerifyResult } from '../src/replicator/verify';

const result = (ms: number): VerifyResult =>
  ({ startedAt: '2026-11-26T04:00:00.000Z', ms, ok: true, problems: [], warnings: [] }) as unknown as VerifyResult;

test('a verify during which the wall clock stepped back reports a duration of 0, never a negative one', () => {
  const s = summary(result(-1500));
  assert.equal(s.durationSeconds, 0);
  assert.equal(s.problems, 0);
  assert.equal(s.at, '2026-11-26T04:00:00.000Z');
});

test('an ordinary verify reports its duration in seconds', () => {
  const s = summary(result(2500));
  assert.equal(s.durationSeconds, 2.5);
  assert.equal(s.at, '2026-11-26T04:00:02.500Z');
});
