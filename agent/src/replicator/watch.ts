// Watching the source: one inotify watch per directory (fs.watch on the directory itself,
// so every watch is visible and counted here). When the system limit is hit (ENOSPC from
// inotify_add_watch) or the configured budget is spent, the directory's whole subtree is
// handed to periodic scanning instead, and the status says which subtrees that is.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { within } from './tree';

export interface WatchLimit {
  dir: string;
  reason: string;
  at: string;
}

export class TreeWatcher {
  private readonly watchers = new Map<string, fs.FSWatcher>();
  /** The inode each watch is on: a directory replaced by another of the same name needs a new watch. */
  private readonly inodes = new Map<string, number>();
  /** Subtrees left to periodic scanning, with why. */
  readonly polled = new Map<string, WatchLimit>();

  constructor(
    private readonly root: string,
    private readonly onEvent: (rel: string) => void,
    private readonly onDirGone: (rel: string) => void,
    private readonly maxWatches: number,
  ) {}

  get count(): number {
    return this.watchers.size;
  }

  isWatched(rel: string): boolean {
    return this.watchers.has(rel);
  }

  inodeOf(rel: string): number | undefined {
    return this.inodes.get(rel);
  }

  /** The polled subtree `rel` lies in, if any. */
  polledRoot(rel: string): string | undefined {
    for (const d of this.polled.keys()) if (within(rel, d)) return d;
    return undefined;
  }

  /**
   * Watches directory `rel` (relative to the root, '' for the root). Returns false when it
   * could not be watched because of a limit; the subtree is then polled.
   */
  add(rel: string): boolean {
    if (this.watchers.has(rel)) return true;
    if (this.polledRoot(rel) !== undefined) return false;
    if (this.watchers.size >= this.maxWatches) {
      this.polled.set(rel, { dir: rel, reason: `watch budget of ${this.maxWatches} directories spent`, at: new Date().toISOString() });
      return false;
    }
    const abs = rel === '' ? this.root : path.join(this.root, rel);
    let w: fs.FSWatcher;
    try {
      w = fs.watch(abs, { persistent: true }, (_type, name) => {
        if (name === null || name === undefined) this.onEvent(rel);
        else this.onEvent(rel === '' ? String(name) : `${rel}/${String(name)}`);
      });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOSPC' || code === 'EMFILE') {
        this.polled.set(rel, {
          dir: rel,
          reason: code === 'ENOSPC' ? 'inotify watch limit reached (fs.inotify.max_user_watches)' : 'too many open files',
          at: new Date().toISOString(),
        });
        return false;
      }
      if (code === 'ENOENT' || code === 'ENOTDIR') return true; // gone already; its parent's event says so
      throw e;
    }
    w.on('error', () => {
      // The directory went away (or was replaced): drop the watch; the parent's event handles the rest.
      this.close(rel);
      this.onDirGone(rel);
    });
    this.watchers.set(rel, w);
    const ino = fs.statSync(abs, { throwIfNoEntry: false })?.ino;
    if (ino !== undefined) this.inodes.set(rel, ino);
    return true;
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
    for (const k of [...this.watchers.keys()]) if (within(k, rel)) this.close(k);
    for (const k of [...this.polled.keys()]) if (k !== '' && within(k, rel)) this.polled.delete(k);
  }

  closeAll(): void {
    for (const k of [...this.watchers.keys()]) this.close(k);
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
      if (!m) return;
      const n = Number(m[1]);
      for (const [k, resolve] of this.waiters) {
        if (k > n) continue;
        this.waiters.delete(k);
        resolve();
      }
    });
    this.watcher.on('error', () => this.close());
  }

  async pass(timeoutMs = 2000): Promise<boolean> {
    if (!this.watcher) return true;
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
    fs.writeFileSync(f, '');
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
    for (const resolve of this.waiters.values()) resolve();
    this.waiters.clear();
  }
}
