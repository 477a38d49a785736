// Reading a version of a source file that really existed, and storing it under its hash.
//
// An object's name is always the hash of the bytes stored: a small content is hashed from the
// buffer that is written, a large one is copied by the kernel and the copy is hashed.
//
// Whether the bytes are one version of the file (not a mix of two writes) cannot be proven
// from user space on Linux without a snapshot, so several independent checks must all agree
// before a version is recorded:
//   1. the file must have held still for a settling time before the read (its change time is
//      older than that): a write still in progress when the read starts updated the change
//      time at its start, so it must have begun at least that long ago (after a step of the
//      wall clock, how long the file was seen unchanged on the monotonic clock: SettleClock);
//   2. size, modification and change times (nanoseconds), inode and device are the same before
//      and after the read;
//   3. a content of up to 1 MiB is read twice and both reads must be identical;
//   4. no change notification for the path arrived from the start of the read until a fence
//      after it (the caller's part: see Replicator.fence).
// A file that fails them is read again later; one that never holds still is reported as
// changing, and its last consistent version stays the recorded one.
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { hashBuffer } from './digest';
import { viaShortAsync, type FsPath } from './fspath';
import { OBJECT_MODE } from './modes';
import { hashFileInWorker, hashWhileWritten } from './hash';
import type { StoreLayout } from './store';

/** Contents up to this size are read into memory and hashed there; larger ones are copied by a worker. */
export const SMALL_FILE_BYTES = 4 * 1024 * 1024;
/**
 * Contents up to this size travel inside their journal record, so the record's fsync makes
 * them durable too: their object file is written without an fsync of its own (one fsync per
 * batch instead of one per file). A checkpoint fsyncs such objects later, off the capture path.
 */
export const INLINE_BYTES = 64 * 1024;
/** Contents up to this size are read twice and compared. */
export const DOUBLE_READ_BYTES = 1024 * 1024;

/**
 * How long a file must have held still before it is read: longer for larger files, whose
 * writes take longer (a quarter of a millisecond per MiB: one write() into the page cache at
 * 4 GiB/s; a slower writer is one the base time is there for).
 */
export function settleMs(size: number, baseMs: number): number {
  return Math.min(5000, baseMs + Math.floor(size / (4 * 1024 * 1024)));
}

/** What a record keeps of the stat taken before the read. */
export interface FileVersion {
  size: number;
  mode: number;
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
  dev: number;
  nlink: number;
  mtimeNs: bigint;
  ctimeNs: bigint;
  /** Owner and group (the record's `u` and `g`, see metadata.ts). */
  uid: number;
  gid: number;
}

/** Milliseconds as fs.Stats computes them (seconds * 1000 + nanoseconds / 1e6), from nanoseconds. */
function msOf(ns: bigint): number {
  return Number(ns / 1_000_000_000n) * 1000 + Number(ns % 1_000_000_000n) / 1e6;
}

export function versionOf(st: fs.BigIntStats): FileVersion {
  return {
    size: Number(st.size),
    mode: Number(st.mode),
    mtimeMs: msOf(st.mtimeNs),
    ctimeMs: msOf(st.ctimeNs),
    ino: Number(st.ino),
    dev: Number(st.dev),
    nlink: Number(st.nlink),
    mtimeNs: st.mtimeNs,
    ctimeNs: st.ctimeNs,
    uid: Number(st.uid),
    gid: Number(st.gid),
  };
}

function sameVersion(a: FileVersion, b: FileVersion): boolean {
  return (
    a.size === b.size &&
    a.mtimeNs === b.mtimeNs &&
    a.ctimeNs === b.ctimeNs &&
    a.ino === b.ino &&
    a.dev === b.dev &&
    a.mode === b.mode
  );
}

