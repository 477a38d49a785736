// Hashes of large files in worker threads, one per core: several files are hashed at once,
// and the event loop stays free while the kernel copies them. A worker hashes SHA-256 with
// node:crypto and BLAKE3 with the native module, loaded from the path the main thread resolved.
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { hashFile, nativeBlake3, type HashAlgorithm } from './digest';

const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const fs = require('node:fs');
const buf = Buffer.allocUnsafe(1 << 20);
const natives = new Map();
const asPath = (p) => (typeof p === 'string' ? p : Buffer.from(p));
parentPort.on('message', ({ id, file, algorithm, nativePath }) => {
  let fd;
  try {
    let h;
    if (algorithm === 'blake3') {
      if (!natives.has(nativePath)) natives.set(nativePath, require(nativePath));
      h = new (natives.get(nativePath).Blake3Hasher)();
    } else h = createHash('sha256');
    fd = fs.openSync(asPath(file), 'r');
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
  // Referenced while it has jobs, unreferenced when idle (the process may exit then). A new
  // worker gets its first job at once: one left idle before it came online kept the process
  // alive despite unref().
  const slot: Slot = { worker, jobs: new Map() };
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

/**
 * The hash (hex) of the file's content, computed by the least busy worker thread; for BLAKE3
 * without the native module, on this thread (WebAssembly, between reads).
 */
export function hashFileInWorker(file: string | Buffer, algorithm: HashAlgorithm): Promise<string> {
  const nativePath = algorithm === 'blake3' ? nativeBlake3()?.path : undefined;
  if (algorithm === 'blake3' && nativePath === undefined) return hashFile(algorithm, file);
  let slot: Slot | undefined;
  for (const s of slots) if (!slot || s.jobs.size < slot.jobs.size) slot = s;
  if (!slot || (slot.jobs.size > 0 && slots.length < THREADS)) {
    slot = start();
    slots.push(slot);
  }
  const id = nextId++;
  const chosen = slot;
  return new Promise((resolve, reject) => {
    chosen.jobs.set(id, { resolve, reject });
    chosen.worker.ref();
    chosen.worker.postMessage({ id, file, algorithm, nativePath });
  });
}
