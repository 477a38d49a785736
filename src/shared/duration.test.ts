import { readFileSync } from 'node:fs';
import path from 'node:path';

import { formatGoDuration, formatSeconds, parseDurationSeconds } from './duration';

// The grammar's cases, shared with the backend's (pkg/fleet) and the agent's tests.
const table: { durations: Array<{ text: string; seconds: number; go: string }>; invalid: string[] } = JSON.parse(
  readFileSync(path.resolve(__dirname, '../../pkg/fleet/testdata/durations.json'), 'utf8')
);

describe('parseDurationSeconds', () => {
  it.each(table.durations)('$text is $seconds seconds, $go', ({ text, seconds, go }) => {
    expect(parseDurationSeconds(text)).toBeCloseTo(seconds, 9);
    expect(formatGoDuration(parseDurationSeconds(text)!)).toBe(go);
  });
  it.each(table.invalid)('rejects %p', (text) => {
    expect(parseDurationSeconds(text)).toBeUndefined();
  });
});

describe('formatSeconds', () => {
  it.each([
    [182, '182 s'],
    [750, '12 min 30 s'],
    [45, '45 s'],
    [0.5, '0.5 s'],
    [3900, '1 h 5 min'],
  ])('%d seconds read %s', (seconds, text) => {
    expect(formatSeconds(seconds)).toBe(text);
  });
});
