// The store in `target`:
//   vigil-store.json   format marker: format, version, the content hash algorithm (digest.ts)
//   lease.json         who writes here (node, process, pid); taken with O_EXCL
//   journal.log        the append-only journal (journal.ts)
//   objects/ab/abcd…   file contents by their hash (BLAKE3, or SHA-256 in version 1 stores),
//                      read-only, written to tmp/, fsynced, renamed
//   mirror/            the current tree; regular files are hard links to their objects
//   mirror.seq         the last journal sequence number applied to mirror/
//   tmp/               work files; emptied at every start
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { frame, readJournal, type JournalRecord } from './journal';
import { HASH_ALGORITHMS, algorithmFor, hashBuffer, type HashAlgorithm, type HashChoice } from './digest';
import { hashFileInWorker } from './hash';
import { apply, type Tree } from './tree';

export const STORE_FORMAT = 'vigil-cdp-store';
/** Contents up to this size are read into memory, hashed and written; larger ones are copied by the kernel, then hashed. */
const SMALL_FILE_BYTES = 4 * 1024 * 1024;
/**
 * Contents up to this size travel inside their journal record, so the record's fsync makes
 * them durable too: their object file is written without an fsync of its own (one fsync per
 * batch instead of one per file). A checkpoint fsyncs such objects later, off the capture path.
 */
export const INLINE_BYTES = 64 * 1024;

export class StoreLayout {
  /** How this store names its contents; set from the marker by prepareStore / openStoreForReading. */
  hash: HashAlgorithm = 'sha256';
  constructor(readonly root: string) {}
  get marker(): string {
    return path.join(this.root, 'vigil-store.json');
  }
  get lease(): string {
    return path.join(this.root, 'lease.json');
  }
  get journal(): string {
    return path.join(this.root, 'journal.log');
  }
  get objects(): string {
    return path.join(this.root, 'objects');
  }
  get mirror(): string {
    return path.join(this.root, 'mirror');
  }
  get mirrorSeq(): string {
    return path.join(this.root, 'mirror.seq');
  }
  get tmp(): string {
    return path.join(this.root, 'tmp');
  }
  object(hash: string): string {
    return path.join(this.root, 'objects', hash.slice(0, 2), hash);
  }
}

export class NotAStoreError extends Error {}

/** The marker's version: 2 records the hash algorithm; version 1 stores are SHA-256. */
export const STORE_VERSION = 2;

/**
 * The hash algorithm the marker names, or undefined when there is no marker yet. Throws
 * NotAStoreError for a marker that is not ours or names an algorithm this build does not know.
 */
