// Durations as written in the configuration and on command lines; no dependencies, so the
// replicator can use it without loading the configuration's. The one grammar of every Vigil
// setting (docs/engine.md#durations), read alike by the monitor (pkg/fleet ParseDuration) and the
// frontend, all checked against pkg/fleet/testdata/durations.json: a number with a unit, several
// summed ("1m30s", "1d12h"), or a bare number of seconds ("0", "90"). The agent takes no negative one.
const DECIMAL = String.raw`(?:\d+(?:\.\d*)?|\.\d+)`;
const UNIT = '(ns|us|µs|μs|ms|s|m|h|d)';
const BARE_SECONDS = new RegExp(String.raw`^[-+]?${DECIMAL}(?:[eE][-+]?\d{1,3})?$`);
const WITH_UNITS = new RegExp(`^[-+]?(?:${DECIMAL}${UNIT})+$`);
const PART = new RegExp(`(${DECIMAL})${UNIT}`, 'g');
const UNIT_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  μs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};
/** The longest duration the monitor holds (Go's time.Duration, about 292 years). */
const MAX_MS = 9_223_372_036_854.775;

/**
 * Milliseconds in a duration text, signed and not rounded; undefined when the text is no duration
 * or longer than the monitor holds. The frontend reads durations with this too (src/shared/duration.ts).
 */
export function parseSignedDurationMs(text: string): number | undefined {
  const t = text.trim();
  let ms: number;
  if (BARE_SECONDS.test(t)) {
    ms = Number(t) * 1000;
  } else if (WITH_UNITS.test(t)) {
    ms = 0;
    for (const [, n, unit] of t.matchAll(PART)) {
      ms += Number(n) * (UNIT_MS[unit as string] as number);
    }
    if (t.startsWith('-')) {
      ms = -ms;
    }
  } else {
    return undefined;
  }
  return Math.abs(ms) <= MAX_MS ? ms + 0 : undefined;
}

/** Parses "10s", "1m30s", "500ms", "7d", "0" or a number of seconds into whole milliseconds; never negative. */
export function parseDuration(v: string | number): number | undefined {
  const ms = typeof v === 'number' ? v * 1000 : parseSignedDurationMs(v);
  return ms !== undefined && Number.isFinite(ms) && ms >= 0 && ms <= MAX_MS ? Math.round(ms) + 0 : undefined;
}
