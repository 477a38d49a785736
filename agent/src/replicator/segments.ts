// The journal as a directory of bounded files (`target/journal/`):
//
//   seg-<first>-e<epoch>.log    a segment: a header frame, then records from sequence number
//                               `first` on, appended by the writer that held the lease with that
//                               epoch. Every writer starts a segment of its own, and a segment is
//                               sealed (the next one started) at 64 MiB or when it is older than
//                               the pruning period. A sealed segment loses its inline contents
//                               (rewritten without them once a checkpoint made them redundant).
//   seg-<first>-e<epoch>.idx    the index of a sealed segment: its records' times, the paths and
//                               objects they name, so `versions` and pruning read only what they need.
//   tree-<upTo>-e<epoch>.snap   a tree snapshot: the protected tree after record `upTo`, so a
//                               start or a restore replays from there instead of from the beginning.
//                               The first one after pruning is the journal's base: nothing before
//                               it can be restored.
//
// Fencing: a segment's header names the segment it continues and the last record of that one
// that counts (`prevLast`). A writer that lost the lease while frozen and wrote on (into its
// old segment, or into a new one with its old epoch) cannot reach readers: its records lie
// after a bound or in a segment whose epoch is older than one before it. Nothing is truncated
// or repaired in place, so no valid record is ever dropped. A writer that counted no record
// (stopped with nothing to record, killed in its first append) leaves a segment where the next
// one starts too: the next one's header names it, and it stays in the chain as an empty link.
//
// Stores written before segments (marker version 2) have one file, `target/journal.log`; it
// is read as a segment of epoch 0 until pruning or sealing replaces it.
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { crc32 } from 'node:zlib';
import {
  frame,
  numbered,
  readFdFrames,
  type Damage,
  type PayloadFilter,
  type FileRecord,
  type JournalRecord,
  type NewRecord,
  type SegmentHeader,
  type TreeHeader,
} from './journal';
import { fsyncDir } from './store';
import { apply, type Entry, type Tree } from './tree';

/** A segment is sealed once it holds this much. */
export const SEGMENT_BYTES = 64 * 1024 * 1024;
export const LEGACY_JOURNAL = 'journal.log';

const pad = (n: number, width: number) => String(n).padStart(width, '0');
export const segmentName = (first: number, epoch: number) => `seg-${pad(first, 20)}-e${pad(epoch, 10)}.log`;
export const snapshotName = (upTo: number, epoch: number) => `tree-${pad(upTo, 20)}-e${pad(epoch, 10)}.snap`;
export const indexName = (segment: string) => segment.replace(/\.log$/, '.idx');
const SEGMENT_RE = /^seg-(\d{20})-e(\d{10})\.log$/;
const SNAPSHOT_RE = /^tree-(\d{20})-e(\d{10})\.snap$/;

export interface SegmentFile {
  name: string;
  file: string;
  first: number;
  epoch: number;
  /** The single journal file of a store from before segments. */
  legacy: boolean;
}

export interface ChainSegment extends SegmentFile {
  header?: SegmentHeader;
  /** Records after this sequence number are not part of the journal (a later writer's bound). */
  last?: number;
}

export interface SnapshotFile {
  name: string;
  file: string;
  upTo: number;
  epoch: number;
}

export interface Chain {
  dir: string;
  segments: ChainSegment[];
  snapshots: SnapshotFile[];
  /** Segments left out of the journal, and why (written by a writer that had lost the lease). */
  ignored: Array<{ name: string; file: string; first: number; why: string }>;
  problems: string[];
}

export function journalDir(root: string): string {
  return path.join(root, 'journal');
}

function firstFrame(file: string): JournalRecord | SegmentHeader | TreeHeader | undefined {
  let out: JournalRecord | SegmentHeader | TreeHeader | undefined;
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return undefined;
  }
  try {
    const res = readFdFrames(
      fd,
      (r) => {
        out = r;
        return true;
      },
      64 * 1024
    );
    if (res.header) {
      out = res.header;
    }
  } finally {
    fs.closeSync(fd);
  }
  return out;
}