function readMarker(layout: StoreLayout): HashAlgorithm | undefined {
  let text: string;
  try {
    text = fs.readFileSync(layout.marker, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  let m: { format?: unknown; version?: unknown; hash?: unknown };
  try {
    m = JSON.parse(text) as typeof m;
  } catch {
    throw new NotAStoreError(`${layout.marker}: not valid JSON`);
  }
  if (m?.format !== STORE_FORMAT) throw new NotAStoreError(`${layout.marker}: format is ${JSON.stringify(m?.format)}, not ${JSON.stringify(STORE_FORMAT)}`);
  if (m.hash === undefined) return 'sha256';
  if (!(HASH_ALGORITHMS as readonly unknown[]).includes(m.hash)) {
    throw new NotAStoreError(`${layout.marker}: hash ${JSON.stringify(m.hash)} is not one this vigil-agent knows (${HASH_ALGORITHMS.join(', ')}); a newer version wrote this store`);
  }
  return m.hash as HashAlgorithm;
}

/** Checks that `dir` is a store (for the read-only commands). */
export function openStoreForReading(dir: string): StoreLayout {
  const layout = new StoreLayout(dir);
  let hash: HashAlgorithm | undefined;
  try {
    hash = readMarker(layout);
  } catch (e) {
    if (e instanceof NotAStoreError) throw new NotAStoreError(`${dir} is not a Vigil replicator store (${e.message})`);
    throw e;
  }
  if (hash === undefined) throw new NotAStoreError(`${dir} is not a Vigil replicator store (no vigil-store.json)`);
  layout.hash = hash;
  return layout;
}

/**
 * Creates the layout (idempotent) and sets `layout.hash`: the algorithm an existing store
 * names in its marker, whatever `choice` says, or `choice` for a new store.
 */
export function prepareStore(layout: StoreLayout, choice: HashChoice = 'auto'): HashAlgorithm {
  fs.mkdirSync(layout.root, { recursive: true });
  for (const d of [layout.objects, layout.mirror, layout.tmp]) fs.mkdirSync(d, { recursive: true });
  // All 256 fan-out directories up front: storing an object is then one rename, no mkdir.
  for (let i = 0; i < 256; i++) fs.mkdirSync(path.join(layout.objects, i.toString(16).padStart(2, '0')), { recursive: true });
  let hash = readMarker(layout);
  if (hash === undefined) {
    hash = algorithmFor(choice);
    writeFileDurably(layout.marker, JSON.stringify({ format: STORE_FORMAT, version: STORE_VERSION, hash, createdAt: new Date().toISOString() }) + '\n');
  }
  layout.hash = hash;
  return hash;
}

/** Empties tmp/ of what a previous writer left; only the lease holder may do this. */
export function cleanTmp(layout: StoreLayout): void {
  for (const f of fs.readdirSync(layout.tmp)) fs.rmSync(path.join(layout.tmp, f), { recursive: true, force: true });
}

/** fsyncs a directory without blocking the event loop (many run side by side on the thread pool). */
export async function fsyncDirAsync(dir: string): Promise<void> {
  const fh = await fs.promises.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Writes a small file so that after a crash it is either the old or the new content. */
export function writeFileDurably(file: string, text: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = fs.openSync(tmp, 'w', 0o600);
  try {
    fs.writeSync(fd, text);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
  fsyncDir(path.dirname(file));
}

export interface Captured {
  hash: string;
  size: number;
  /** The source's stat taken before the read; the content matched it throughout. */
  stat: fs.Stats;
  /** False when the object already existed (identical content stored once). */
  stored: boolean;
  /** The content, for a small file whose object is not fsynced yet (it goes in the record). */
  inline?: Buffer;
}

function sameVersion(a: fs.Stats, b: fs.Stats): boolean {
  return a.size === b.size && a.mtimeMs === b.mtimeMs && a.ino === b.ino && a.ctimeMs === b.ctimeMs;
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
 * (fdatasync from another thread), so the fsync at the end only waits for the last pieces
 * instead of the whole file: the disk works while the processors copy and hash.
 */
async function copyWritingBack(from: string, to: string): Promise<void> {
  let copying = true;
  const copy = fs.promises.copyFile(from, to).finally(() => (copying = false));
  const writeBack = (async () => {
    while (copying) {
      await new Promise((r) => setTimeout(r, WRITEBACK_EVERY_MS));
      if (!copying) break;
      const fh = await fs.promises.open(to, 'r').catch(() => undefined);
      if (!fh) continue;
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
}

/**
 * A content of up to INLINE_BYTES, stored without any wait: every step is a page-cache
 * operation (no fsync; the record carries the content), so plain system calls cost far less
 * than the thread pool's round trips. Returns 'large' for a file to store the other way.
 */
function captureSmallFile(layout: StoreLayout, abs: string): Captured | 'gone' | 'unstable' | 'large' {
  const before = fs.lstatSync(abs, { throwIfNoEntry: false });
  if (!before) return 'gone';
  if (!before.isFile()) return 'unstable';
  if (before.size > INLINE_BYTES) return 'large';
  let buf: Buffer;
  try {
    buf = fs.readFileSync(abs);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return 'gone';
    throw e;
  }
  if (buf.length > INLINE_BYTES) return 'unstable';
  const hash = hashBuffer(layout.hash, buf);
  const after = fs.lstatSync(abs, { throwIfNoEntry: false });
  if (!after) return 'gone';
  if (!sameVersion(before, after) || buf.length !== before.size) return 'unstable';
  const obj = layout.object(hash);
  let stored = false;
  if (!fs.existsSync(obj)) {
    const tmp = path.join(layout.tmp, randomUUID());
    fs.writeFileSync(tmp, buf, { mode: 0o444 });
    fs.renameSync(tmp, obj);
    stored = true;
  }
  return { hash, size: buf.length, stat: before, stored, inline: buf };
}

/**
 * Stores the content of source file `abs` as an object. Returns 'gone' when the file vanished
 * and 'unstable' when it changed while being read (the caller tries again later). A content
 * larger than INLINE_BYTES is durable (fsynced and renamed into objects/) when this resolves,
 * and the caller fsyncs the object directories (`dirsToSync`) before writing the journal
 * record that names it; a smaller one comes back in `inline`, for the record to carry.
 */
export async function captureFile(layout: StoreLayout, abs: string, dirsToSync: Set<string>): Promise<Captured | 'gone' | 'unstable'> {
  const small = captureSmallFile(layout, abs);
  if (small !== 'large') return small;
  let before: fs.Stats;
  try {
    before = await fs.promises.lstat(abs);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ENOTDIR') return 'gone';
    throw e;
  }
  if (!before.isFile()) return 'unstable';
  const tmp = path.join(layout.tmp, randomUUID());
  let hash: string;
  let size: number;
  let stored = false;
  let inline: Buffer | undefined;
  try {
    if (before.size <= SMALL_FILE_BYTES) {
      const buf = await fs.promises.readFile(abs);
      size = buf.length;
      hash = hashBuffer(layout.hash, buf);
      if (!fs.existsSync(layout.object(hash))) {
        const fh = await fs.promises.open(tmp, 'w', 0o444);
        try {
          await fh.writeFile(buf);
          if (size > INLINE_BYTES) await fh.datasync();
        } finally {
          await fh.close();
        }
        stored = true;
      }
      if (size <= INLINE_BYTES) inline = buf;
    } else {
      // The kernel copies (or reflinks) the data while a worker thread hashes the source; the
      // stat comparison below proves both saw the same unchanged file.
      [, hash] = await Promise.all([copyWritingBack(abs, tmp), hashFileInWorker(abs, layout.hash)]);
      size = (await fs.promises.stat(tmp)).size;
      if (!fs.existsSync(layout.object(hash))) {
        await fs.promises.chmod(tmp, 0o444);
        await fsyncFile(tmp);
        stored = true;
      }
    }
    const after = await fs.promises.lstat(abs).catch(() => undefined);
    if (!after) return 'gone';
    if (!sameVersion(before, after) || size !== before.size) return 'unstable';
    if (stored) {
      const dir = path.dirname(layout.object(hash));
      await fs.promises.rename(tmp, layout.object(hash));
      dirsToSync.add(dir);
    }
    return { hash, size, stat: before, stored, inline };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return 'gone';
    throw e;
  } finally {
    await fs.promises.rm(tmp, { force: true });
  }
}

// ---------------------------------------------------------------------------------------
// Lease

export interface Lease {
  node: string;
  process: string;
  pid: number;
  /** /proc start time of the pid, so a reused pid is not taken for the holder. */
  pidStartTicks: string | null;
  acquiredAt: string;
  renewedAt: string;
}

export type LeaseResult = { held: true; lease: Lease } | { held: false; holder: Lease | null; reason: string };

function readLease(file: string): Lease | null {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as Lease;
  } catch {
    return null;
  }
}

export interface LeaseOptions {
  node: string;
  process: string;
  /** A lease from another node not renewed for this long is stale. */
  staleAfterMs: number;
  isAlive: (pid: number, startTicks: string | null) => boolean;
  startTicks: string | null;
  now?: number;
}

/**
 * Takes the lease if it is free or stale. Stale means: held by this node and its pid is no
 * longer that process, or not renewed for `staleAfterMs` (the only rule that can apply to a
 * holder on another node). A stale lease is moved aside with rename, which only one
 * contender can do, before the new one is created with O_EXCL.
 */
export function acquireLease(layout: StoreLayout, o: LeaseOptions): LeaseResult {
  const now = o.now ?? Date.now();
  const mine: Lease = {
    node: o.node,
    process: o.process,
    pid: process.pid,
    pidStartTicks: o.startTicks,
    acquiredAt: new Date(now).toISOString(),
    renewedAt: new Date(now).toISOString(),
  };
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = fs.openSync(layout.lease, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o644);
      try {
        fs.writeSync(fd, JSON.stringify(mine, null, 2) + '\n');
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      fsyncDir(layout.root);
      return { held: true, lease: mine };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const holder = readLease(layout.lease);
    if (holder && holder.node === o.node && holder.pid === process.pid && holder.pidStartTicks === o.startTicks) {
      return { held: true, lease: holder };
    }
    const why = staleReason(holder, o, now);
    if (!why) {
      return {
        held: false,
        holder,
        reason: holder
          ? `the store is leased to node ${holder.node}, process ${holder.process} (pid ${holder.pid}) since ${holder.acquiredAt}, renewed ${holder.renewedAt}; not writing`
          : 'the lease file is unreadable and not yet stale; not writing',
      };
    }
    const aside = path.join(layout.tmp, `stale-lease-${randomUUID()}.json`);
    try {
      fs.renameSync(layout.lease, aside);
    } catch {
      continue; // someone else moved it first; try again from the start
    }
  }
  const holder = readLease(layout.lease);
  return { held: false, holder, reason: 'another replicator took the lease at the same moment' };
}

function staleReason(holder: Lease | null, o: LeaseOptions, now: number): string | undefined {
  if (holder === null) {
    return undefined;
  }
  if (holder.node === o.node && !o.isAlive(holder.pid, holder.pidStartTicks)) return `pid ${holder.pid} on this node is gone`;
  const renewed = Date.parse(holder.renewedAt);
  if (!Number.isFinite(renewed) || now - renewed > o.staleAfterMs) return `not renewed for ${Math.round((now - renewed) / 1000)} s`;
  return undefined;
}

/** Rewrites renewedAt. Returns false when the lease no longer names this process (stop writing). */
export function renewLease(layout: StoreLayout, lease: Lease, now = Date.now()): boolean {
  const cur = readLease(layout.lease);
  if (!cur || cur.pid !== lease.pid || cur.node !== lease.node || cur.acquiredAt !== lease.acquiredAt) return false;
  lease.renewedAt = new Date(now).toISOString();
  const tmp = path.join(layout.tmp, `lease-${process.pid}.json`);
  fs.writeFileSync(tmp, JSON.stringify(lease, null, 2) + '\n', { mode: 0o644 });
  fs.renameSync(tmp, layout.lease);
  return true;
}

export function releaseLease(layout: StoreLayout, lease: Lease): void {
  const cur = readLease(layout.lease);
  if (cur && cur.pid === lease.pid && cur.node === lease.node && cur.acquiredAt === lease.acquiredAt) {
    fs.rmSync(layout.lease, { force: true });
  }
}

// ---------------------------------------------------------------------------------------
// Retention

export interface PruneResult {
  cutoff: number;
  recordsBefore: number;
  recordsAfter: number;
  objectsRemoved: number;
  bytesRemoved: number;
}

/**
 * Drops what no restore at or after `cutoff` needs: the journal becomes a base record, the
 * tree as it was at `cutoff` (each entry with its original record), then every later record.
 * Restores at any moment from `cutoff` on give exactly what they gave before. The new journal
 * is written beside the old one, fsynced and renamed over it; only then are objects no
 * record names any more removed.
 */
export function compact(layout: StoreLayout, records: readonly JournalRecord[], cutoff: number): { records: JournalRecord[]; bytes: number; result: PruneResult } {
  const before: Tree = new Map();
  let i = 0;
  let seqBase = 0;
  for (; i < records.length; i++) {
    const r = records[i] as JournalRecord;
    if (r.at > cutoff) break;
    apply(before, r);
    seqBase = r.q;
  }
  const first = records[0];
  const alreadyBase = first?.op === 'base' && first.from >= cutoff;
  if (i === 0 || alreadyBase) {
    return { records: [...records], bytes: -1, result: { cutoff, recordsBefore: records.length, recordsAfter: records.length, objectsRemoved: 0, bytesRemoved: 0 } };
  }
  // Entries keep their own records (and sequence numbers, which stay increasing): their
  // versions remain listed with the time they were captured.
  const kept = [...before.values()].sort((a, b) => a.q - b.q).map(withoutInline);
  const base: JournalRecord = { q: kept[0] ? Math.max(0, kept[0].q - 1) : seqBase, at: kept[0]?.at ?? cutoff, op: 'base', from: cutoff };
  // The caller checkpointed first: every object is durable, inline copies are not needed.
  const out: JournalRecord[] = [base, ...kept, ...records.slice(i).filter((r) => r.op !== 'sync').map(withoutInline)];
  const tmp = path.join(layout.tmp, `journal-${randomUUID()}.log`);
  const fd = fs.openSync(tmp, 'w', 0o600);
  let bytes = 0;
  try {
    const chunk: Buffer[] = [];
    let chunkBytes = 0;
    for (const r of out) {
      const f = frame(r);
      chunk.push(f);
      chunkBytes += f.length;
      if (chunkBytes > 1 << 20) {
        bytes += fs.writeSync(fd, Buffer.concat(chunk));
        chunk.length = 0;
        chunkBytes = 0;
      }
    }
    if (chunk.length > 0) bytes += fs.writeSync(fd, Buffer.concat(chunk));
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, layout.journal);
  fsyncDir(layout.root);

  const referenced = new Set<string>();
  for (const r of out) if (r.op === 'file') referenced.add(r.h);
  let objectsRemoved = 0;
  let bytesRemoved = 0;
  for (const d of fs.readdirSync(layout.objects)) {
    const dir = path.join(layout.objects, d);
    for (const h of fs.readdirSync(dir)) {
      if (referenced.has(h)) continue;
      const f = path.join(dir, h);
      try {
        bytesRemoved += fs.statSync(f).size;
        fs.rmSync(f, { force: true });
        objectsRemoved++;
      } catch {
        // gone meanwhile
      }
    }
  }
  return { records: out, bytes, result: { cutoff, recordsBefore: records.length, recordsAfter: out.length, objectsRemoved, bytesRemoved } };
}

function withoutInline<R extends JournalRecord>(r: R): R {
  if (r.op !== 'file' || r.d === undefined) return r;
  const { d: _d, ...rest } = r;
  return rest as R;
}

export { readJournal };
