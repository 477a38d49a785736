// Watching the source: one inotify watch per directory (fs.watch on the directory itself,
// so every watch is visible and counted here), and one per hard-linked file (on its inode, so
// a write through a link elsewhere is seen). When the system limit is hit (ENOSPC from
// inotify_add_watch) or the configured budget is spent, a directory's whole subtree is handed
// to periodic scanning instead, and the status says which subtrees that is. A directory that
// cannot be watched because it cannot be read is reported, never fatal.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { decodeName, fsPath, viaShort } from './fspath';
import { within } from './tree';

export interface WatchLimit {
  dir: string;
  reason: string;
  at: string;
}

export type AddResult = 'watched' | 'limited' | 'unreadable' | 'gone';

export class TreeWatcher {
  private readonly watchers = new Map<string, fs.FSWatcher>();
  /** The inode each watch is on: a directory replaced by another of the same name needs a new watch. */
  private readonly inodes = new Map<string, number>();
  /** Watches on hard-linked files' inodes, by inode key. */
  private readonly inodeWatchers = new Map<string, fs.FSWatcher>();
  /** Subtrees left to periodic scanning, with why. */
  readonly polled = new Map<string, WatchLimit>();

  constructor(
    private readonly root: string,
    private readonly onEvent: (rel: string) => void,
    private readonly onDirGone: (rel: string) => void,
    private readonly maxWatches: number,
    private readonly onUnreadable: (rel: string, code: string) => void = () => undefined
  ) {}

  get count(): number {
    return this.watchers.size;
  }

  get inodeCount(): number {
    return this.inodeWatchers.size;
  }

  private get budgetLeft(): boolean {
    return this.watchers.size + this.inodeWatchers.size < this.maxWatches;
  }

  isWatched(rel: string): boolean {
    return this.watchers.has(rel);
  }

  inodeOf(rel: string): number | undefined {
    return this.inodes.get(rel);
  }

  /** The polled subtree `rel` lies in, if any. */
  polledRoot(rel: string): string | undefined {
    for (const d of this.polled.keys()) {
      if (within(rel, d)) {
        return d;
      }
    }
    return undefined;
  }

  /** Watches directory `rel` (relative to the root, '' for the root). */
  add(rel: string): AddResult {
    if (this.watchers.has(rel)) {
      return 'watched';
    }
    if (this.polledRoot(rel) !== undefined) {
      return 'limited';
    }
    if (!this.budgetLeft) {
      this.polled.set(rel, {
        dir: rel,
        reason: `watch budget of ${this.maxWatches} directories spent`,
        at: new Date().toISOString(),
      });
      return 'limited';
    }
    const abs = fsPath(this.root, rel);
    let w: fs.FSWatcher;
    try {
      w = viaShort(abs, (short) =>
        fs.watch(short, { persistent: true, encoding: 'buffer' }, (_type, name) => {
          if (name === null || name === undefined) {
            this.onEvent(rel);
          } else {
            const n = decodeName(name as unknown as Buffer);
            this.onEvent(rel === '' ? n : `${rel}/${n}`);
          }
        })
      );
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? 'error';
      if (code === 'ENOSPC' || code === 'EMFILE') {
        this.polled.set(rel, {
          dir: rel,
          reason:
            code === 'ENOSPC' ? 'inotify watch limit reached (fs.inotify.max_user_watches)' : 'too many open files',
          at: new Date().toISOString(),
        });
        return 'limited';
      }
      if (code === 'ENOENT' || code === 'ENOTDIR') {
        return 'gone';
      } // its parent's event says so
      this.onUnreadable(rel, code);
      return 'unreadable';
    }
    w.on('error', () => {
      // The directory went away (or was replaced): drop the watch; the parent's event handles the rest.
      this.close(rel);
      this.onDirGone(rel);
    });
    this.watchers.set(rel, w);
    try {
      const ino = viaShort(abs, (short) => fs.statSync(short, { throwIfNoEntry: false })?.ino);
      if (ino !== undefined) {
        this.inodes.set(rel, ino);
      }
    } catch {
      // unreadable meanwhile: the next event or scan says so
    }
    return 'watched';
  }

