// SHA-256 of large files in worker threads, one per core: several files are hashed at once,
// and the event loop stays free while the kernel copies them.
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const fs = require('node:fs');
const buf = Buffer.allocUnsafe(1 << 20);
parentPort.on('message', ({ id, file }) => {
  let fd;
  try {
    fd = fs.openSync(file, 'r');
    const h = createHash('sha256');
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
    }
    parentPort.postMessage({ id, hash: h.digest('hex') });
  } catch (e) {
    parentPort.postMessage({ id, error: String(e && e.message), code: e && e.code });
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
});
`;

interface Job {
  resolve: (hash: string) => void;
  reject: (e: Error) => void;
}

interface Slot {
  worker: Worker;
  jobs: Map<number, Job>;
}

const THREADS = Math.max(1, availableParallelism());
let slots: Slot[] = [];
let nextId = 0;

function start(): Slot {
  const worker = new Worker(WORKER_SOURCE, { eval: true });
  const slot: Slot = { worker, jobs: new Map() };
  worker.unref();
  worker.on('message', (m: { id: number; hash?: string; error?: string; code?: string }) => {
    const job = slot.jobs.get(m.id);
    if (!job) return;
    slot.jobs.delete(m.id);
    if (slot.jobs.size === 0) worker.unref();
    if (m.hash !== undefined) job.resolve(m.hash);
    else job.reject(Object.assign(new Error(m.error ?? 'hashing failed'), { code: m.code }));
  });
  const lost = (e: Error) => {
    slots = slots.filter((s) => s !== slot);
    for (const job of slot.jobs.values()) job.reject(e);
    slot.jobs.clear();
  };
  worker.on('error', lost);
  worker.on('exit', () => lost(new Error('hashing worker exited')));
  return slot;
}

/** The SHA-256 (hex) of the file's content, computed by the least busy worker thread. */
export function hashFileInWorker(file: string): Promise<string> {
  if (slots.length < THREADS) slots.push(start());
  let slot = slots[0] as Slot;
  for (const s of slots) if (s.jobs.size < slot.jobs.size) slot = s;
  const id = nextId++;
  return new Promise((resolve, reject) => {
    slot.jobs.set(id, { resolve, reject });
    slot.worker.ref();
    slot.worker.postMessage({ id, file });
  });
}
