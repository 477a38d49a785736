// The automatic restart schedule (autoRestart: true): how long to wait after a crash, and when
// to stop trying. Pure, so that it is tested with a fake clock; the supervisor keeps the crash
// times (persisted with the process record) and arms the timer.

export interface BackoffPolicy {
  /** Crashes older than this no longer count. */
  windowMs: number;
  /** More crashes than this within the window suspend automatic restarts. */
  maxCrashes: number;
  /** The delay after the first crash in the window; it doubles with every further crash. */
  firstDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = {
  windowMs: 5 * 60_000,
  maxCrashes: 5,
  firstDelayMs: 1000,
  maxDelayMs: 30_000,
};

export type AutoRestartDecision =
  { action: 'restart'; delayMs: number; recentCrashes: number } | { action: 'suspend'; recentCrashes: number };

/**
 * The crash times (ms since the epoch) that still count at `now`. A time ahead of `now` (the
 * clock was set back) does not count: it would otherwise hold the guard until the clock caught up.
 */
export function recentCrashes(
  crashTimes: readonly number[],
  now: number,
  policy: BackoffPolicy = DEFAULT_BACKOFF
): number[] {
  return crashTimes.filter((t) => now - t >= 0 && now - t < policy.windowMs);
}

/** What to do after a crash at `now`; `crashTimes` includes that crash. */
export function nextAutoRestart(
  crashTimes: readonly number[],
  now: number,
  policy: BackoffPolicy = DEFAULT_BACKOFF
): AutoRestartDecision {
  const n = recentCrashes(crashTimes, now, policy).length;
  if (n > policy.maxCrashes) {
    return { action: 'suspend', recentCrashes: n };
  }
  const delayMs = Math.min(policy.firstDelayMs * 2 ** Math.max(0, n - 1), policy.maxDelayMs);
  return { action: 'restart', delayMs, recentCrashes: n };
}