/** The segments and snapshots of a store, and the chain of segments that make up its journal. */
export function resolveChain(root: string): Chain {
  const dir = journalDir(root);
  let names: string[] = [];
  try {
    names = fs.readdirSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw e;
    }
  }
  const files: SegmentFile[] = [];
  const snapshots: SnapshotFile[] = [];
  for (const name of names) {
    const s = SEGMENT_RE.exec(name);
    if (s) {
      files.push({ name, file: path.join(dir, name), first: Number(s[1]), epoch: Number(s[2]), legacy: false });
    }
    const t = SNAPSHOT_RE.exec(name);
    if (t) {
      snapshots.push({ name, file: path.join(dir, name), upTo: Number(t[1]), epoch: Number(t[2]) });
    }
  }
  const legacyFile = path.join(root, LEGACY_JOURNAL);
  if (fs.existsSync(legacyFile)) {
    const first = firstFrame(legacyFile);
    // Sealing copies it into journal/ before removing it: a copy there wins over the original.
    if (first && !files.some((f) => f.epoch === 0 && f.first === first.q)) {
      files.push({ name: LEGACY_JOURNAL, file: legacyFile, first: first.q, epoch: 0, legacy: true });
    }
  }
  files.sort((a, b) => a.first - b.first || b.epoch - a.epoch);
  snapshots.sort((a, b) => a.upTo - b.upTo || a.epoch - b.epoch);
  const chain: Chain = { dir, segments: [], snapshots, ignored: [], problems: [] };
  let maxEpoch = -1;
  for (const f of withEmptyPredecessorsFirst(files)) {
    if (f.epoch < maxEpoch) {
      chain.ignored.push({
        name: f.name,
        file: f.file,
        first: f.first,
        why: `written with epoch ${f.epoch} after a writer with epoch ${maxEpoch} took over`,
      });
      continue;
    }
    const seg: ChainSegment = { ...f };
    if (!f.legacy) {
      const h = firstFrame(f.file);
      if (h?.op === 'segment') {
        seg.header = h;
      } else {
        chain.problems.push(`${f.name}: no segment header`);
      }
    }
    const prev = chain.segments[chain.segments.length - 1];
    if (seg.header && seg.header.prev !== null && seg.header.prevLast !== null) {
      // A legacy journal sealed into journal/ keeps its place: it is the epoch-0 segment there.
      const continues =
        prev && (prev.name === seg.header.prev || (seg.header.prev === LEGACY_JOURNAL && prev.epoch === 0));
      // The first segment's predecessor is gone after pruning: nothing to say then.
      if (prev && !continues) {
        chain.problems.push(
          `${f.name} continues ${seg.header.prev}, which is not the segment before it (${prev.name})`
        );
      }
      if (prev) {
        prev.last = Math.min(prev.last ?? Infinity, seg.header.prevLast);
      }
    }
    chain.segments.push(seg);
    maxEpoch = f.epoch;
  }
  return chain;
}

/**
 * Segments that start at the same record, newest epoch first, with each one's predecessors
 * moved before it. Two writers start at the same record when the first one counted none: it
 * stopped with nothing to record, was killed in its first append, or (frozen past its lease)
 * rolled into a new segment just before the next writer started. The next writer's header then
 * names that segment, with none of its records counted (prevLast is the record before it), and
 * it stays in the chain as an empty link. Segments of the group that no header names are left
 * after them, where the epoch rule leaves them out.
 */
function withEmptyPredecessorsFirst(files: SegmentFile[]): SegmentFile[] {
  const out: SegmentFile[] = [];
  for (let i = 0; i < files.length;) {
    const first = (files[i] as SegmentFile).first;
    let j = i;
    while (j < files.length && (files[j] as SegmentFile).first === first) {
      j++;
    }
    const group = files.slice(i, j);
    i = j;
    const linked = [group[0] as SegmentFile];
    for (let cur = linked[0] as SegmentFile; group.length > 1 && !cur.legacy;) {
      const h = firstFrame(cur.file);
      if (h?.op !== 'segment' || h.prevLast !== first - 1) {
        break;
      }
      const prev = group.find((g) => g.name === h.prev && g.epoch < cur.epoch);
      if (!prev || linked.includes(prev)) {
        break;
      }
      linked.unshift(prev);
      cur = prev;
    }
    out.push(...linked, ...group.filter((g) => !linked.includes(g)));
  }
  return out;
}

/** The highest writer epoch the journal's files name (the next writer's is higher). */
export function highestEpoch(root: string): number {
  let max = 0;
  try {
    for (const name of fs.readdirSync(journalDir(root))) {
      const m = SEGMENT_RE.exec(name) ?? SNAPSHOT_RE.exec(name);
      if (m) {
        max = Math.max(max, Number(m[2]));
      }
    }
  } catch {
    // no journal yet
  }
  return max;
}

/** The last sequence number a segment can hold: its bound, or just before the next one's first. */
export function segmentEnd(chain: Chain, i: number): number {
  const s = chain.segments[i] as ChainSegment;
  const next = chain.segments[i + 1];
  return Math.min(s.last ?? Infinity, next ? next.first - 1 : Infinity);
}

export interface SegmentDamage {
  segment: string;
  skipped: Damage[];
  /** A torn tail that cut off records the journal counts (not the normal torn tail of a crash). */
  missing?: string;
  /** The torn tail of the journal's last segment: normal after a crash in the middle of an append. */
  tail?: { damage: string; bytes: number };
}

