// The automatic restart schedule on a fake clock: delays, the 5-minute window, suspension.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  DEFAULT_BACKOFF,
  nextAutoRestart,
  recentCrashes,
  type AutoRestartDecision,
  type BackoffPolicy,
} from '../src/kinds/backoff';

const NOW = Date.parse('2026-11-26T04:20:00Z');
const s = (n: number) => n * 1000;
const MIN = 60_000;
/** Crash times `agoMs` before NOW. */
const ago = (...agoMs: number[]) => agoMs.map((a) => NOW - a);

const cases: Array<{ name: string; crashes: number[]; policy?: BackoffPolicy; want: AutoRestartDecision }> = [
  { name: 'the first crash waits 1 s', crashes: ago(0), want: { action: 'restart', delayMs: 1000, recentCrashes: 1 } },
  { name: 'the second 2 s', crashes: ago(s(3), 0), want: { action: 'restart', delayMs: 2000, recentCrashes: 2 } },
  { name: 'the third 4 s', crashes: ago(s(9), s(6), 0), want: { action: 'restart', delayMs: 4000, recentCrashes: 3 } },
  {
    name: 'the fourth 8 s',
    crashes: ago(s(20), s(15), s(8), 0),
    want: { action: 'restart', delayMs: 8000, recentCrashes: 4 },
  },
  {
    name: 'the fifth 16 s',
    crashes: ago(s(40), s(30), s(20), s(10), 0),
    want: { action: 'restart', delayMs: 16_000, recentCrashes: 5 },
  },
  {
    name: 'the sixth within 5 minutes suspends',
    crashes: ago(4 * MIN, s(40), s(30), s(20), s(10), 0),
    want: { action: 'suspend', recentCrashes: 6 },
  },
  {
    name: 'a crash 5 minutes old no longer counts',
    crashes: ago(5 * MIN, s(40), s(30), s(20), s(10), 0),
    want: { action: 'restart', delayMs: 16_000, recentCrashes: 5 },
  },
  {
    name: 'a crash just under 5 minutes old still counts',
    crashes: ago(5 * MIN - 1, s(40), s(30), s(20), s(10), 0),
    want: { action: 'suspend', recentCrashes: 6 },
  },
  {
    name: 'after a quiet period the delay starts again at 1 s',
    crashes: ago(20 * MIN, 12 * MIN, 6 * MIN, 0),
    want: { action: 'restart', delayMs: 1000, recentCrashes: 1 },
  },
  {
    name: 'a crash time ahead of the clock (set back) does not count',
    crashes: [NOW + 10 * MIN, NOW],
    want: { action: 'restart', delayMs: 1000, recentCrashes: 1 },
  },
  { name: 'no history at all waits 1 s', crashes: [], want: { action: 'restart', delayMs: 1000, recentCrashes: 0 } },
  {
    name: 'the delay is capped at 30 s',
    crashes: ago(s(60), s(50), s(40), s(30), s(20), 0),
    policy: { ...DEFAULT_BACKOFF, maxCrashes: 10 },
    want: { action: 'restart', delayMs: 30_000, recentCrashes: 6 },
  },
];

for (const c of cases) {
  test(`nextAutoRestart: ${c.name}`, () => {
    assert.deepEqual(nextAutoRestart(c.crashes, NOW, c.policy), c.want);
  });
}

test('recentCrashes keeps the crashes inside the window, in order', () => {
  assert.deepEqual(recentCrashes(ago(10 * MIN, 5 * MIN, 5 * MIN - 1, 0), NOW), ago(5 * MIN - 1, 0));
  assert.deepEqual(recentCrashes([], NOW), []);
});

test('the default schedule: 1, 2, 4, 8, 16 s, then suspended', () => {
  const crashes: number[] = [];
  const seen: Array<number | 'suspend'> = [];
  let now = NOW;
  for (let i = 0; i < 7; i++) {
    crashes.push(now);
    const d = nextAutoRestart(crashes, now);
    seen.push(d.action === 'suspend' ? 'suspend' : d.delayMs);
    now += d.action === 'restart' ? d.delayMs + 50 : 1000; // it crashes 50 ms after each restart
  }
  assert.deepEqual(seen, [1000, 2000, 4000, 8000, 16_000, 'suspend', 'suspend']);
});