export type Capture =
  | {
      kind: 'ok';
      hash: string;
      size: number;
      stat: FileVersion;
      /** A small content, read into memory (written as an object by storeCaptured). */
      data?: Buffer;
      /** A large content's copy in tmp/, fsynced (renamed into objects/ by storeCaptured). */
      tmp?: string;
    }
  | { kind: 'gone' }
  | { kind: 'unstable'; why: string }
  | { kind: 'hot'; waitMs: number }
  | { kind: 'unreadable'; code: string };

const GONE = new Set(['ENOENT', 'ENOTDIR']);
/** Errors of the store's side (writing the copy): writing is not safe, the replicator stops. */
const STORE_FAILURES = new Set(['ENOSPC', 'EDQUOT', 'EROFS', 'EMFILE', 'ENFILE', 'ENOMEM']);

/** A failed read: gone, or unknown (permissions, I/O errors: never fatal); a failed write to the store is thrown. */
function failure(e: unknown): Capture {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === undefined || STORE_FAILURES.has(code)) {
    throw e;
  }
  if (GONE.has(code)) {
    return { kind: 'gone' };
  }
  return { kind: 'unreadable', code };
}

/** Reads all of `fd` from offset 0 into `buf`-sized pieces; returns the bytes (up to limit + 1, to see growth). */
function readAll(fd: number, limit: number): Buffer {
  const buf = Buffer.allocUnsafe(limit + 1);
  let n = 0;
  for (;;) {
    const got = fs.readSync(fd, buf, n, buf.length - n, n);
    if (got === 0) {
      break;
    }
    n += got;
    if (n === buf.length) {
      break;
    }
  }
  return buf.subarray(0, n);
}

async function readAllAsync(fh: fs.promises.FileHandle, limit: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(limit + 1);
  let n = 0;
  for (;;) {
    const { bytesRead } = await fh.read(buf, n, buf.length - n, n);
    if (bytesRead === 0) {
      break;
    }
    n += bytesRead;
    if (n === buf.length) {
      break;
    }
  }
  return buf.subarray(0, n);
}

/**
 * Reads the source file `abs` and checks the read (1–3 above). Nothing is stored yet: the
 * caller checks the change notifications, then calls storeCaptured.
 */
export async function captureFile(layout: StoreLayout, abs: FsPath, o: CaptureOptions): Promise<Capture> {
  // A path longer than the system's limit is reached through an open directory descriptor.
  return viaShortAsync(abs, (short) => captureAt(layout, short, o));
}

export interface CaptureOptions {
  settleMs: number;
  /** Read a large content twice too (a file written through a memory mapping: no notifications). */
  twice?: boolean;
  /** The clocks the settling time is judged on (tests step the wall clock). */
  clock?: SettleClock;
}

/**
 * Check 1's clocks. A change time is wall-clock time (the kernel's), so its age is only known
 * while the wall clock runs steadily: a step forward (NTP at boot, an operator's `date -s`) makes
 * a file being written look old enough to read. The monotonic clock cannot be stepped, so the
 * offset between the two shows a step; for a while after one (longer than any settling time),
 * a file is judged by how long it was seen unchanged, on the monotonic clock, instead.
 */
export class SettleClock {
  private offset: number;
  private lastStep = Number.NEGATIVE_INFINITY;
  private readonly seen = new Map<string, { version: string; at: number }>();

  constructor(
    readonly wall: () => number = Date.now,
    readonly mono: () => number = () => performance.now()
  ) {
    this.offset = wall() - mono();
  }

  /** Milliseconds `v` must still hold still before `abs` is read (0: read now). */
  waitMs(abs: string, v: FileVersion, baseMs: number): number {
    const needed = settleMs(v.size, baseMs);
    const mono = this.mono();
    const offset = this.wall() - mono;
    // Slewing moves the offset by at most half a millisecond a second; a step moves it at once.
    if (Math.abs(offset - this.offset) > 250) {
      this.lastStep = mono;
    }
    this.offset = offset;
    if (mono - this.lastStep > STEP_DISTRUST_MS) {
      this.seen.clear();
      // One far in the future means the clock was set back before this process noticed:
      // waiting for it would never end.
      const age = this.wall() - v.ctimeMs;
      return age < -1000 ? 0 : Math.max(0, needed - age);
    }
    const version = `${v.dev}:${v.ino}:${v.size}:${v.mtimeNs}:${v.ctimeNs}`;
    const prev = this.seen.get(abs);
    if (!prev || prev.version !== version) {
      if (this.seen.size >= 100_000) {
        this.seen.clear();
      }
      this.seen.set(abs, { version, at: mono });
      return needed;
    }
    return Math.max(0, needed - (mono - prev.at));
  }
}