/**
 * Visits the journal's records with sequence numbers after `after`, in order, across the
 * chain's segments (each read up to its bound). `visit` returns true to stop. Damage met on the
 * way is returned, one entry per segment that had some.
 */
export function forEachRecord(
  chain: Chain,
  after: number,
  visit: (r: JournalRecord, seg: ChainSegment, offset: number) => boolean | void,
  opts: { upToSegment?: number; only?: (seg: ChainSegment, i: number) => boolean; filter?: PayloadFilter } = {}
): SegmentDamage[] {
  const damages: SegmentDamage[] = [];
  let lastQ = after;
  let stopped = false;
  const endAt = opts.upToSegment ?? chain.segments.length - 1;
  for (let i = 0; i <= endAt && !stopped; i++) {
    const seg = chain.segments[i] as ChainSegment;
    const end = segmentEnd(chain, i);
    if (end <= after) {
      continue;
    }
    if (opts.only && !opts.only(seg, i)) {
      continue;
    }
    let fd: number;
    try {
      fd = fs.openSync(seg.file, 'r');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
        damages.push({ segment: seg.name, skipped: [], missing: 'the segment file is gone' });
        continue;
      }
      throw e;
    }
    let reached = seg.first - 1;
    let res;
    try {
      res = readFdFrames(
        fd,
        (r, offset) => {
          if (r.q > end) {
            return true;
          }
          if (r.q <= lastQ) {
            return false;
          }
          lastQ = r.q;
          reached = r.q;
          if (visit(r, seg, offset) === true) {
            stopped = true;
            return true;
          }
          return false;
        },
        undefined,
        opts.filter
      );
    } finally {
      fs.closeSync(fd);
    }
    const d: SegmentDamage = { segment: seg.name, skipped: res.skipped };
    if (res.damage && !stopped) {
      const isLast = i === chain.segments.length - 1;
      if (Number.isFinite(end) && reached < end && !isLast) {
        d.missing = `records ${reached + 1} to ${end} are missing (${res.damage})`;
      } else if (isLast) {
        d.tail = { damage: res.damage, bytes: res.totalBytes - res.goodBytes };
      }
    }
    if (d.skipped.length > 0 || d.missing || d.tail) {
      damages.push(d);
    }
  }
  return damages;
}

