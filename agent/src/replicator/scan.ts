// Listing directories off the event loop: a worker thread runs readdir and one lstat per
// entry while the main thread compares what it has already received with the journal's state
// and adds watches, so the system calls and the comparison run on two cores side by side.
// The worker lists a directory only when the main thread asks for it, which it does after
// watching it: a change made after the listing is seen by the watch.
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { decodeName, type FsPath } from './fspath';

/** Numbers per entry in a listing: mode, size, mtimeMs, ctimeMs, ino, nlink, dev, uid, gid. */
export const STAT_FIELDS = 9;

export interface Listing {
  dir: string;
  /** Entries that could be lstat'ed, in the order of `stats`; null: the directory could not be read. */
  names: string[] | null;
  stats: Float64Array;
  /** Why the directory could not be read (EACCES, …), when names is null. */
  code?: string;
  /** Entries that could not be lstat'ed (a directory with read but no search permission), with why. */
  unreadable?: Array<{ name: string; code: string }>;
}

// Names arrive as bytes: one that is not valid UTF-8 is sent raw, for the main thread to
// escape (fspath.ts). A directory's path may be raw bytes, or /proc/self/fd/N/… for a path
// longer than the system's limit (the main thread holds that descriptor open meanwhile).
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const fs = require('node:fs');
const utf8 = new TextDecoder('utf-8', { fatal: true });
const asPath = (p) => (typeof p === 'string' ? p : Buffer.from(p.buffer, p.byteOffset, p.byteLength));
parentPort.on('message', (m) => {
  for (const { dir, abs: rawAbs } of m.items) {
    const abs = asPath(rawAbs);
    let names;
    try {
      names = fs.readdirSync(abs, { encoding: 'buffer' });
    } catch (e) {
      parentPort.postMessage({ dir, names: null, stats: new Float64Array(0), code: (e && e.code) || 'error' });
      continue;
    }
    const stats = new Float64Array(names.length * ${STAT_FIELDS});
    const kept = [];
    const raw = [];
    const unreadable = [];
    let k = 0;
    const prefix = typeof abs === 'string' ? Buffer.from(abs + '/') : Buffer.concat([abs, Buffer.from('/')]);
    for (const bytes of names) {
      let name;
      try {
        name = utf8.decode(bytes);
      } catch {
        name = null;
      }
      let st;
      try {
        st = fs.lstatSync(Buffer.concat([prefix, bytes]), { throwIfNoEntry: false });
      } catch (e) {
        const code = (e && e.code) || 'error';
        if (code === 'ENOENT' || code === 'ENOTDIR') continue;
        unreadable.push({ name, bytes: name === null ? Uint8Array.from(bytes) : null, code });
        continue;
      }
      if (!st) continue;
      if (name === null) raw.push({ i: kept.length, bytes: Uint8Array.from(bytes) });
      kept.push(name);
      stats[k++] = st.mode;
      stats[k++] = st.size;
      stats[k++] = st.mtimeMs;
      stats[k++] = st.ctimeMs;
      stats[k++] = st.ino;
      stats[k++] = st.nlink;
      stats[k++] = st.dev;
      stats[k++] = st.uid;
      stats[k++] = st.gid;
    }
    const out = k === stats.length ? stats : stats.slice(0, k);
    parentPort.postMessage({ dir, names: kept, raw, unreadable, stats: out }, [out.buffer]);
  }
});
`;

type Reply = Omit<Listing, 'unreadable'> & {
  error?: string;
  raw?: Array<{ i: number; bytes: Uint8Array }>;
  unreadable?: Array<{ name: string | null; bytes?: Uint8Array | null; code: string }>;
};

/** Worker threads, started ahead of the first walk and kept for later ones. */
export class DirLister {
  private workers: Worker[] = [];
  private current: ((r: Reply, from: number) => void) | null = null;
  private fail: ((e: Error) => void) | null = null;

  constructor(private readonly threads = Math.max(1, Math.min(2, availableParallelism()))) {}

  /** Starts the workers now (their start-up then overlaps other work). */
  warm(): void {
    if (this.workers.length > 0) {
      return;
    }
    for (let i = 0; i < this.threads; i++) {
      const w = new Worker(WORKER_SOURCE, { eval: true });
      w.unref();
      w.on('message', (r: Reply) => this.current?.(r, i));
      w.on('error', (e) => {
        this.close();
        this.fail?.(e);
      });
      w.on('exit', () => {
        if (this.workers[i] === w) {
          this.close();
        }
        this.fail?.(new Error('directory listing worker exited'));
      });
      this.workers.push(w);
    }
  }

  /**
   * Lists `start` and, recursively, every directory `onDir` returns; `pathOf` gives a
   * directory's path for system calls (and a descriptor to close once it is listed, for a path
   * longer than the system's limit). One walk at a time. `onDir` runs on the main thread, one
   * listing after another.
   */
  async walk(
    start: string,
    pathOf: (dir: string) => { abs: FsPath; release?: () => void },
    onDir: (l: Listing) => string[]
  ): Promise<void> {
    if (this.current) {
      throw new Error('directory walk already running');
    }
    this.warm();
    const workers = this.workers;
    for (const w of workers) {
      w.ref();
    }
    // Descriptors held open for long paths until their directory is listed.
    const held = new Map<string, () => void>();
    try {
      await new Promise<void>((resolve, reject) => {
        // Directories asked of each worker and not answered yet: the next go to the least busy.
        const busy = workers.map(() => 0);
        let outstanding = 1;
        this.fail = reject;
        const post = (i: number, dirs: string[]) => {
          const items = dirs.map((dir) => {
            const { abs, release } = pathOf(dir);
            if (release) {
              held.set(dir, release);
            }
            return { dir, abs };
          });
          (workers[i] as Worker).postMessage({ items });
        };
        this.current = (r, from) => {
          held.get(r.dir)?.();
          held.delete(r.dir);
          if (r.error !== undefined) {
            reject(new Error(`listing ${r.dir}: ${r.error}`));
            return;
          }
          if (r.names) {
            for (const { i, bytes } of r.raw ?? []) {
              r.names[i] = decodeName(bytes);
            }
          }
          if (r.unreadable) {
            r.unreadable = r.unreadable.map((u) => ({
              name: u.name ?? decodeName((u as { bytes: Uint8Array }).bytes),
              code: u.code,
            }));
          }
          outstanding--;
          busy[from]--;
          let next: string[];
          try {
            next = onDir(r as unknown as Listing);
          } catch (e) {
            reject(e as Error);
            return;
          }
          if (next.length > 0) {
            outstanding += next.length;
            const batches: string[][] = workers.map(() => []);
            for (const d of next) {
              let least = 0;
              for (let i = 1; i < busy.length; i++) {
                if ((busy[i] as number) < (busy[least] as number)) {
                  least = i;
                }
              }
              busy[least] = (busy[least] as number) + 1;
              (batches[least] as string[]).push(d);
            }
            batches.forEach((dirs, i) => {
              if (dirs.length > 0) {
                post(i, dirs);
              }
            });
          }
          if (outstanding === 0) {
            resolve();
          }
        };
        busy[0] = 1;
        post(0, [start]);
      });
    } catch (e) {
      // A failed walk may leave replies in flight: start afresh next time.
      this.close();
      throw e;
    } finally {
      for (const release of held.values()) {
        release();
      }
      this.current = null;
      this.fail = null;
      for (const w of this.workers) {
        w.unref();
      }
    }
  }

  close(): void {
    const ws = this.workers;
    this.workers = [];
    for (const w of ws) {
      void w.terminate();
    }
  }
}
