// Copies and hashes of large files in worker threads, one per core: several files are handled
// at once and the event loop stays free. A copy is hashed from the very bytes it writes, in one
// pass, so an object's name always is the hash of its content, whatever the source did
// meanwhile. A worker hashes SHA-256 with node:crypto and BLAKE3 with the native module, loaded
// from the path the main thread resolved.
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import * as fs from 'node:fs';
import { hashFile, nativeBlake3, streamHasher, type HashAlgorithm } from './digest';

const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const fs = require('node:fs');
const buf = Buffer.allocUnsafe(1 << 20);
const natives = new Map();
const asPath = (p) => (typeof p === 'string' ? p : Buffer.from(p));
parentPort.on('message', ({ id, file, copyTo, algorithm, nativePath }) => {
  let fd;
  let out;
  try {
    let h;
    if (algorithm === 'blake3') {
      if (!natives.has(nativePath)) natives.set(nativePath, require(nativePath));
      h = new (natives.get(nativePath).Blake3Hasher)();
    } else h = createHash('sha256');
    fd = fs.openSync(asPath(file), 'r');
    if (copyTo !== undefined) out = fs.openSync(copyTo, 'wx', 0o400);
    let bytes = 0;
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
      if (out !== undefined) for (let w = 0; w < n; ) w += fs.writeSync(out, buf, w, n - w);
      bytes += n;
    }
    parentPort.postMessage({ id, hash: h.digest('hex'), bytes });
  } catch (e) {
    parentPort.postMessage({ id, error: String(e && e.message), code: e && e.code });
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
    if (out !== undefined) fs.closeSync(out);
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
    if (!job) return;
    slot.jobs.delete(m.id);
    if (slot.jobs.size === 0) worker.unref();
    if (m.hash !== undefined) job.resolve({ hash: m.hash, bytes: m.bytes ?? 0 });
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
export async function hashFileInWorker(file: string | Buffer, algorithm: HashAlgorithm): Promise<string> {
  return (await runJob(file, undefined, algorithm)).hash;
}

/**
 * Copies `file` to `copyTo` (created, mode 0400) and hashes the bytes it copies, in one pass:
 * the hash names exactly what was written, even if the source changed during the copy.
 */
export function copyAndHashInWorker(file: string | Buffer, copyTo: string, algorithm: HashAlgorithm): Promise<{ hash: string; bytes: number }> {
  return runJob(file, copyTo, algorithm);
}

function runJob(file: string | Buffer, copyTo: string | undefined, algorithm: HashAlgorithm): Promise<{ hash: string; bytes: number }> {
  const nativePath = algorithm === 'blake3' ? nativeBlake3()?.path : undefined;
  if (algorithm === 'blake3' && nativePath === undefined) return copyAndHashHere(file, copyTo, algorithm);
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
    chosen.worker.postMessage({ id, file, copyTo, algorithm, nativePath });
  });
}

/** The same on this thread, between reads (BLAKE3 through WebAssembly). */
async function copyAndHashHere(file: string | Buffer, copyTo: string | undefined, algorithm: HashAlgorithm): Promise<{ hash: string; bytes: number }> {
  if (copyTo === undefined) {
    const hash = await hashFile(algorithm, file);
    return { hash, bytes: 0 };
  }
  const h = await streamHasher(algorithm);
  const src = await fs.promises.open(file, 'r');
  const out = await fs.promises.open(copyTo, 'wx', 0o400);
  let bytes = 0;
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    for (;;) {
      const { bytesRead } = await src.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      h.update(buf.subarray(0, bytesRead));
      await out.write(buf, 0, bytesRead);
      bytes += bytesRead;
    }
  } finally {
    await src.close();
    await out.close();
  }
  return { hash: h.digest('hex'), bytes };
}
