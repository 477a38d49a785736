// Content hashes of the store. A store names its objects by one algorithm, recorded in its
// marker: BLAKE3 for stores created where the native BLAKE3 module loads (about 3.5 times less
// processor time per byte than SHA-256 here), SHA-256 otherwise and for stores created before
// BLAKE3 (marker version 1). A BLAKE3 store stays writable without the native module: a
// WebAssembly build of the same function takes over, slower but identical.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import type { IHasher } from 'hash-wasm';

export const HASH_ALGORITHMS = ['blake3', 'sha256'] as const;
export type HashAlgorithm = (typeof HASH_ALGORITHMS)[number];
/** What a new store uses: `auto` is BLAKE3 when the native module loads, SHA-256 otherwise. */
export const HASH_CHOICES = ['auto', ...HASH_ALGORITHMS] as const;
export type HashChoice = (typeof HASH_CHOICES)[number];

interface NativeHasher {
  update(input: Uint8Array): NativeHasher;
  digest(format: 'hex'): string;
}

interface NativeBlake3 {
  Blake3Hasher: new () => NativeHasher;
  /** One-shot digest (32 bytes), without a hasher object: the small-file path. */
  blake3: (input: Uint8Array) => Buffer;
}

const NATIVE_MODULE = '@napi-rs/blake-hash';
let native: { mod: NativeBlake3; path: string } | null | undefined;
let wasm: IHasher | undefined;

/**
 * The native BLAKE3 module and its resolved path (worker threads load it from there), or null
 * where it is not installed (the single-file build, a platform without a prebuilt binary) or
 * switched off with VIGIL_NATIVE_HASH=0.
 */
export function nativeBlake3(): { mod: NativeBlake3; path: string } | null {
  if (native !== undefined) {
    return native;
  }
  native = null;
  if (process.env.VIGIL_NATIVE_HASH === '0') {
    return native;
  }
  try {
    // A plain require with a computed name: the single-file build leaves it out and falls back.
    const resolved = require.resolve(NATIVE_MODULE);
    native = { mod: require(resolved) as NativeBlake3, path: resolved };
  } catch {
    native = null;
  }
  return native;
}

/** The algorithm a new store gets for `choice`. */
export function algorithmFor(choice: HashChoice): HashAlgorithm {
  if (choice !== 'auto') {
    return choice;
  }
  return nativeBlake3() ? 'blake3' : 'sha256';
}

/** Where hashing of `algorithm` runs: 'native' or 'wasm' (BLAKE3), 'openssl' (SHA-256). */
export function implementation(algorithm: HashAlgorithm): 'native' | 'wasm' | 'openssl' {
  if (algorithm === 'sha256') {
    return 'openssl';
  }
  return nativeBlake3() ? 'native' : 'wasm';
}

/** Makes hashBuffer(algorithm, …) usable; only the WebAssembly fallback needs loading. */
export async function loadHasher(algorithm: HashAlgorithm): Promise<void> {
  if (algorithm === 'blake3' && !nativeBlake3() && !wasm) {
    wasm = await wasmBlake3();
  }
}

/** A new WebAssembly BLAKE3 hasher; the module is loaded on first use (the agent never needs it). */
async function wasmBlake3(): Promise<IHasher> {
  const { createBLAKE3 } = await import('hash-wasm');
  return createBLAKE3();
}

/** The hex digest of `data` (64 characters for both algorithms); see loadHasher. */
export function hashBuffer(algorithm: HashAlgorithm, data: Uint8Array | string): string {
  const bytes = typeof data === 'string' ? Buffer.from(data) : data;
  if (algorithm === 'sha256') {
    return createHash('sha256').update(bytes).digest('hex');
  }
  const n = nativeBlake3();
  if (n) {
    return n.mod.blake3(bytes).toString('hex');
  }
  if (!wasm) {
    throw new Error('BLAKE3 (WebAssembly) is not loaded: call loadHasher first');
  }
  // One instance serves every call: each runs init, update and digest in one go.
  wasm.init();
  wasm.update(bytes);
  return wasm.digest('hex');
}

/** A hasher of its own (a WebAssembly instance of its own too): for pieces read between awaits. */
export async function streamHasher(algorithm: HashAlgorithm): Promise<Hasher> {
  const n = nativeBlake3();
  return algorithm === 'sha256' ? createHash('sha256') : n ? new n.mod.Blake3Hasher() : await wasmBlake3();
}

export interface Hasher {
  update(d: Uint8Array): unknown;
  digest(f: 'hex'): string;
}

/**
 * A hasher to feed piece by piece (see loadHasher). Without the native module every BLAKE3
 * hasher shares one WebAssembly instance: finish one before starting the next.
 */
export function newHasher(algorithm: HashAlgorithm): Hasher {
  if (algorithm === 'sha256') {
    return createHash('sha256');
  }
  const n = nativeBlake3();
  if (n) {
    return new n.mod.Blake3Hasher();
  }
  if (!wasm) {
    throw new Error('BLAKE3 (WebAssembly) is not loaded: call loadHasher first');
  }
  const w = wasm;
  w.init();
  return { update: (d: Uint8Array) => w.update(d), digest: () => w.digest('hex') };
}

/**
 * The hex digest of a file's content, read in 1 MiB pieces without blocking the event loop:
 * the way large files are hashed when no worker thread can (BLAKE3 without the native module).
 */
export async function hashFile(algorithm: HashAlgorithm, file: string | Buffer): Promise<string> {
  const h = await streamHasher(algorithm);
  const fh = await fs.promises.open(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) {
        break;
      }
      h.update(buf.subarray(0, bytesRead));
    }
  } finally {
    await fh.close();
  }
  return h.digest('hex');
}