/** How long after a step of the wall clock change times are not trusted (above the longest settling time). */
const STEP_DISTRUST_MS = 10_000;

const defaultClock = new SettleClock();

async function captureAt(layout: StoreLayout, abs: FsPath, o: CaptureOptions): Promise<Capture> {
  let before: FileVersion;
  try {
    before = versionOf(fs.lstatSync(abs, { bigint: true }));
  } catch (e) {
    return failure(e);
  }
  if ((before.mode & fs.constants.S_IFMT) !== fs.constants.S_IFREG) {
    return { kind: 'unstable', why: 'not a regular file any more' };
  }
  // The change time, which the kernel sets (the modification time can be set to anything).
  const wait = (o.clock ?? defaultClock).waitMs(
    typeof abs === 'string' ? abs : abs.toString('latin1'),
    before,
    o.settleMs
  );
  if (wait > 0) {
    return { kind: 'hot', waitMs: Math.ceil(wait) };
  }
  const after = (): FileVersion | undefined => {
    try {
      return versionOf(fs.lstatSync(abs, { bigint: true }));
    } catch {
      return undefined;
    }
  };
  if (before.size <= SMALL_FILE_BYTES) {
    let data: Buffer;
    try {
      if (before.size <= INLINE_BYTES) {
        // Plain system calls: for small contents they cost less than the thread pool's round trips.
        const fd = fs.openSync(abs, 'r');
        try {
          if (Number(fs.fstatSync(fd, { bigint: true }).ino) !== before.ino) {
            return { kind: 'unstable', why: 'replaced while opened' };
          }
          data = readAll(fd, before.size);
          if (data.length <= DOUBLE_READ_BYTES && !readAll(fd, before.size).equals(data)) {
            return { kind: 'unstable', why: 'two reads differ' };
          }
        } finally {
          fs.closeSync(fd);
        }
      } else {
        const fh = await fs.promises.open(abs, 'r');
        try {
          if (Number((await fh.stat({ bigint: true })).ino) !== before.ino) {
            return { kind: 'unstable', why: 'replaced while opened' };
          }
          data = await readAllAsync(fh, before.size);
          if (data.length <= DOUBLE_READ_BYTES && !(await readAllAsync(fh, before.size)).equals(data)) {
            return { kind: 'unstable', why: 'two reads differ' };
          }
        } finally {
          await fh.close();
        }
      }
    } catch (e) {
      return failure(e);
    }
    const a = after();
    if (!a) {
      return { kind: 'gone' };
    }
    if (!sameVersion(before, a) || data.length !== before.size) {
      return { kind: 'unstable', why: 'changed while read' };
    }
    const hash = hashBuffer(layout.hash, data);
    if (data.length <= INLINE_BYTES) {
      return { kind: 'ok', hash, size: data.length, stat: before, data };
    }
    // Too large to travel in its record: durable on its own before the record is written.
    const tmp = path.join(layout.tmp, randomUUID());
    const fh = await fs.promises.open(tmp, 'wx', OBJECT_MODE);
    try {
      await fh.writeFile(data);
      await fh.datasync();
    } finally {
      await fh.close();
    }
    return { kind: 'ok', hash, size: data.length, stat: before, tmp };
  }
  const tmp = path.join(layout.tmp, randomUUID());
  try {
    const { hash, bytes } = await copyWritingBack(abs, tmp, layout);
    if (o.twice && (await hashFileInWorker(abs, layout.hash)) !== hash) {
      fs.rmSync(tmp, { force: true });
      return { kind: 'unstable', why: 'two reads differ' };
    }
    const a = after();
    if (!a) {
      fs.rmSync(tmp, { force: true });
      return { kind: 'gone' };
    }
    if (!sameVersion(before, a) || bytes !== before.size) {
      fs.rmSync(tmp, { force: true });
      return { kind: 'unstable', why: 'changed while copied' };
    }
    await fsyncFile(tmp);
    return { kind: 'ok', hash, size: bytes, stat: before, tmp };
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    return failure(e);
  }
}

