// A bound on repeated log lines (requests refused before or at authentication): at most `limit`
// lines per window of `windowMs`; what goes beyond is counted and told in one line when the
// window ends, or before the next line allowed, whichever comes first.

export interface Clock {
  now(): number;
  /** Runs fn after ms; the timer must not keep the process alive. */
  setTimeout(fn: () => void, ms: number): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    setTimeout(fn, ms).unref();
  },
};

/** The default bound: 10 refused requests logged per minute. */
export const REFUSED_LOG_LIMIT = { limit: 10, windowMs: 60_000 };

export class RepeatLimiter {
  private windowStart = Number.NEGATIVE_INFINITY;
  private count = 0;
  private suppressed = 0;
  private timerArmed = false;

  constructor(
    private readonly opts: { limit: number; windowMs: number; clock?: Clock; onSuppressed: (count: number) => void }
  ) {}

  private get clock(): Clock {
    return this.opts.clock ?? systemClock;
  }

  /** Whether a line may be written now; a suppressed one is counted. */
  admit(): boolean {
    const now = this.clock.now();
    if (now - this.windowStart >= this.opts.windowMs) {
      this.report();
      this.windowStart = now;
      this.count = 0;
    }
    if (this.count < this.opts.limit) {
      this.count++;
      return true;
    }
    this.suppressed++;
    if (!this.timerArmed) {
      this.timerArmed = true;
      const windowStart = this.windowStart;
      this.clock.setTimeout(
        () => {
          this.timerArmed = false;
          // A new window may have begun (and reported) meanwhile: only this window's count.
          if (this.windowStart === windowStart) {
            this.report();
          }
        },
        Math.max(0, this.windowStart + this.opts.windowMs - now)
      );
    }
    return false;
  }

  private report(): void {
    if (this.suppressed === 0) {
      return;
    }
    const n = this.suppressed;
    this.suppressed = 0;
    this.opts.onSuppressed(n);
  }
}