  /**
   * Watches the inode of the file `rel` (one of a hard-linked file's names): `onChange` runs
   * for any change to it, through whichever name. False when no watch can be had (the budget or
   * the system limit): the caller polls it instead.
   */
  watchInode(key: string, rel: string, onChange: () => void): boolean {
    if (this.inodeWatchers.has(key)) {
      return true;
    }
    if (!this.budgetLeft) {
      return false;
    }
    try {
      const w = viaShort(fsPath(this.root, rel), (short) => fs.watch(short, { persistent: true }, () => onChange()));
      w.on('error', () => this.unwatchInode(key));
      this.inodeWatchers.set(key, w);
      return true;
    } catch {
      return false;
    }
  }

  unwatchInode(key: string): void {
    const w = this.inodeWatchers.get(key);
    if (!w) {
      return;
    }
    this.inodeWatchers.delete(key);
    try {
      w.close();
    } catch {
      // already closed
    }
  }

  private close(rel: string): void {
    const w = this.watchers.get(rel);
    if (w) {
      this.watchers.delete(rel);
      this.inodes.delete(rel);
      try {
        w.close();
      } catch {
        // already closed
      }
    }
  }

  /** Stops watching `rel` and everything under it (it was deleted or replaced). */
  remove(rel: string): void {
    for (const k of [...this.watchers.keys()]) {
      if (within(k, rel)) {
        this.close(k);
      }
    }
    for (const k of [...this.polled.keys()]) {
      if (k !== '' && within(k, rel)) {
        this.polled.delete(k);
      }
    }
  }

  closeAll(): void {
    for (const k of [...this.watchers.keys()]) {
      this.close(k);
    }
    for (const k of [...this.inodeWatchers.keys()]) {
      this.unwatchInode(k);
    }
  }
}

/**
 * A fence in the stream of change notifications. Every fs.watch of a process shares one
 * inotify instance, whose events arrive in the order the kernel queued them: once the event for
 * a file created here after a read has arrived, every notification the kernel queued before it
 * (a write that overlapped the read, say) has been delivered too. pass() resolves false when the
 * fence's own event does not come in time (the kernel queue overflowed and dropped events).
 */
export class EventFence {
  private watcher?: fs.FSWatcher;
  private seq = 0;
  private readonly waiters = new Map<number, () => void>();

  constructor(private readonly dir: string) {}

  open(): void {
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    this.watcher = fs.watch(this.dir, { persistent: false }, (_type, name) => {
      const m = /^f(\d+)$/.exec(String(name));
      if (!m) {
        return;
      }
      const n = Number(m[1]);
      for (const [k, resolve] of this.waiters) {
        if (k > n) {
          continue;
        }
        this.waiters.delete(k);
        resolve();
      }
    });
    this.watcher.on('error', () => this.close());
  }

  async pass(timeoutMs = 2000): Promise<boolean> {
    if (!this.watcher) {
      return true;
    }
    const n = ++this.seq;
    let timer: NodeJS.Timeout | undefined;
    const arrived = new Promise<boolean>((resolve) => this.waiters.set(n, () => resolve(true)));
    const timedOut = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => {
        this.waiters.delete(n);
        resolve(false);
      }, timeoutMs);
    });
    const f = path.join(this.dir, `f${n}`);
    fs.writeFileSync(f, '', { mode: 0o600 });
    fs.rmSync(f, { force: true });
    const ok = await Promise.race([arrived, timedOut]);
    clearTimeout(timer);
    return ok;
  }

  close(): void {
    try {
      this.watcher?.close();
    } catch {
      // already closed
    }
    this.watcher = undefined;
    for (const resolve of this.waiters.values()) {
      resolve();
    }
    this.waiters.clear();
  }
}
