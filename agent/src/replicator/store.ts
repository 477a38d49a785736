// The store in `target`:
//   vigil-store.json   format marker: format, version, the content hash algorithm (digest.ts)
//   lease.json         who writes here (node, process, pid, epoch); created whole or not at all
//   journal/           the journal: segments, their indexes, tree snapshots (segments.ts)
//   objects/ab/abcd…   file contents by their hash (BLAKE3, or SHA-256 in version 1 stores),
//                      owner-read-only (0400), written to tmp/, fsynced, renamed
//   mirror/            the current tree; regular files are copies (or reflinks) of their objects
// Everything in it is owner-only: directories 0700, files 0600 (modes.ts).
//   mirror.seq         the last journal sequence number applied to mirror/
//   tmp/               work files; emptied at every start
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { HASH_ALGORITHMS, algorithmFor, type HashAlgorithm, type HashChoice } from './digest';
import { DIR_MODE, FILE_MODE } from './modes';

export const STORE_FORMAT = 'vigil-cdp-store';

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
  /** The journal's directory (segments, indexes, snapshots). */
  get journal(): string {
    return path.join(this.root, 'journal');
  }
  /** The single journal file of a store written before segments (version 2 and older). */
  get legacyJournal(): string {
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

/**
 * The marker's version: 3 keeps the journal in segments (journal/), 2 recorded the hash
 * algorithm, version 1 stores are SHA-256. Older versions are read and upgraded; a newer one is
 * refused (it was written by a newer vigil-agent).
 */
export const STORE_VERSION = 3;

/**
 * The hash algorithm the marker names, or undefined when there is no marker yet. Throws
 * NotAStoreError for a marker that is not ours or names an algorithm this build does not know.
 */
function readMarker(layout: StoreLayout): HashAlgorithm | undefined {
  let text: string;
  try {
    text = fs.readFileSync(layout.marker, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      return undefined;
    }
    throw e;
  }
  let m: { format?: unknown; version?: unknown; hash?: unknown };
  try {
    m = JSON.parse(text) as typeof m;
  } catch {
    throw new NotAStoreError(`${layout.marker}: not valid JSON`);
  }
  if (m?.format !== STORE_FORMAT) {
    throw new NotAStoreError(
      `${layout.marker}: format is ${JSON.stringify(m?.format)}, not ${JSON.stringify(STORE_FORMAT)}`
    );
  }
  if (typeof m.version === 'number' && m.version > STORE_VERSION) {
    throw new NotAStoreError(
      `${layout.marker}: version ${m.version} is newer than this vigil-agent knows (${STORE_VERSION}); a newer version wrote this store`
    );
  }
  if (m.hash === undefined) {
    return 'sha256';
  }
  if (!(HASH_ALGORITHMS as readonly unknown[]).includes(m.hash)) {
    throw new NotAStoreError(
      `${layout.marker}: hash ${JSON.stringify(m.hash)} is not one this vigil-agent knows (${HASH_ALGORITHMS.join(', ')}); a newer version wrote this store`
    );
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
    if (e instanceof NotAStoreError) {
      throw new NotAStoreError(`${dir} is not a Vigil replicator store (${e.message})`);
    }
    throw e;
  }
  if (hash === undefined) {
    throw new NotAStoreError(`${dir} is not a Vigil replicator store (no vigil-store.json)`);
  }
  layout.hash = hash;
  return layout;
}

/**
 * Creates the layout (idempotent) and sets `layout.hash`: the algorithm an existing store
 * names in its marker, whatever `choice` says, or `choice` for a new store.
 */
export function prepareStore(layout: StoreLayout, choice: HashChoice = 'auto'): HashAlgorithm {
  // Owner only (modes.ts); existing directories keep their modes here: tightenTop() fixes them.
  fs.mkdirSync(layout.root, { recursive: true, mode: DIR_MODE });
  for (const d of [layout.objects, layout.mirror, layout.tmp, layout.journal]) {
    fs.mkdirSync(d, { recursive: true, mode: DIR_MODE });
  }
  // All 256 fan-out directories up front: storing an object is then one rename, no mkdir.
  for (let i = 0; i < 256; i++) {
    fs.mkdirSync(path.join(layout.objects, i.toString(16).padStart(2, '0')), { recursive: true, mode: DIR_MODE });
  }
  let hash = readMarker(layout);
  if (hash === undefined) {
    hash = algorithmFor(choice);
    // A new store is owner-only from its first file on: nothing to tighten later.
    writeMarker(layout, hash, new Date().toISOString(), true);
  } else if (markerVersion(layout) < STORE_VERSION) {
    // An older store: from now on its journal grows in segments (the old file is read as the first).
    writeMarker(
      layout,
      hash,
      markerCreatedAt(layout) ?? new Date().toISOString(),
      markerJson(layout).ownerOnly === true
    );
  }
  layout.hash = hash;
  return hash;
}

function writeMarker(layout: StoreLayout, hash: HashAlgorithm, createdAt: string, ownerOnly: boolean): void {
  writeFileDurably(
    layout.marker,
    JSON.stringify({
      format: STORE_FORMAT,
      version: STORE_VERSION,
      hash,
      createdAt,
      ...(ownerOnly ? { ownerOnly } : {}),
    }) + '\n'
  );
}

function markerJson(layout: StoreLayout): { version?: unknown; createdAt?: unknown; ownerOnly?: unknown } {
  try {
    return JSON.parse(fs.readFileSync(layout.marker, 'utf8')) as {
      version?: unknown;
      createdAt?: unknown;
      ownerOnly?: unknown;
    };
  } catch {
    return {};
  }
}

/**
 * Whether every entry of the store was made (or has been tightened) owner-only: `ownerOnly` in
 * the marker. Stores of earlier versions lack it until the replicator's first pass (tightenAll).
 */
export function isOwnerOnly(layout: StoreLayout): boolean {
  return markerJson(layout).ownerOnly === true;
}

/** Records in the marker that the whole store is owner-only (after tightenAll). */
export function markOwnerOnly(layout: StoreLayout): void {
  writeMarker(layout, layout.hash, markerCreatedAt(layout) ?? new Date().toISOString(), true);
}

function markerVersion(layout: StoreLayout): number {
  const v = markerJson(layout).version;
  return typeof v === 'number' ? v : 1;
}

function markerCreatedAt(layout: StoreLayout): string | undefined {
  const c = markerJson(layout).createdAt;
  return typeof c === 'string' ? c : undefined;
}

/** Empties tmp/ of what a previous writer left; only the lease holder may do this. */
export function cleanTmp(layout: StoreLayout): void {
  for (const f of fs.readdirSync(layout.tmp)) {
    fs.rmSync(path.join(layout.tmp, f), { recursive: true, force: true });
  }
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

/**
 * Writes a file so that after a crash it is either the old or the new content: into a
 * temporary file (beside it, or in `o.tmpDir`), fsynced, renamed into place, its directory
 * fsynced. Owner-only (0600, or `o.mode`).
 */
export function writeFileDurably(
  file: string,
  data: string | Buffer,
  o: { mode?: number; tmpDir?: string } = {}
): void {
  const tmp =
    o.tmpDir === undefined
      ? `${file}.${process.pid}.tmp`
      : path.join(o.tmpDir, `${path.basename(file)}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`);
  const fd = fs.openSync(tmp, 'w', o.mode ?? 0o600);
  try {
    fs.writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
  fsyncDir(path.dirname(file));
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
  /**
   * Grows by one at every acquisition: the writer's journal segments carry it, and a segment
   * with an older epoch than one before it is not part of the journal (fencing). Leases from
   * before epochs read as 0.
   */
  epoch: number;
}

export type LeaseResult = { held: true; lease: Lease } | { held: false; holder: Lease | null; reason: string };

type LeaseFile = { lease: Lease } | { unreadable: string; mtimeMs: number } | null;

/** The lease file: a lease, something unreadable (with its age), or nothing. */
function readLeaseFile(file: string): LeaseFile {
  let text: string;
  let mtimeMs: number;
  try {
    mtimeMs = fs.statSync(file).mtimeMs;
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      return null;
    }
    return { unreadable: (e as Error).message, mtimeMs: 0 };
  }
  if (text.length === 0) {
    return { unreadable: 'empty', mtimeMs };
  }
  try {
    const l = JSON.parse(text) as Partial<Lease>;
    if (typeof l.node !== 'string' || typeof l.pid !== 'number' || typeof l.acquiredAt !== 'string') {
      return { unreadable: 'not a lease', mtimeMs };
    }
    return { lease: { epoch: 0, pidStartTicks: null, process: '', renewedAt: l.acquiredAt, ...l } as Lease };
  } catch {
    return { unreadable: 'not valid JSON', mtimeMs };
  }
}

function readLease(file: string): Lease | null {
  const f = readLeaseFile(file);
  return f && 'lease' in f ? f.lease : null;
}

export interface LeaseOptions {
  node: string;
  process: string;
  /** A lease from another node not renewed for this long is stale. */
  staleAfterMs: number;
  isAlive: (pid: number, startTicks: string | null) => boolean;
  startTicks: string | null;
  /** The highest epoch the store's journal has seen (segment and snapshot names). */
  journalEpoch?: () => number;
  now?: number;
}

/** An empty lease file is what a write cut short leaves (a full disk, a crash): stale this soon. */
const EMPTY_LEASE_STALE_MS = 2000;

/**
 * Takes the lease if it is free or stale. Stale means: held by this node and its pid is no
 * longer that process, or not renewed for `staleAfterMs` (the only rule that can apply to a
 * holder on another node); an empty lease file after 2 s, an unreadable one after
 * `staleAfterMs`. A stale lease is moved aside with rename, which only one contender can do.
 * The new lease is written in full beside it and linked into place (link fails if the name
 * exists), so a lease file is never seen half-written.
 */
export function acquireLease(layout: StoreLayout, o: LeaseOptions): LeaseResult {
  const now = o.now ?? Date.now();
  for (let attempt = 0; attempt < 2; attempt++) {
    const current = readLeaseFile(layout.lease);
    if (current === null) {
      const epoch = Math.max(o.journalEpoch?.() ?? 0, lastEpochSeen(layout)) + 1;
      const mine: Lease = {
        node: o.node,
        process: o.process,
        pid: process.pid,
        pidStartTicks: o.startTicks,
        acquiredAt: new Date(now).toISOString(),
        renewedAt: new Date(now).toISOString(),
        epoch,
      };
      const tmp = path.join(layout.tmp, `lease-new-${randomUUID()}.json`);
      try {
        const fd = fs.openSync(tmp, 'w', FILE_MODE);
        try {
          fs.writeSync(fd, JSON.stringify(mine, null, 2) + '\n');
          fs.fsyncSync(fd);
        } finally {
          fs.closeSync(fd);
        }
        fs.linkSync(tmp, layout.lease);
        fsyncDir(layout.root);
        noteEpoch(layout, epoch);
        return { held: true, lease: mine };
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'EEXIST') {
          continue;
        } // another contender linked first
        if (code === 'ENOENT') {
          return { held: false, holder: null, reason: 'another replicator is cleaning the store; trying again' };
        }
        throw e;
      } finally {
        fs.rmSync(tmp, { force: true });
      }
    }
    const holder = 'lease' in current ? current.lease : null;
    if (holder && holder.node === o.node && holder.pid === process.pid && holder.pidStartTicks === o.startTicks) {
      return { held: true, lease: holder };
    }
    const why = holder
      ? staleReason(holder, o, now)
      : unreadableStale(current as { unreadable: string; mtimeMs: number }, o, now);
    if (!why) {
      return {
        held: false,
        holder,
        reason: holder
          ? `the store is leased to node ${holder.node}, process ${holder.process} (pid ${holder.pid}) since ${holder.acquiredAt}, renewed ${holder.renewedAt}; not writing`
          : `the lease file is unreadable (${(current as { unreadable: string }).unreadable}) and not yet stale; not writing`,
      };
    }
    if (holder) {
      noteEpoch(layout, holder.epoch);
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

/**
 * The highest epoch any lease of this store had, kept in a file of its own: a lease is removed
 * at a clean stop, and epochs must never be handed out twice.
 */
function lastEpochSeen(layout: StoreLayout): number {
  try {
    const n = Number(fs.readFileSync(path.join(layout.root, 'lease.epoch'), 'utf8').trim());
    return Number.isInteger(n) && n >= 0 ? n : 0;
  } catch {
    return 0;
  }
}

function noteEpoch(layout: StoreLayout, epoch: number): void {
  if (epoch <= lastEpochSeen(layout)) {
    return;
  }
  try {
    writeFileDurably(path.join(layout.root, 'lease.epoch'), `${epoch}\n`);
  } catch {
    // The journal's own names carry the epoch too (journalEpoch).
  }
}

function staleReason(holder: Lease, o: LeaseOptions, now: number): string | undefined {
  if (holder.node === o.node && !o.isAlive(holder.pid, holder.pidStartTicks)) {
    return `pid ${holder.pid} on this node is gone`;
  }
  const renewed = Date.parse(holder.renewedAt);
  if (!Number.isFinite(renewed) || now - renewed > o.staleAfterMs) {
    return `not renewed for ${Math.round((now - renewed) / 1000)} s`;
  }
  return undefined;
}

function unreadableStale(f: { unreadable: string; mtimeMs: number }, o: LeaseOptions, now: number): string | undefined {
  const age = now - f.mtimeMs;
  if (f.unreadable === 'empty' && age > EMPTY_LEASE_STALE_MS) {
    return 'the lease file is empty (a write cut short)';
  }
  if (age > o.staleAfterMs) {
    return `the lease file is unreadable (${f.unreadable}) and ${Math.round(age / 1000)} s old`;
  }
  return undefined;
}

/** True while the lease file still names this writer (node, pid, acquisition, epoch). */
export function holdsLease(layout: StoreLayout, lease: Lease): boolean {
  const cur = readLease(layout.lease);
  return (
    cur !== null &&
    cur.pid === lease.pid &&
    cur.node === lease.node &&
    cur.acquiredAt === lease.acquiredAt &&
    cur.epoch === lease.epoch
  );
}

/** Rewrites renewedAt. Returns false when the lease no longer names this process (stop writing). */
export function renewLease(layout: StoreLayout, lease: Lease, now = Date.now()): boolean {
  if (!holdsLease(layout, lease)) {
    return false;
  }
  lease.renewedAt = new Date(now).toISOString();
  const tmp = path.join(layout.tmp, `lease-${process.pid}.json`);
  fs.writeFileSync(tmp, JSON.stringify(lease, null, 2) + '\n', { mode: FILE_MODE });
  fs.renameSync(tmp, layout.lease);
  return true;
}

export function releaseLease(layout: StoreLayout, lease: Lease): void {
  if (holdsLease(layout, lease)) {
    fs.rmSync(layout.lease, { force: true });
  }
}
