// What the replicator does not capture right now, and why: paths it cannot read, files that
// never hold still, files written through a shared mapping. The status lists them with since
// when they are at risk; nothing the journal has of them is dropped meanwhile.
import type { Logger } from '../log';
import { displayPath } from './fspath';
import { within } from './tree';

/** A path whose changes are not being captured right now, and why. */
export interface NotCovered {
  /** unreadable: permissions or I/O; changing: never held still; mapped: written through a shared mapping. */
  kind: 'unreadable' | 'changing' | 'mapped';
  reason: string;
  since: number;
}

export class Coverage {
  readonly paths = new Map<string, NotCovered>();
  /** Directories that could not be read, looked at again every --poll-every. */
  readonly unreadableDirs = new Set<string>();

  constructor(
    private readonly log: Logger,
    /** Told when a path is added (the status is due). */
    private readonly changed: () => void,
    /** Whether `p` is mapped for writing right now (mappings.ts). */
    private readonly isMapped: (p: string) => boolean
  ) {}

  /** Reports `p` as not covered (kept with its first `since` until it is covered again). */
  notCovered(p: string, kind: NotCovered['kind'], reason: string, since = Date.now()): void {
    const cur = this.paths.get(p);
    if (cur?.reason === reason) {
      return;
    }
    if (!cur) {
      this.log.warn('not covered', { path: displayPath(p), reason });
    }
    this.paths.set(p, { kind, reason, since: cur?.since ?? since });
    this.changed();
  }

  /** `p` (and with `subtree`, everything under it) is captured again, or gone. */
  covered(p: string, subtree = false): void {
    if (this.paths.size === 0) {
      return;
    }
    const u = this.paths.get(p);
    // Still mapped for writing: captured now, at risk again from now on.
    if (u?.kind === 'mapped' && this.isMapped(p) && !subtree) {
      u.since = Date.now();
    } else if (this.paths.delete(p)) {
      this.log.info('covered again', { path: displayPath(p) });
    }
    if (subtree) {
      for (const k of [...this.paths.keys()]) {
        if (within(k, p)) {
          this.paths.delete(k);
        }
      }
    }
  }

  /** A file mapped for writing: not covered, at risk since `since` (set again at every check, so not logged). */
  mapped(p: string, reason: string, since: number): void {
    this.paths.set(p, { kind: 'mapped', reason, since });
  }

  /** A directory that cannot be listed: reported, and looked at again on the poll. */
  unreadableDir(dir: string, code: string): void {
    this.notCovered(
      dir,
      'unreadable',
      `cannot be read (${code}): changes in it are not seen; the last recorded versions are kept`
    );
    this.unreadableDirs.add(dir);
  }

  /** `p` and everything under it is gone: no directory there to look at again. */
  gone(p: string): void {
    for (const k of [...this.unreadableDirs]) {
      if (within(k, p)) {
        this.unreadableDirs.delete(k);
      }
    }
  }

  /** The earliest `since` of them all. */
  oldest(): number | null {
    let oldest: number | null = null;
    for (const u of this.paths.values()) {
      if (oldest === null || u.since < oldest) {
        oldest = u.since;
      }
    }
    return oldest;
  }
}
