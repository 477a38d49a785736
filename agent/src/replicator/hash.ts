// Hashes of large files in worker threads, one per core: several files are hashed at once,
// and the event loop stays free while the kernel copies them. A worker hashes SHA-256 with
// node:crypto and BLAKE3 with the native module, loaded from the path the main thread resolved.
//
// A worker can follow a file while it is being written (a copy into the store): it hashes what
// is there, waits for more, and ends at the size the writer gives once it is done, so the copy
// and its hash overlap and the hash still names exactly the bytes written.
import * as fs from 'node:fs';
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
const nap = new Int32Array(new SharedArrayBuffer(4));
parentPort.on('message', ({ id, file, algorithm, nativePath, follow }) => {
  let fd;
  try {
    let h;
    if (algorithm === 'blake3') {
      if (!natives.has(nativePath)) natives.set(nativePath, require(nativePath));
      h = new (natives.get(nativePath).Blake3Hasher)();
    } else h = createHash('sha256');
    fd = fs.openSync(asPath(file), 'r');
    // follow: [final size, or -1 while the writer is still writing]
    const end = follow ? new Float64Array(follow) : null;
    let pos = 0;
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, pos);
      if (n > 0) {
        h.update(buf.subarray(0, n));
        pos += n;
        continue;
      }
      if (!end) break;
      // The end of what is there: the end of the file once the writer is done, else wait for more.
      if (Atomics.load(new Int32Array(follow), 2) === 1) {
        if (pos >= end[0]) break;
        if (fs.fstatSync(fd).size <= pos) break;
        continue;
      }
      Atomics.wait(nap, 0, 0, 1);
    }
    parentPort.postMessage({ id, hash: h.digest('hex'), bytes: pos });
  } catch (e) {
    parentPort.postMessage({ id, error: String(e && e.message), code: e && e.code });
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
});
`;

interface Job {
  resolve: (r: { hash: string; bytes: number }) => void;
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
  worker.on('message', (m: { id: number; hash?: string; bytes?: number; error?: string; code?: string }) => {
    const job = slot.jobs.get(m.id);
    if (!job) {
      return;
    }
    slot.jobs.delete(m.id);
    if (slot.jobs.size === 0) {
      worker.unref();
    }
    if (m.hash !== undefined) {
      job.resolve({ hash: m.hash, bytes: m.bytes ?? 0 });
    } else {
      job.reject(Object.assign(new Error(m.error ?? 'hashing failed'), { code: m.code }));
    }
  });
  const lost = (e: Error) => {
    slots = slots.filter((s) => s !== slot);
    for (const job of slot.jobs.values()) {
      job.reject(e);
    }
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
export async function hashFileInWorker(file: string | Buffer, algorithm: HashAlgorithm): Promise<string> {
  if (algorithm === 'blake3' && !nativeBlake3()) {
    return hashFile(algorithm, file);
  }
  return (await post(file, algorithm)).hash;
}

/**
 * Hashes `file` while `write` writes it (from empty, each byte once, in order): the hash of
 * every byte written, and their number. Without a worker (BLAKE3 through WebAssembly) the file
 * is hashed after the write.
 */
export async function hashWhileWritten(
  file: string,
  algorithm: HashAlgorithm,
  write: () => Promise<void>
): Promise<{ hash: string; bytes: number }> {
  if (algorithm === 'blake3' && !nativeBlake3()) {
    await write();
    const hash = await hashFile(algorithm, file);
    return { hash, bytes: fs.statSync(file).size };
  }
  // [final size (float64), done flag (int32 at byte 8)]
  const follow = new SharedArrayBuffer(16);
  const size = new Float64Array(follow, 0, 1);
  const done = new Int32Array(follow, 8, 1);
  // The file must exist before the worker opens it.
  fs.closeSync(fs.openSync(file, 'a', 0o600));
  const hashed = post(file, algorithm, follow);
  try {
    await write();
  } catch (e) {
    hashed.catch(() => undefined);
    throw e;
  } finally {
    size[0] = fs.statSync(file, { throwIfNoEntry: false })?.size ?? 0;
    Atomics.store(done, 0, 1);
  }
  return hashed;
}

function post(
  file: string | Buffer,
  algorithm: HashAlgorithm,
  follow?: SharedArrayBuffer
): Promise<{ hash: string; bytes: number }> {
  const nativePath = algorithm === 'blake3' ? nativeBlake3()?.path : undefined;
  let slot: Slot | undefined;
  for (const s of slots) {
    if (!slot || s.jobs.size < slot.jobs.size) {
      slot = s;
    }
  }
  if (!slot || (slot.jobs.size > 0 && slots.length < THREADS)) {
    slot = start();
    slots.push(slot);
  }
  const id = nextId++;
  const chosen = slot;
  return new Promise((resolve, reject) => {
    chosen.jobs.set(id, { resolve, reject });
    chosen.worker.ref();
    chosen.worker.postMessage({ id, file, algorithm, nativePath, follow });
  });
}