export function describeDamage(d: SegmentDamage): string[] {
  const out: string[] = [];
  for (const s of d.skipped) {
    if (s.refused) {
      out.push(`journal ${d.segment}: skipped the record at byte ${s.at} (${s.why})`);
    } else {
      out.push(
        `journal ${d.segment}: skipped ${s.bytes} damaged bytes at byte ${s.at} (${s.why}); the records after them are kept`
      );
    }
  }
  if (d.missing) {
    out.push(`journal ${d.segment}: ${d.missing}`);
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Tree snapshots

export function readSnapshotHeader(s: SnapshotFile): TreeHeader | undefined {
  const h = firstFrame(s.file);
  return h?.op === 'tree' ? h : undefined;
}

/** The snapshot's entries, or undefined when it is damaged or incomplete (another one is used then). */
export function readSnapshot(s: SnapshotFile): { header: TreeHeader; tree: Tree } | undefined {
  let fd: number;
  try {
    fd = fs.openSync(s.file, 'r');
  } catch {
    return undefined;
  }
  const tree: Tree = new Map();
  let res;
  try {
    res = readFdFrames(fd, (r) => {
      if (r.op === 'file' || r.op === 'dir' || r.op === 'link') {
        tree.set(r.p, r);
      }
    });
  } finally {
    fs.closeSync(fd);
  }
  const header = res.header;
  if (header?.op !== 'tree' || res.damage || res.skipped.length > 0 || tree.size !== header.count) {
    return undefined;
  }
  return { header, tree };
}

/**
 * Whether a snapshot describes this journal: the segment holding its record `upTo` was written
 * with an epoch no newer than the snapshot's (a writer that lost the lease cannot have
 * snapshotted records that the journal does not count).
 */
export function snapshotFits(chain: Chain, s: SnapshotFile, lastQ: number): boolean {
  if (s.upTo > lastQ) {
    return false;
  }
  let holder: ChainSegment | undefined;
  for (const seg of chain.segments) {
    if (seg.first <= s.upTo) {
      holder = seg;
    }
  }
  if (!holder) {
    return s.upTo === (chain.segments[0]?.first ?? 1) - 1;
  }
  return holder.epoch <= s.epoch;
}

/**
 * Writes a journal file whole: the frames into tmp/ (in 1 MiB writes), fsynced, renamed to
 * `name` in the journal directory, the directory fsynced. Returns its path and size.
 */
function writeJournalFile(
  root: string,
  tmpDir: string,
  name: string,
  frames: Iterable<JournalRecord | SegmentHeader | TreeHeader>
): { file: string; bytes: number } {
  const dir = journalDir(root);
  const tmp = path.join(tmpDir, `journal-${randomUUID()}`);
  const fd = fs.openSync(tmp, 'w', 0o600);
  let written = 0;
  try {
    const chunk: Buffer[] = [];
    let bytes = 0;
    for (const r of frames) {
      const f = frame(r);
      chunk.push(f);
      bytes += f.length;
      if (bytes > 1 << 20) {
        written += fs.writeSync(fd, Buffer.concat(chunk));
        chunk.length = 0;
        bytes = 0;
      }
    }
    if (chunk.length > 0) {
      written += fs.writeSync(fd, Buffer.concat(chunk));
    }
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = path.join(dir, name);
  fs.renameSync(tmp, file);
  fsyncDir(dir);
  return { file, bytes: written };
}

/** Writes the tree as the snapshot after record `upTo` (fsynced, renamed into place). */
export function writeSnapshot(
  root: string,
  tmpDir: string,
  tree: Tree,
  h: Omit<TreeHeader, 'op' | 'count' | 'q'>
): SnapshotFile {
  const name = snapshotName(h.upTo, h.epoch);
  const header: TreeHeader = {
    q: h.upTo,
    at: h.at,
    op: 'tree',
    upTo: h.upTo,
    epoch: h.epoch,
    from: h.from,
    count: tree.size,
  };
  const entries = [...tree.values()].sort((a, b) => a.q - b.q).map(withoutInline);
  const { file } = writeJournalFile(root, tmpDir, name, [header, ...entries]);
  return { name, file, upTo: h.upTo, epoch: h.epoch };
}

export function withoutInline<R extends JournalRecord>(r: R): R {
  if (r.op !== 'file' || r.d === undefined) {
    return r;
  }
  const { d: _d, ...rest } = r;
  return rest as R;
}

// ---------------------------------------------------------------------------------------
// The index of a sealed segment

export interface SegmentIndex {
  first: number;
  last: number;
  firstAt: number;
  lastAt: number;
  count: number;
  /** The distinct FNV-1a keys of the paths its records name, sorted. */
  keys: Uint32Array;
  /** The frame offsets of key i's records are offsets[starts[i] .. starts[i + 1]). */
  starts: Uint32Array;
  /** All the offsets (when built; read from the file a key at a time, see indexOffsets). */
  offsets?: Uint32Array;
  /** The objects its file records name (32 bytes each), sorted; read only when asked for. */
  objects?: Buffer;
  /** Where the offsets begin in the index file. */
  offsetsAt?: number;
}

const INDEX_MAGIC = 0x32584456; // "VDX2"

/** FNV-1a over the path's UTF-16 code units: the index's key for a path. */
export function pathKey(p: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < p.length; i++) {
    h ^= p.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** Builds an index from a segment's records (in sequence order) and their frames' offsets. */
export function buildIndex(entries: Iterable<{ r: JournalRecord; offset: number }>): SegmentIndex | undefined {
  const pairs: Array<[number, number]> = [];
  const objects = new Set<string>();
  let first = -1;
  let last = -1;
  let firstAt = 0;
  let lastAt = 0;
  let count = 0;
  for (const { r, offset } of entries) {
    if (first < 0) {
      first = r.q;
      firstAt = r.at;
    }
    last = r.q;
    lastAt = r.at;
    count++;
    if (r.op === 'base' || r.op === 'sync') {
      continue;
    }
    pairs.push([pathKey(r.p), offset]);
    if (r.op === 'file') {
      objects.add(r.h);
    }
  }
  if (count === 0) {
    return undefined;
  }
  pairs.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const keys: number[] = [];
  const starts: number[] = [];
  const offsets = new Uint32Array(pairs.length);
  pairs.forEach(([k, o], i) => {
    if (keys.length === 0 || keys[keys.length - 1] !== k) {
      keys.push(k);
      starts.push(i);
    }
    offsets[i] = o;
  });
  starts.push(pairs.length);
  const sortedObjects = [...objects].sort();
  const buf = Buffer.allocUnsafe(sortedObjects.length * 32);
  sortedObjects.forEach((h, i) => buf.write(h, i * 32, 'hex'));
  return {
    first,
    last,
    firstAt,
    lastAt,
    count,
    keys: Uint32Array.from(keys),
    starts: Uint32Array.from(starts),
    offsets,
    objects: buf,
  };
}

const u32 = (n: number) => {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32LE(n >>> 0);
  return b;
};
const asBuffer = (a: Uint32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

/**
 * The index file: magic, header (JSON), keys, starts, offsets, objects, each section but the
 * offsets followed by its CRC-32 (an offset is checked by the frame it points at).
 */
export function writeIndex(dir: string, tmpDir: string, segment: string, idx: SegmentIndex): void {
  const offsets = idx.offsets ?? new Uint32Array(0);
  const objects = idx.objects ?? Buffer.alloc(0);
  const head = Buffer.from(
    JSON.stringify({
      first: idx.first,
      last: idx.last,
      firstAt: idx.firstAt,
      lastAt: idx.lastAt,
      count: idx.count,
      keys: idx.keys.length,
      offsets: offsets.length,
      objects: objects.length / 32,
    })
  );
  const keys = asBuffer(idx.keys);
  const starts = asBuffer(idx.starts);
  const out = Buffer.concat([
    u32(INDEX_MAGIC),
    u32(head.length),
    head,
    u32(crc32(head)),
    keys,
    u32(crc32(keys)),
    starts,
    u32(crc32(starts)),
    asBuffer(offsets),
    objects,
    u32(crc32(objects)),
  ]);
  const tmp = path.join(tmpDir, `idx-${randomUUID()}`);
  // Derived from the segment (rebuilt when it fails its checksums): no fsync of its own.
  fs.writeFileSync(tmp, out, { mode: 0o600 });
  fs.renameSync(tmp, path.join(dir, indexName(segment)));
}

/** The index of a segment (keys and starts; objects when asked), or undefined when missing or damaged. */
export function readIndex(dir: string, segment: string, withObjects = false): SegmentIndex | undefined {
  let fd: number;
  try {
    fd = fs.openSync(path.join(dir, indexName(segment)), 'r');
  } catch {
    return undefined;
  }
  try {
    const read = (pos: number, len: number): Buffer | undefined => {
      const b = Buffer.allocUnsafe(len);
      return fs.readSync(fd, b, 0, len, pos) === len ? b : undefined;
    };
    const checked = (pos: number, len: number): Buffer | undefined => {
      const b = read(pos, len + 4);
      return b && crc32(b.subarray(0, len)) === b.readUInt32LE(len) ? b.subarray(0, len) : undefined;
    };
    const top = read(0, 8);
    if (!top || top.readUInt32LE(0) !== INDEX_MAGIC) {
      return undefined;
    }
    const headLen = top.readUInt32LE(4);
    if (headLen > 4096) {
      return undefined;
    }
    const head = checked(8, headLen);
    if (!head) {
      return undefined;
    }
    const h = JSON.parse(head.toString('utf8')) as {
      first: number;
      last: number;
      firstAt: number;
      lastAt: number;
      count: number;
      keys: number;
      offsets: number;
      objects: number;
    };
    let pos = 8 + headLen + 4;
    const keys = checked(pos, h.keys * 4);
    pos += h.keys * 4 + 4;
    const starts = checked(pos, (h.keys + 1) * 4);
    pos += (h.keys + 1) * 4 + 4;
    if (!keys || !starts) {
      return undefined;
    }
    const copy = (b: Buffer) => new Uint32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
    const idx: SegmentIndex = {
      first: h.first,
      last: h.last,
      firstAt: h.firstAt,
      lastAt: h.lastAt,
      count: h.count,
      keys: copy(keys),
      starts: copy(starts),
      offsetsAt: pos,
    };
    pos += h.offsets * 4;
    if (withObjects) {
      const objects = checked(pos, h.objects * 32);
      if (!objects) {
        return undefined;
      }
      idx.objects = objects;
    }
    return idx;
  } catch {
    return undefined;
  } finally {
    fs.closeSync(fd);
  }
}

/** The position of `key` among an index's keys, or -1. */
function keyAt(idx: SegmentIndex, key: number): number {
  let lo = 0;
  let hi = idx.keys.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const v = idx.keys[mid] as number;
    if (v === key) {
      return mid;
    }
    if (v < key) {
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  return -1;
}

export function indexHasPath(idx: SegmentIndex, key: number): boolean {
  return keyAt(idx, key) >= 0;
}

/** The frame offsets of the records whose path has `key` (read from the index file). */
export function indexOffsets(dir: string, segment: string, idx: SegmentIndex, key: number): number[] {
  const i = keyAt(idx, key);
  if (i < 0) {
    return [];
  }
  const from = idx.starts[i] as number;
  const to = idx.starts[i + 1] as number;
  if (idx.offsets) {
    return [...idx.offsets.subarray(from, to)];
  }
  const b = Buffer.allocUnsafe((to - from) * 4);
  const fd = fs.openSync(path.join(dir, indexName(segment)), 'r');
  try {
    if (fs.readSync(fd, b, 0, b.length, (idx.offsetsAt ?? 0) + from * 4) !== b.length) {
      return [];
    }
  } finally {
    fs.closeSync(fd);
  }
  const out: number[] = [];
  for (let k = 0; k < b.length; k += 4) {
    out.push(b.readUInt32LE(k));
  }
  return out;
}

/** The object names an index lists (hex). */
export function indexObjects(idx: SegmentIndex): string[] {
  const out: string[] = [];
  const o = idx.objects ?? Buffer.alloc(0);
  for (let i = 0; i + 32 <= o.length; i += 32) {
    out.push(o.toString('hex', i, i + 32));
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Sealing

/**
 * Seals a segment: when it carries inline contents (redundant once a checkpoint covered them),
 * rewrites it without them (beside it, fsynced, renamed over it), then writes its index. Only
 * records up to `last` are kept: whatever a frozen former writer appended after its bound goes.
 * A legacy journal.log becomes segments of epoch 0 in journal/, of at most SEGMENT_BYTES each
 * (read and written a piece at a time, whatever its size), and is removed.
 */
export function sealSegment(
  root: string,
  tmpDir: string,
  seg: ChainSegment,
  last: number,
  maxBytes = SEGMENT_BYTES
): { index?: SegmentIndex; strippedBytes: number; file: string; name: string } {
  const dir = journalDir(root);
  // First: is there anything to rewrite? (Most segments were written by a writer that sealed them itself.)
  let inline = false;
  let header: SegmentHeader | TreeHeader | undefined;
  let totalBytes = 0;
  let records: Array<{ r: JournalRecord; offset: number }> = [];
  const keep = (r: JournalRecord) => r.q >= seg.first && r.q <= last;
  let fd = fs.openSync(seg.file, 'r');
  try {
    const res = readFdFrames(fd, (r, offset) => {
      if (r.q > last) {
        return true;
      }
      if (!keep(r)) {
        return false;
      }
      if (r.op === 'file' && r.d !== undefined) {
        inline = true;
      }
      if (!seg.legacy) {
        records.push({ r, offset });
      }
      return false;
    });
    header = res.header;
    totalBytes = res.totalBytes;
  } finally {
    fs.closeSync(fd);
  }
  if (!inline && !seg.legacy) {
    const index = buildIndex(records);
    if (index) {
      writeIndex(dir, tmpDir, seg.name, index);
    }
    return { index, strippedBytes: 0, file: seg.file, name: seg.name };
  }
  records = [];
  // Rewrite, piece by piece: each output is written to tmp/ and fsynced; all are renamed into
  // place at the end, the first last (until it is there, readers take the old file, whose
  // records the others repeat).
  const outputs: Array<{ tmp: string; name: string; index?: SegmentIndex; bytes: number }> = [];
  let out: { tmp: string; fd: number; first: number; bytes: number; chunk: Buffer[]; chunkBytes: number } | undefined;
  let written = 0;
  let prev: { name: string; last: number } | null =
    header?.op === 'segment' ? (header.prev === null ? null : { name: header.prev, last: header.prevLast ?? 0 }) : null;
  const flush = () => {
    if (!out || out.chunk.length === 0) {
      return;
    }
    out.bytes += fs.writeSync(out.fd, Buffer.concat(out.chunk));
    out.chunk = [];
    out.chunkBytes = 0;
  };
  const finish = () => {
    if (!out) {
      return;
    }
    flush();
    fs.fsyncSync(out.fd);
    fs.closeSync(out.fd);
    const name = seg.legacy ? segmentName(out.first, 0) : seg.name;
    const index = buildIndex(records);
    outputs.push({ tmp: out.tmp, name, index, bytes: out.bytes });
    written += out.bytes;
    prev = { name, last: index?.last ?? out.first - 1 };
    records = [];
    out = undefined;
  };
  const add = (b: Buffer) => {
    if (!out) {
      return;
    }
    out.chunk.push(b);
    out.chunkBytes += b.length;
    if (out.chunkBytes > 1 << 20) {
      flush();
    }
  };
  const begin = (first: number, at: number) => {
    const tmp = path.join(tmpDir, `seal-${randomUUID()}`);
    out = { tmp, fd: fs.openSync(tmp, 'w', 0o600), first, bytes: 0, chunk: [], chunkBytes: 0 };
    const own = header?.op === 'segment' && outputs.length === 0 ? header : undefined;
    add(
      frame(
        own ?? {
          q: first - 1,
          at,
          op: 'segment',
          epoch: seg.epoch,
          first,
          prev: prev?.name ?? null,
          prevLast: prev?.last ?? null,
        }
      )
    );
  };
  fd = fs.openSync(seg.file, 'r');
  try {
    readFdFrames(fd, (r) => {
      if (r.q > last) {
        return true;
      }
      if (!keep(r)) {
        return false;
      }
      // A legacy file is cut into segments of the usual size; a segment stays whole.
      if (out && seg.legacy && out.bytes + out.chunkBytes >= maxBytes) {
        finish();
      }
      if (!out) {
        begin(outputs.length === 0 ? seg.first : r.q, r.at);
      }
      const stripped = withoutInline(r);
      const cur = out as { bytes: number; chunkBytes: number };
      records.push({ r: stripped, offset: cur.bytes + cur.chunkBytes });
      add(frame(stripped));
      return false;
    });
    if (!out && outputs.length === 0) {
      begin(seg.first, 0);
    }
    finish();
  } finally {
    fs.closeSync(fd);
    if (out) {
      fs.closeSync((out as { fd: number }).fd);
    }
  }
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  for (const o of [...outputs.slice(1), ...outputs.slice(0, 1)]) {
    fs.renameSync(o.tmp, path.join(dir, o.name));
  }
  fsyncDir(dir);
  for (const o of outputs) {
    if (o.index) {
      writeIndex(dir, tmpDir, o.name, o.index);
    }
  }
  if (seg.legacy) {
    fs.rmSync(seg.file, { force: true });
    fsyncDir(root);
  }
  const firstOut = outputs[0] as { name: string; index?: SegmentIndex };
  return {
    index: firstOut.index,
    strippedBytes: totalBytes - written,
    file: path.join(dir, firstOut.name),
    name: firstOut.name,
  };
}

// ---------------------------------------------------------------------------------------
// Replay

export interface Replay {
  tree: Tree;
  lastQ: number;
  lastAt: number;
  /** The newest sync record's upTo. */
  lastSync: number;
  /** File records with inline contents after the last sync record: their objects may be lost. */
  unsynced: FileRecord[];
  /** Paths named by records after `touchedAfter` (null: more than that, or from before the snapshot). */
  touched: Set<string> | null;
  /** Records replayed (after the snapshot used). */
  replayed: number;
  snapshot: SnapshotFile | null;
  damage: SegmentDamage[];
  earliest: number | null;
}

/** The earliest restorable moment: the base snapshot's, a legacy base record's, or the first record's. */
export function earliestOf(chain: Chain): number | null {
  const base = baseSnapshot(chain);
  if (base) {
    return base.header.from ?? base.header.at;
  }
  const r = firstRecordOf(chain);
  if (!r) {
    return null;
  }
  return r.op === 'base' ? r.from : r.at;
}

/** The first record of the journal (for the earliest restorable point). */
export function firstRecordOf(chain: Chain): JournalRecord | undefined {
  let out: JournalRecord | undefined;
  forEachRecord(chain, -Infinity, (r) => {
    out = r;
    return true;
  });
  return out;
}

/** The base snapshot: the one right before the chain's first record, when pruning left one. */
export function baseSnapshot(chain: Chain): { file: SnapshotFile; header: TreeHeader } | undefined {
  const first = chain.segments[0];
  let found: { file: SnapshotFile; header: TreeHeader } | undefined;
  for (const s of chain.snapshots) {
    if (first && s.upTo !== first.first - 1) {
      continue;
    }
    const header = readSnapshotHeader(s);
    // The one pruning wrote (with `from`) over one that merely happens to end there.
    if (header && (!found || (header.from !== null && found.header.from === null))) {
      found = { file: s, header };
    }
  }
  return found;
}

/**
 * The tree as the journal leaves it: from the newest snapshot that fits, then every record
 * after it. Only what a start needs is kept in memory besides the tree.
 */
export function replay(chain: Chain, touchedAfter: number): Replay {
  // The newest snapshot that fits: written by a writer whose records it describes (the epoch
  // rule keeps out one from a writer that lost the lease, even one beyond the journal's end).
  const start = chain.segments[0] ? chain.segments[0].first - 1 : -Infinity;
  let snap: { header: TreeHeader; tree: Tree } | undefined;
  let used: SnapshotFile | null = null;
  for (let i = chain.snapshots.length - 1; i >= 0 && !snap; i--) {
    const s = chain.snapshots[i] as SnapshotFile;
    if (s.upTo < start || !snapshotFits(chain, s, Infinity)) {
      continue;
    }
    snap = readSnapshot(s);
    if (snap) {
      used = s;
    }
  }
  const tree: Tree = snap ? snap.tree : new Map();
  const from = snap ? snap.header.upTo : -Infinity;
  // Where the journal ends when nothing comes after the snapshot: the last segment's header says.
  const tail = chain.segments[chain.segments.length - 1];
  let lastQ = Math.max(snap ? snap.header.upTo : 0, tail ? tail.first - 1 : 0);
  let lastAt = Math.max(snap ? snap.header.at : 0, tail?.header?.at ?? 0);
  let lastSync = snap ? snap.header.upTo : 0;
  let unsynced: FileRecord[] = [];
  const touched: Set<string> | null = touchedAfter >= from ? new Set() : null;
  let replayed = 0;
  const damage = forEachRecord(chain, from, (r) => {
    replayed++;
    apply(tree, r);
    if (r.op === 'sync') {
      lastSync = Math.max(lastSync, r.upTo);
      unsynced = unsynced.filter((u) => u.q > r.upTo);
    } else if (r.op === 'file' && r.d !== undefined) {
      unsynced.push(r);
    }
    if (touched && r.q > touchedAfter && r.op !== 'sync' && r.op !== 'base') {
      touched.add(r.p);
    }
    lastQ = Math.max(lastQ, r.q);
    lastAt = Math.max(lastAt, r.at);
  });
  return {
    tree,
    lastQ,
    lastAt,
    lastSync,
    unsynced,
    touched,
    replayed,
    snapshot: used,
    damage,
    earliest: earliestOf(chain),
  };
}

// ---------------------------------------------------------------------------------------
// The writer

export class LeaseLostError extends Error {}

/** The writer's handle on its own segment: appends batches and fsyncs them. Only the lease holder opens one. */
export class JournalWriter {
  private fd: number;
  private size: number;
  private nextSeq: number;
  private lastAt: number;
  private openedAt: number;
  private current: ChainSegment;

  /**
   * Starts a segment of this writer's epoch after the chain's last record. `check` throws
   * LeaseLostError when the lease no longer names this writer; it runs before every append.
   */
  constructor(
    private readonly root: string,
    chain: Chain,
    lastQ: number,
    lastAt: number,
    readonly epoch: number,
    private readonly check: () => void
  ) {
    const dir = journalDir(root);
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const prev = chain.segments[chain.segments.length - 1];
    this.nextSeq = lastQ + 1;
    this.lastAt = lastAt;
    this.current = this.startSegment(prev ? prev.name : null, prev ? lastQ : null);
    this.fd = fs.openSync(this.current.file, fs.constants.O_RDWR, 0o600);
    this.size = fs.fstatSync(this.fd).size;
    this.openedAt = Date.now();
  }

  private startSegment(prev: string | null, prevLast: number | null): ChainSegment {
    this.check();
    const dir = journalDir(this.root);
    const name = segmentName(this.nextSeq, this.epoch);
    const header: SegmentHeader = {
      q: this.nextSeq - 1,
      at: this.lastAt,
      op: 'segment',
      epoch: this.epoch,
      first: this.nextSeq,
      prev,
      prevLast,
    };
    const file = path.join(dir, name);
    const fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
    try {
      fs.writeSync(fd, frame(header));
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fsyncDir(dir);
    return { name, file, first: this.nextSeq, epoch: this.epoch, legacy: false, header };
  }

  get segment(): ChainSegment {
    return this.current;
  }

  get bytes(): number {
    return this.size;
  }

  get lastSeq(): number {
    return this.nextSeq - 1;
  }

  /** How long the current segment has been open. */
  get age(): number {
    return Date.now() - this.openedAt;
  }

  /** Whether the current segment holds any record yet. */
  get empty(): boolean {
    return this.nextSeq === this.current.first;
  }

  /** A time for a new record: never earlier than the previous one, so time order is journal order. */
  stamp(now = Date.now()): number {
    this.lastAt = Math.max(this.lastAt, now);
    return this.lastAt;
  }

  /** Appends the records and fsyncs; when this resolves they are acknowledged. */
  async append(records: NewRecord[]): Promise<JournalRecord[]> {
    if (records.length === 0) {
      return [];
    }
    // Fencing: a writer that lost the lease (frozen past its staleness) must not write on.
    this.check();
    const out = records.map((r) => numbered(this.nextSeq++, r));
    const buf = Buffer.concat(out.map(frame));
    let written = 0;
    while (written < buf.length) {
      written += await new Promise<number>((resolve, reject) =>
        fs.write(this.fd, buf, written, buf.length - written, this.size + written, (e, n) =>
          e ? reject(e) : resolve(n)
        )
      );
    }
    this.size += buf.length;
    await new Promise<void>((resolve, reject) => fs.fdatasync(this.fd, (e) => (e ? reject(e) : resolve())));
    return out;
  }

  /** Starts the next segment; returns the one that was sealed (its records end at lastSeq). */
  roll(): { sealed: ChainSegment; last: number } {
    const sealed = this.current;
    const last = this.lastSeq;
    this.current = this.startSegment(sealed.name, last);
    fs.closeSync(this.fd);
    this.fd = fs.openSync(this.current.file, fs.constants.O_RDWR, 0o600);
    this.size = fs.fstatSync(this.fd).size;
    this.openedAt = Date.now();
    return { sealed, last };
  }

  close(): void {
    try {
      fs.closeSync(this.fd);
    } catch {
      // already closed
    }
  }
}

/** Reads every record of the chain into memory (tests, small stores). */
export function allRecords(chain: Chain): JournalRecord[] {
  const out: JournalRecord[] = [];
  forEachRecord(chain, -Infinity, (r) => void out.push(r));
  return out;
}

export type { Entry };
