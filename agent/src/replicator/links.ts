// Files whose writes raise no change notification on their path: hard-linked files (a write
// through another name notifies that one only, or none for a name outside the tree) and files
// mapped for writing (writes through a shared mapping notify nothing).
import type { TreeWatcher } from './watch';
import { deviceOf, writableMappings } from './mappings';
import { within, type VersionTree } from './tree';

/**
 * The hard-link groups of the tree by inode ("dev:ino"). A file with more than one link is
 * written through any of its names: its inode is watched, and a change to it queues every
 * name in the tree.
 */
export class HardLinks {
  private readonly groups = new Map<string, Set<string>>();
  private readonly keyOf = new Map<string, string>();
  /** Inodes without a watch of their own (budget or system limit): checked every --poll-every. */
  private readonly polled = new Set<string>();

  constructor(
    private readonly watcher: TreeWatcher,
    private readonly onChange: (p: string) => void
  ) {}

  has(p: string): boolean {
    return this.keyOf.has(p);
  }

  get polledCount(): number {
    return this.polled.size;
  }

  /** The names of the inodes checked on the poll. */
  *polledPaths(): Iterable<string> {
    for (const key of this.polled) {
      yield* this.groups.get(key) ?? [];
    }
  }

  /** Keeps the groups current with `p`'s lstat. */
  note(p: string, dev: number, ino: number, nlink: number): void {
    const key = nlink > 1 ? `${dev}:${ino}` : undefined;
    const old = this.keyOf.get(p);
    if (old === key) {
      return;
    }
    if (old !== undefined) {
      this.unlink(p);
    }
    if (key === undefined) {
      return;
    }
    let group = this.groups.get(key);
    if (!group) {
      group = new Set();
      this.groups.set(key, group);
      if (!this.watcher.watchInode(key, p, () => this.changed(key))) {
        this.polled.add(key);
      }
    }
    group.add(p);
    this.keyOf.set(p, key);
  }

  /** Forgets `p` and everything under it. */
  forgetUnder(p: string): void {
    if (this.keyOf.size > 0) {
      for (const k of [...this.keyOf.keys()]) {
        if (within(k, p)) {
          this.unlink(k);
        }
      }
    }
  }

  private unlink(p: string): void {
    const key = this.keyOf.get(p);
    if (key === undefined) {
      return;
    }
    this.keyOf.delete(p);
    const group = this.groups.get(key);
    group?.delete(p);
    if (group && group.size === 0) {
      this.groups.delete(key);
      this.polled.delete(key);
      this.watcher.unwatchInode(key);
    }
  }

  private changed(key: string): void {
    for (const p of this.groups.get(key) ?? []) {
      this.onChange(p);
    }
  }
}

/** Files of the tree mapped for writing by some process, as last found. */
export class MappedFiles {
  private readonly paths = new Set<string>();
  /** Devices the tree's files live on (for matching memory mappings). */
  readonly devices = new Set<number>();

  has(p: string): boolean {
    return this.paths.has(p);
  }

  forgetUnder(p: string): void {
    if (this.paths.size > 0) {
      for (const k of [...this.paths]) {
        if (within(k, p)) {
          this.paths.delete(k);
        }
      }
    }
  }

  /**
   * Looks again (also on the source root's device `rootDev`): which files are mapped for
   * writing now, with why (`found`), and which no longer are (`dropped`).
   */
  check(
    tree: VersionTree,
    rootDev: number | undefined,
    pollEveryMs: number
  ): { found: Map<string, string>; dropped: string[] } {
    const devices = new Set([...this.devices].map(deviceOf));
    if (rootDev !== undefined) {
      devices.add(deviceOf(rootDev));
    }
    const maps = writableMappings(devices);
    const found = new Map<string, string>();
    if (maps.size > 0) {
      const byIno = new Map<number, { device: string; comm: string; pids: number[] }>();
      for (const m of maps.values()) {
        byIno.set(m.ino, m);
      }
      for (const [p, e] of tree) {
        if (e.op !== 'file') {
          continue;
        }
        const m = byIno.get(e.ino);
        if (m) {
          found.set(
            p,
            `mapped for writing by pid ${m.pids.slice(0, 3).join(', ')} (${m.comm}): its changes are not notified and are checked every ${Math.round(pollEveryMs / 1000)} s`
          );
        }
      }
    }
    const dropped: string[] = [];
    for (const p of this.paths) {
      if (found.has(p)) {
        continue;
      }
      this.paths.delete(p);
      dropped.push(p);
    }
    for (const p of found.keys()) {
      this.paths.add(p);
    }
    return { found, dropped };
  }
}
