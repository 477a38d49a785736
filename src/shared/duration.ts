import { parseSignedDurationMs } from '../../agent/src/duration';

// Durations as every Vigil setting writes them, in the one grammar of docs/engine.md#durations: a
// number with a unit, several summed ("1m30s", "1d12h"), or a bare number of seconds ("0", "90",
// "1e3"), with an optional sign. The backend reads them with pkg/fleet ParseDuration; the agent and
// this frontend with the agent's one TypeScript reader (agent/src/duration.ts). Both are checked
// against pkg/fleet/testdata/durations.json.

/** Seconds in a duration, or undefined when the text is no duration. */
export function parseDurationSeconds(text: string): number | undefined {
  const ms = parseSignedDurationMs(text);
  return ms === undefined ? undefined : ms / 1000 + 0;
}

/** A duration as the backend writes it in a message (Go's time.Duration): "1m30s", "500ms", "2h0m0s". */
export function formatGoDuration(seconds: number): string {
  const sign = seconds < 0 ? '-' : '';
  const ns = Math.round(Math.abs(seconds) * 1e9);
  const num = (n: number) => String(Number(n.toFixed(9)));
  if (ns === 0) {
    return '0s';
  }
  if (ns < 1e9) {
    const [unit, size] = ns < 1e3 ? ['ns', 1] : ns < 1e6 ? ['µs', 1e3] : ['ms', 1e6];
    return `${sign}${num(ns / (size as number))}${unit}`;
  }
  const h = Math.floor(ns / 3.6e12);
  const m = Math.floor((ns % 3.6e12) / 6e10);
  const s = num((ns % 6e10) / 1e9);
  return sign + (h ? `${h}h${m}m${s}s` : m ? `${m}m${s}s` : `${s}s`);
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
