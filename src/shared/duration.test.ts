import { formatSeconds, parseDurationSeconds } from './duration';

describe('parseDurationSeconds', () => {
  it.each([
    ['10s', 10],
    ['1m30s', 90],
    ['250ms', 0.25],
    ['2h', 7200],
    ['1.5m', 90],
    ['0', 0],
    ['120', 120],
    ['-5s', -5],
  ])('%s is %d seconds', (text, seconds) => {
    expect(parseDurationSeconds(text)).toBe(seconds);
  });
  it.each(['', 'often', '10 s', '5d', 's'])('rejects %p', (text) => {
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
