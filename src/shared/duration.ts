// Durations as the fleet keys spell them (the CLI's fleet.yaml and the datasource's jsonData): a Go
// duration ("10s", "1m30s", "250ms"), 0, or a bare number of seconds. The backend accepts the same.
const UNIT_SECONDS: Record<string, number> = { ns: 1e-9, us: 1e-6, µs: 1e-6, ms: 0.001, s: 1, m: 60, h: 3600 };
const GO_DURATION = /^[-+]?((\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))+$/;
const BARE_SECONDS = /^[-+]?(\d+(\.\d*)?|\.\d+)$/;

/** Seconds in a fleet duration, or undefined when the text is no duration. */
export function parseDurationSeconds(text: string): number | undefined {
  const value = text.trim();
  if (BARE_SECONDS.test(value)) {
    return Number(value);
  }
  if (!GO_DURATION.test(value)) {
    return undefined;
  }
  const sign = value.startsWith('-') ? -1 : 1;
  let total = 0;
  for (const [, n, , , unit] of value.matchAll(/((\d+(\.\d*)?|\.\d+))(ns|us|µs|ms|s|m|h)/g)) {
    total += Number(n) * UNIT_SECONDS[unit];
  }
  return sign * total;
}

/** A number of seconds as a person reads it: "182 s" up to ten minutes, then "12 min 30 s", "1 h 5 min". */
export function formatSeconds(seconds: number): string {
  if (!Number.isFinite(seconds)) {
    return '–';
  }
  if (seconds < 600) {
    return `${Math.round(seconds * 1000) / 1000} s`;
  }
  return formatClock(seconds);
}

/** Seconds as hours, minutes and seconds: "3 min 2 s", "1 h 5 min". */
export function formatClock(seconds: number): string {
  const whole = Math.round(seconds);
  const h = Math.floor(whole / 3600);
  const m = Math.floor((whole % 3600) / 60);
  const s = whole % 60;
  return [h ? `${h} h` : '', m ? `${m} min` : '', s ? `${s} s` : ''].filter(Boolean).join(' ');
}
