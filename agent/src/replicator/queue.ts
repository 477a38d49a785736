// The replicator's queue of changed paths. A path seen to change (by a change notification, a
// scan, a poll) waits in `pending` for a batch; a batch moves its paths in flight until its
// records are acknowledged; a file that could not be read consistently waits in `retrying` for
// its next try. A path in flight may be pending again at once (a change seen while its batch is
// written): batches run one at a time, so the next one reads it afresh.

export interface Pending {
  seenAt: number;
  size: number;
  /** Seen by an event: the content is read even when size and times look unchanged. */
  event: boolean;
  attempts: number;
  /** A change notification arrived while it was being read: that read is not used. */
  dirty?: boolean;
  /** Its parent directory's watch reported it (a directory replaced, moved, changed). */
  dirEvent?: boolean;
}

export type Batch = Array<[string, Pending]>;

/** Small batches keep the first change of a burst from waiting for the last one. */
const BATCH_PATHS = 128;
const BATCH_BYTES = 64 * 1024 * 1024;
/**
 * Whatever their size, this many files share a batch, so large files are copied and hashed
 * side by side (the hashing threads and the kernel's copies overlap) instead of one batch,
 * with its fsyncs, after another.
 */
const BATCH_MIN_PATHS = 4;

export class ChangeQueue {
  private readonly pending = new Map<string, Pending>();
  private readonly inFlight = new Map<string, Pending>();
  /** Files that changed while being read, waiting to be read again. */
  private readonly retrying = new Map<string, Pending>();

  constructor(
    /** Told when a retried path is pending again (a batch is due). */
    private readonly kick: () => void,
    private readonly closing: () => boolean
  ) {}

  /** Paths waiting for a batch. */
  get waiting(): number {
    return this.pending.size;
  }

  /**
   * A change notification for `p` (`size` as it is now): pending, with when it was first seen
   * and its tries so far kept. A read of it in flight is not used. `dirEvent`: its parent's
   * watch reported it, or it is a directory (kept once said).
   */
  event(p: string, size: number, dirEvent: boolean, now = Date.now()): void {
    const flying = this.inFlight.get(p);
    if (flying) {
      flying.dirty = true;
    }
    const prev = this.pending.get(p) ?? this.retrying.get(p);
    const dir = prev?.dirEvent || dirEvent;
    this.pending.set(p, {
      seenAt: prev?.seenAt ?? now,
      size,
      event: true,
      attempts: prev?.attempts ?? 0,
      ...(dir ? { dirEvent: dir } : {}),
    });
  }

  /** Whether `p` is pending or in flight. */
  has(p: string): boolean {
    return this.pending.has(p) || this.inFlight.has(p);
  }

  /** Queues `p` unless it is pending or in flight already (a scan's or a check's difference). */
  add(p: string, now: number, size: number, event: boolean): void {
    if (!this.has(p)) {
      this.pending.set(p, { seenAt: now, size, event, attempts: 0 });
    }
  }

  /** Queues `p` to be looked at again (an unreadable path, on the poll) unless it is pending. */
  again(p: string, now: number): void {
    if (!this.pending.has(p)) {
      this.pending.set(p, { seenAt: now, size: 0, event: true, attempts: 0 });
    }
  }

  /** The next batch, moved in flight: at most 128 paths or 64 MiB (but 4 paths), parents first. */
  take(): Batch {
    const batch: Batch = [];
    let bytes = 0;
    for (const [p, info] of this.pending) {
      batch.push([p, info]);
      bytes += info.size;
      if (batch.length >= BATCH_PATHS || (bytes >= BATCH_BYTES && batch.length >= BATCH_MIN_PATHS)) {
        break;
      }
    }
    for (const [p, info] of batch) {
      this.pending.delete(p);
      this.inFlight.set(p, info);
    }
    // Parents first, so a directory's record precedes its contents'.
    return batch.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  }

  /** The batch holding `p` was acknowledged. */
  done(p: string): void {
    this.inFlight.delete(p);
  }

  /**
   * Tries `p` again after `delayMs`. Only the latest try of a path counts: an earlier timer
   * has nothing left to do when it fires.
   */
  retry(p: string, info: Pending, delayMs: number): void {
    this.retrying.set(p, info);
    setTimeout(() => {
      if (this.retrying.get(p) !== info) {
        return;
      }
      this.retrying.delete(p);
      if (this.closing()) {
        return;
      }
      // Queued even while this batch (which may still hold the path) finishes: batches run one at a time.
      if (!this.pending.has(p)) {
        this.pending.set(p, info);
      }
      this.kick();
    }, delayMs);
  }

  /** Every path not acknowledged yet, as often as it is held (pending, in flight, retrying). */
  queued(): Pending[] {
    return [this.pending, this.inFlight, this.retrying].flatMap((m) => [...m.values()]);
  }
}
