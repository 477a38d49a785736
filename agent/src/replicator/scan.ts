// Listing directories off the event loop: a worker thread runs readdir and one lstat per
// entry while the main thread compares what it has already received with the journal's state
// and adds watches, so the system calls and the comparison run on two cores side by side.
// The worker lists a directory only when the main thread asks for it, which it does after
// watching it: a change made after the listing is seen by the watch.
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

/** Numbers per entry in a listing: mode, size, mtimeMs, ctimeMs, ino. */
export const STAT_FIELDS = 5;

export interface Listing {
  dir: string;
  /** Entries that could be lstat'ed, in the order of `stats`; null: the directory could not be read. */
  names: string[] | null;
  stats: Float64Array;
}

const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const fs = require('node:fs');
parentPort.on('message', (m) => {
  for (const dir of m.dirs) {
    const abs = dir === '' ? m.root : m.root + '/' + dir;
    let names;
    try {
      names = fs.readdirSync(abs);
    } catch {
      parentPort.postMessage({ dir, names: null, stats: new Float64Array(0) });
      continue;
    }
    const stats = new Float64Array(names.length * ${STAT_FIELDS});
    const kept = [];
    let k = 0;
    for (const name of names) {
      let st;
      try {
        st = fs.lstatSync(abs + '/' + name, { throwIfNoEntry: false });
      } catch (e) {
        if (e && (e.code === 'ENOENT' || e.code === 'ENOTDIR')) continue;
        parentPort.postMessage({ dir, error: String(e && e.message) });
        return;
      }
      if (!st) continue;
      kept.push(name);
      stats[k++] = st.mode;
      stats[k++] = st.size;
      stats[k++] = st.mtimeMs;
      stats[k++] = st.ctimeMs;
      stats[k++] = st.ino;
    }
    const out = k === stats.length ? stats : stats.slice(0, k);
    parentPort.postMessage({ dir, names: kept, stats: out }, [out.buffer]);
  }
});
`;

type Reply = Listing & { error?: string };

/** Worker threads, started ahead of the first walk and kept for later ones. */
export class DirLister {
  private workers: Worker[] = [];
  private current: ((r: Reply, from: number) => void) | null = null;
  private fail: ((e: Error) => void) | null = null;

  constructor(private readonly threads = Math.max(1, Math.min(2, availableParallelism()))) {}

  /** Starts the workers now (their start-up then overlaps other work). */
  warm(): void {
    if (this.workers.length > 0) return;
    for (let i = 0; i < this.threads; i++) {
      const w = new Worker(WORKER_SOURCE, { eval: true });
      w.unref();
      w.on('message', (r: Reply) => this.current?.(r, i));
      w.on('error', (e) => {
        this.close();
        this.fail?.(e);
      });
      w.on('exit', () => {
        if (this.workers[i] === w) this.close();
        this.fail?.(new Error('directory listing worker exited'));
      });
      this.workers.push(w);
    }
  }

  /**
   * Lists `start` under `root` and, recursively, every directory `onDir` returns. One walk at
   * a time. `onDir` runs on the main thread, one listing after another.
   */
  async walk(root: string, start: string, onDir: (l: Listing) => string[]): Promise<void> {
    if (this.current) throw new Error('directory walk already running');
    this.warm();
    const workers = this.workers;
    for (const w of workers) w.ref();
    try {
      await new Promise<void>((resolve, reject) => {
        // Directories asked of each worker and not answered yet: the next go to the least busy.
        const busy = workers.map(() => 0);
        let outstanding = 1;
        this.fail = reject;
        this.current = (r, from) => {
          if (r.error !== undefined) {
            reject(new Error(`listing ${r.dir}: ${r.error}`));
            return;
          }
          outstanding--;
          busy[from]--;
          let next: string[];
          try {
            next = onDir(r);
          } catch (e) {
            reject(e as Error);
            return;
          }
          if (next.length > 0) {
            outstanding += next.length;
            const batches: string[][] = workers.map(() => []);
            for (const d of next) {
              let least = 0;
              for (let i = 1; i < busy.length; i++) if ((busy[i] as number) < (busy[least] as number)) least = i;
              busy[least] = (busy[least] as number) + 1;
              (batches[least] as string[]).push(d);
            }
            batches.forEach((dirs, i) => {
              if (dirs.length > 0) (workers[i] as Worker).postMessage({ root, dirs });
            });
          }
          if (outstanding === 0) resolve();
        };
        busy[0] = 1;
        (workers[0] as Worker).postMessage({ root, dirs: [start] });
      });
    } catch (e) {
      // A failed walk may leave replies in flight: start afresh next time.
      this.close();
      throw e;
    } finally {
      this.current = null;
      this.fail = null;
      for (const w of this.workers) w.unref();
    }
  }

  close(): void {
    const ws = this.workers;
    this.workers = [];
    for (const w of ws) void w.terminate();
  }
}