async function fsyncFile(file: string): Promise<void> {
  const fh = await fs.promises.open(file, 'r');
  try {
    await fh.datasync();
  } finally {
    await fh.close();
  }
}

/** How often a large copy's written pages are pushed to the disk while the copy runs. */
const WRITEBACK_EVERY_MS = 20;

/**
 * Copies `from` to `to` in the kernel while pushing what is already written to the disk
 * (fdatasync from the thread pool), so the fsync at the end only waits for the last pieces; a
 * worker thread hashes the copy as it grows: the hash names exactly the bytes stored, even if
 * the source changed during the copy (the checks around the copy see that).
 */
async function copyWritingBack(
  from: FsPath,
  to: string,
  layout: StoreLayout
): Promise<{ hash: string; bytes: number }> {
  return hashWhileWritten(to, layout.hash, async () => {
    let copying = true;
    const copy = fs.promises.copyFile(from, to).finally(() => (copying = false));
    const writeBack = (async () => {
      while (copying) {
        await new Promise((r) => setTimeout(r, WRITEBACK_EVERY_MS));
        if (!copying) {
          break;
        }
        const fh = await fs.promises.open(to, 'r').catch(() => undefined);
        if (!fh) {
          continue;
        }
        try {
          await fh.datasync();
        } catch {
          // The final fsync reports what matters.
        } finally {
          await fh.close();
        }
      }
    })();
    await Promise.all([copy, writeBack]);
  });
}

/**
 * Makes a checked capture an object. A content of up to 64 KiB is written beside and renamed
 * into place without an fsync (its record carries it); an existing object is kept only when its
 * bytes hash to its name (checked once per run: `verified`, which pruning empties), and replaced
 * otherwise. A larger content's fsynced copy is renamed over whatever is there (it was hashed
 * from its own bytes), and its directory goes into `dirsToSync`.
 */
export function storeCaptured(
  layout: StoreLayout,
  c: Extract<Capture, { kind: 'ok' }>,
  verified: Set<string>,
  dirsToSync: Set<string>
): { stored: boolean; replacedDamaged: boolean } {
  const obj = layout.object(c.hash);
  if (c.tmp !== undefined) {
    fs.chmodSync(c.tmp, OBJECT_MODE); // the kernel copy took the source's mode
    fs.renameSync(c.tmp, obj);
    dirsToSync.add(path.dirname(obj));
    verified.add(c.hash);
    return { stored: true, replacedDamaged: false };
  }
  const data = c.data as Buffer;
  let replacedDamaged = false;
  if (verified.has(c.hash)) {
    return { stored: false, replacedDamaged };
  }
  if (fs.existsSync(obj)) {
    let ok = false;
    try {
      ok = hashBuffer(layout.hash, fs.readFileSync(obj)) === c.hash;
    } catch {
      ok = false;
    }
    if (ok) {
      verified.add(c.hash);
      return { stored: false, replacedDamaged };
    }
    replacedDamaged = true;
  }
  const tmp = path.join(layout.tmp, randomUUID());
  fs.writeFileSync(tmp, data, { mode: OBJECT_MODE });
  fs.renameSync(tmp, obj);
  if (verified.size > 100_000) {
    verified.clear();
  }
  verified.add(c.hash);
  return { stored: true, replacedDamaged };
}
