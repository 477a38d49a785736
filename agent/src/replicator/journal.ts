// Journal records and their framing. Every file of the journal (segments, tree snapshots) is a
// sequence of frames
//   u32le length | u32le crc32(payload) | payload (UTF-8 JSON)
// so a write cut short by a crash (a torn tail) is recognised by its length or checksum and
// never misread. Damage in the middle of a file (a bad sector, a stray write) is skipped by
// looking for the next frame that checks out: the records after it are kept, never dropped.
import { createHmac, timingSafeEqual } from 'node:crypto';
import * as fs from 'node:fs';
import { crc32 } from 'node:zlib';
import { z } from 'zod';
import { displayPath, recordPathProblem, validRecordPath } from './fspath';
import { checkMetadataKeys, type Metadata } from './metadata';

/** A frame larger than this cannot be ours: treat it as damage, not as a record. */
export const MAX_RECORD_BYTES = 1 << 20;
const HEADER_BYTES = 8;

const mode = z.number().int().min(0).max(0o7777);
/** Relative, no empty, '.' or '..' component, no NUL (recordPathProblem). */
const recordPath = z.string().refine(validRecordPath, 'unsafe path');
/** Owner, group and extended attributes (metadata.ts); absent from records written before them. */
const meta = {
  u: z.number().int().min(0).optional(),
  g: z.number().int().min(0).optional(),
  un: z.string().optional(),
  gn: z.string().optional(),
  x: z.record(z.string(), z.string()).optional(),
  xe: z.string().optional(),
};

/** A version of a regular file: its content is the object named by `h`. */
const fileRecord = z.object({
  q: z.number().int(),
  at: z.number(),
  op: z.literal('file'),
  p: recordPath,
  h: z.string().regex(/^[0-9a-f]{64}$/),
  s: z.number().int().min(0),
  m: mode,
  mt: z.number(),
  ct: z.number(),
  ino: z.number(),
  /** The content itself (base64), for a small file whose object was not fsynced before this record. */
  d: z.string().optional(),
  ...meta,
});
const dirRecord = z.object({
  q: z.number().int(),
  at: z.number(),
  op: z.literal('dir'),
  p: recordPath,
  m: mode,
  mt: z.number(),
  ...meta,
});
const linkRecord = z.object({
  q: z.number().int(),
  at: z.number(),
  op: z.literal('link'),
  p: recordPath,
  l: z.string(),
  mt: z.number(),
  ct: z.number(),
  ino: z.number(),
  ...meta,
});
/** The path and everything under it is gone. */
const delRecord = z.object({ q: z.number().int(), at: z.number(), op: z.literal('del'), p: recordPath });
/** First in a journal compacted by an earlier version: nothing before `from` can be restored. */
const baseRecord = z.object({ q: z.number().int(), at: z.number(), op: z.literal('base'), from: z.number() });
/** Every object named by a record up to `upTo` is fsynced: inline contents before it are not needed. */
const syncRecord = z.object({ q: z.number().int(), at: z.number(), op: z.literal('sync'), upTo: z.number().int() });

export const recordSchema = z.discriminatedUnion('op', [
  fileRecord,
  dirRecord,
  linkRecord,
  delRecord,
  baseRecord,
  syncRecord,
]);
export type JournalRecord = z.infer<typeof recordSchema>;
export type FileRecord = z.infer<typeof fileRecord>;
export type DirRecord = z.infer<typeof dirRecord>;
export type LinkRecord = z.infer<typeof linkRecord>;
export type DelRecord = z.infer<typeof delRecord>;
/** A record before the journal has given it its sequence number. */
export type NewRecord = JournalRecord extends infer R ? (R extends JournalRecord ? Omit<R, 'q'> : never) : never;

// ---- the codec: readable records <-> the compact on-disk form ----
//
// The journal keeps its records small with one- and two-letter keys. The logic above the
// framing (the replicator's batches, its tree, its mirror and checkpoints) works with the
// readable form below; only encodeRecord and decodeRecord know the letters. Owner, group and
// attributes travel as `meta`, in metadata.ts's form (the keys it documents), which only
// metadata.ts reads. Encoding writes the keys in the order this version has always written
// them (q, at, op, path fields, metadata, inline content), so the bytes, and the MAC over them
// (journalauth.ts), do not change. A record that is not a known change (an unknown op, a
// header, a missing or mistyped field) is a JournalCodecError naming the record and the fault.

/** Owner, group and extended attributes as metadata.ts reads them (absent before they were recorded). */
export type RecordMeta = Partial<Metadata>;

interface Stamp {
  /** Sequence number; 0 until the journal numbers the record. */
  seq: number;
  at: number;
}
export interface FileChange extends Stamp {
  op: 'file';
  path: string;
  hash: string;
  size: number;
  mode: number;
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
  meta?: RecordMeta;
  /** The content itself (base64), while its object waits for a checkpoint's fsync. */
  data?: string;
}
export interface DirChange extends Stamp {
  op: 'dir';
  path: string;
  mode: number;
  mtimeMs: number;
  meta?: RecordMeta;
}
export interface LinkChange extends Stamp {
  op: 'link';
  path: string;
  linkTarget: string;
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
  meta?: RecordMeta;
}
export interface Deletion extends Stamp {
  op: 'del';
  path: string;
}
export interface BaseMark extends Stamp {
  op: 'base';
  from: number;
}
export interface SyncMark extends Stamp {
  op: 'sync';
  upTo: number;
}
export type Change = FileChange | DirChange | LinkChange | Deletion | BaseMark | SyncMark;
/** What a path holds at some moment: the readable form of a tree entry. */
export type Version = FileChange | DirChange | LinkChange;
/** A change before the journal has numbered it. */
export type NewChange = Change extends infer C ? (C extends Change ? Omit<C, 'seq'> : never) : never;

const META_KEYS = ['u', 'g', 'un', 'gn', 'x', 'xe'] as const;

/** The metadata keys a record or a change carries, always in the order above (absent: left out). */
function metaOf(r: RecordMeta): RecordMeta | undefined {
  if (
    r.u === undefined &&
    r.g === undefined &&
    r.un === undefined &&
    r.gn === undefined &&
    r.x === undefined &&
    r.xe === undefined
  ) {
    return undefined;
  }
  const out: RecordMeta = {};
  for (const k of META_KEYS) {
    if (r[k] !== undefined) {
      (out as Record<string, unknown>)[k] = r[k];
    }
  }
  return out;
}

/** A record that is not a change this version knows (an unknown op, a missing or mistyped field). */
export class JournalCodecError extends Error {
  override name = 'JournalCodecError';
}

function codecError(what: 'encode' | 'decode', r: unknown, why: string): JournalCodecError {
  const o = r !== null && typeof r === 'object' ? (r as Record<string, unknown>) : undefined;
  const seq = what === 'decode' ? o?.q : o?.seq;
  const which = Number.isInteger(seq) ? `record ${String(seq)}` : 'a record';
  return new JournalCodecError(`journal codec: cannot ${what} ${which}: ${why}`);
}

/** The on-disk form of a change (without the MAC, which frame() adds). Throws JournalCodecError for an unknown op. */
export function encodeRecord(c: Change): JournalRecord {
  const head = { q: c.seq, at: c.at };
  switch (c.op) {
    case 'file':
      return {
        ...head,
        op: 'file',
        p: c.path,
        h: c.hash,
        s: c.size,
        m: c.mode,
        mt: c.mtimeMs,
        ct: c.ctimeMs,
        ino: c.ino,
        ...metaOf(c.meta ?? {}),
        ...(c.data === undefined ? {} : { d: c.data }),
      };
    case 'dir':
      return { ...head, op: 'dir', p: c.path, m: c.mode, mt: c.mtimeMs, ...metaOf(c.meta ?? {}) };
    case 'link':
      return {
        ...head,
        op: 'link',
        p: c.path,
        l: c.linkTarget,
        mt: c.mtimeMs,
        ct: c.ctimeMs,
        ino: c.ino,
        ...metaOf(c.meta ?? {}),
      };
    case 'del':
      return { ...head, op: 'del', p: c.path };
    case 'base':
      return { ...head, op: 'base', from: c.from };
    case 'sync':
      return { ...head, op: 'sync', upTo: c.upTo };
    default:
      throw codecError('encode', c, `unknown op ${JSON.stringify((c as { op?: unknown } | null)?.op)}`);
  }
}

/** encodeRecord for a change not numbered yet (the journal writer puts `q` first). */
export function encodeNew(c: NewChange): NewRecord {
  const { q: _q, ...rest } = encodeRecord({ seq: 0, ...c } as Change);
  return rest as NewRecord;
}

/**
 * The readable form of an on-disk record. The record is checked first by the rules every
 * reader applies (checkRecord): an unknown op, a header, a missing or mistyped field throws a
 * JournalCodecError that says which record and why.
 */
export function decodeRecord(r: FileRecord): FileChange;
export function decodeRecord(r: FileRecord | DirRecord | LinkRecord): Version;
export function decodeRecord(r: JournalRecord): Change;
export function decodeRecord(r: JournalRecord): Change {
  const why = checkRecord(r);
  if (why !== undefined) {
    throw codecError('decode', r, why);
  }
  return decodeReadRecord(r);
}

/**
 * decodeRecord for a record that a journal reader returned (readFdFrames and the like): it was
 * checked when its frame was read, so only its op is (a start decodes every path of the tree).
 */
export function decodeReadRecord(r: FileRecord): FileChange;
export function decodeReadRecord(r: FileRecord | DirRecord | LinkRecord): Version;
export function decodeReadRecord(r: JournalRecord): Change;
export function decodeReadRecord(r: JournalRecord): Change {
  // Object literals of one shape each (no spreads): a start decodes every path of the tree.
  switch (r.op) {
    case 'file': {
      const c: FileChange = {
        seq: r.q,
        at: r.at,
        op: 'file',
        path: r.p,
        hash: r.h,
        size: r.s,
        mode: r.m,
        mtimeMs: r.mt,
        ctimeMs: r.ct,
        ino: r.ino,
      };
      const meta = metaOf(r);
      if (meta) {
        c.meta = meta;
      }
      if (r.d !== undefined) {
        c.data = r.d;
      }
      return c;
    }
    case 'dir': {
      const c: DirChange = { seq: r.q, at: r.at, op: 'dir', path: r.p, mode: r.m, mtimeMs: r.mt };
      const meta = metaOf(r);
      if (meta) {
        c.meta = meta;
      }
      return c;
    }
    case 'link': {
      const c: LinkChange = {
        seq: r.q,
        at: r.at,
        op: 'link',
        path: r.p,
        linkTarget: r.l,
        mtimeMs: r.mt,
        ctimeMs: r.ct,
        ino: r.ino,
      };
      const meta = metaOf(r);
      if (meta) {
        c.meta = meta;
      }
      return c;
    }
    case 'del':
      return { seq: r.q, at: r.at, op: 'del', path: r.p };
    case 'base':
      return { seq: r.q, at: r.at, op: 'base', from: r.from };
    case 'sync':
      return { seq: r.q, at: r.at, op: 'sync', upTo: r.upTo };
    default:
      // A segment or tree header passes checkRecord: it is a frame of the journal, not a change.
      throw codecError('decode', r, `a ${String((r as { op?: unknown }).op)} header is not a change`);
  }
}

/** The path a change is about; base and sync marks are about the store. */
export function pathOfChange(c: Change): string | undefined {
  return c.op === 'base' || c.op === 'sync' ? undefined : c.path;
}

/**
 * The first frame of a segment file: which writer (epoch) wrote it, the sequence number of its
 * first record, and the segment it continues with the last record of that one that counts.
 * Records a stale writer put after `prevLast` in `prev` are not part of the journal.
 */
export interface SegmentHeader {
  q: number;
  at: number;
  op: 'segment';
  epoch: number;
  first: number;
  prev: string | null;
  prevLast: number | null;
}

/** The first frame of a tree snapshot: the tree after record `upTo`, `count` entries follow. */
export interface TreeHeader {
  q: number;
  at: number;
  op: 'tree';
  upTo: number;
  epoch: number;
  /** Set on the snapshot retention left as the journal's start: the earliest restorable moment. */
  from: number | null;
  count: number;
}

export type Header = SegmentHeader | TreeHeader;

const HEX64 = /^[0-9a-f]{64}$/;
const isInt = (v: unknown) => Number.isInteger(v);
const isNum = (v: unknown) => typeof v === 'number' && Number.isFinite(v);
const isStr = (v: unknown) => typeof v === 'string';
const isPath = (v: unknown) => typeof v === 'string' && v.length > 0;
const isMode = (v: unknown) => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 0o7777;
const isIntOrNull = (v: unknown) => v === null || isInt(v);
const fieldChecks: Record<JournalRecord['op'] | Header['op'], Record<string, (v: unknown) => boolean>> = {
  file: {
    p: isPath,
    h: (v) => typeof v === 'string' && v.length === 64 && HEX64.test(v),
    s: (v) => isInt(v) && (v as number) >= 0,
    m: isMode,
    mt: isNum,
    ct: isNum,
    ino: isNum,
  },
  dir: { p: isPath, m: isMode, mt: isNum },
  link: { p: isPath, l: isStr, mt: isNum, ct: isNum, ino: isNum },
  del: { p: isPath },
  base: { from: isNum },
  sync: { upTo: isInt },
  segment: { epoch: isInt, first: isInt, prev: (v) => v === null || isStr(v), prevLast: isIntOrNull },
  tree: { upTo: isInt, epoch: isInt, from: (v) => v === null || isNum(v), count: isInt },
};

const checkList = Object.fromEntries(Object.entries(fieldChecks).map(([op, c]) => [op, Object.entries(c)])) as Record<
  string,
  Array<[string, (v: unknown) => boolean]>
>;

/**
 * The same rules as recordSchema (and the headers'), checked by hand: replaying a journal of a
 * large tree at every start must cost little more than parsing it.
 */
export function checkRecord(r: unknown): string | undefined {
  if (r === null || typeof r !== 'object') {
    return 'not an object';
  }
  const o = r as Record<string, unknown>;
  if (!isInt(o.q)) {
    return 'q: expected an integer';
  }
  if (!isNum(o.at)) {
    return 'at: expected a number';
  }
  const checks = checkList[o.op as JournalRecord['op']];
  if (!checks) {
    return `op: unknown ${JSON.stringify(o.op)}`;
  }
  for (const [k, ok] of checks) {
    if (!ok(o[k])) {
      return `${k}: invalid for op ${String(o.op)}`;
    }
  }
  if (typeof o.p === 'string' && 'p' in fieldChecks[o.op as JournalRecord['op']]) {
    // A path that leaves the tree is refused here, so no reader (replay, restore, versions,
    // sealing) ever sees it: the record is skipped and reported with its file and offset.
    const why = recordPathProblem(o.p);
    if (why !== undefined) {
      return `p: unsafe path ${JSON.stringify(displayPath(o.p.length > 200 ? `${o.p.slice(0, 200)}…` : o.p))} (${why})`;
    }
  }
  if (o.op === 'file' && o.d !== undefined && !isStr(o.d)) {
    return 'd: invalid for op file';
  }
  if (o.op === 'file' || o.op === 'dir' || o.op === 'link') {
    return checkMetadataKeys(o);
  }
  return undefined;
}

export function isHeader(r: JournalRecord | Header): r is Header {
  return r.op === 'segment' || r.op === 'tree';
}

/** The path a record is about; base and sync records are about the store. */
export function pathOf(r: JournalRecord): string | undefined {
  return r.op === 'base' || r.op === 'sync' ? undefined : r.p;
}

/**
 * Journal authentication (see journalauth.ts). With a key in use, every frame written carries
 * `k`, an HMAC-SHA256 of its record's JSON without `k`, as its last key; every frame read must
 * carry a matching one, except records numbered before `from` (written before the key was
 * configured), which may carry none. CRC-32 detects accidents; the MAC detects edits.
 */
let auth: { key: Buffer; from: number } | undefined;
const refused = new Set<string>();

/** Authenticates this process's journal reads and writes with key (undefined: none). */
export function useJournalKey(key: Buffer | undefined, from = 0): void {
  auth = key ? { key, from } : undefined;
  refused.clear();
}

/** The records this process refused because their MAC was missing or wrong: "record Q: why". */
export function refusedByMac(): string[] {
  return [...refused];
}

export function recordMac(key: Buffer, json: string): string {
  return createHmac('sha256', key).update(json, 'utf8').digest('hex');
}

/** Why a parsed frame fails authentication, or undefined when it passes (or none is in use). */
function macProblem(o: Record<string, unknown>): string | undefined {
  if (!auth) {
    return undefined;
  }
  const k = o.k;
  if (k === undefined) {
    if (typeof o.q === 'number' && o.q < auth.from) {
      return undefined;
    }
    return 'no MAC: written without the journal key, or forged';
  }
  if (typeof k !== 'string' || k.length !== 64) {
    return 'MAC malformed';
  }
  delete o.k;
  const want = Buffer.from(recordMac(auth.key, JSON.stringify(o)), 'hex');
  const got = Buffer.from(k, 'hex');
  if (got.length !== want.length || !timingSafeEqual(got, want)) {
    return 'MAC does not match: the record was changed, or written with another key';
  }
  return undefined;
}

export function frame(record: JournalRecord | Header): Buffer {
  let json = JSON.stringify(record);
  if (auth) {
    json = `${json.slice(0, -1)},"k":"${recordMac(auth.key, json)}"}`;
  }
  const payload = Buffer.from(json, 'utf8');
  const out = Buffer.allocUnsafe(HEADER_BYTES + payload.length);
  out.writeUInt32LE(payload.length, 0);
  out.writeUInt32LE(crc32(payload), 4);
  payload.copy(out, HEADER_BYTES);
  return out;
}

/** A record in the order the writer gives it: the sequence number first (see resync). */
export function numbered(q: number, r: NewRecord): JournalRecord {
  return { q, ...r } as JournalRecord;
}

export interface Damage {
  /** Byte offset in the file where the damage starts. */
  at: number;
  bytes: number;
  why: string;
  /** A whole frame that checked out but whose record was refused (see Parsed). */
  refused?: boolean;
}

/**
 * `refusedEnd`: the frame checks out (length, checksum, JSON) but its record breaks the rules (a
 * path that leaves the tree, a newer version's op): exactly that frame is skipped and reported
 * at its own offset, not taken for damage reaching up to the next good frame.
 */
type Parsed =
  | { ok: true; record: JournalRecord | Header; end: number }
  | { ok: false; why: string; incomplete: boolean; refusedEnd?: number };

/**
 * A quick test on a frame's raw payload: false skips it without parsing (a reader that wants
 * only some paths' records). A skipped frame is still checked against its checksum.
 */
export type PayloadFilter = (payload: Buffer) => boolean;
const SKIPPED = { op: 'skipped' } as unknown as JournalRecord;

/** The frame at `off`, checked: length, checksum, JSON, record rules. */
function parseFrame(buf: Buffer, off: number, filter?: PayloadFilter): Parsed {
  if (buf.length - off < HEADER_BYTES) {
    return { ok: false, why: `incomplete frame header`, incomplete: true };
  }
  const len = buf.readUInt32LE(off);
  if (len === 0 || len > MAX_RECORD_BYTES) {
    return { ok: false, why: `impossible frame length ${len}`, incomplete: false };
  }
  if (buf.length - off - HEADER_BYTES < len) {
    return {
      ok: false,
      why: `incomplete record (${buf.length - off - HEADER_BYTES} of ${len} bytes)`,
      incomplete: true,
    };
  }
  const payload = buf.subarray(off + HEADER_BYTES, off + HEADER_BYTES + len);
  if (crc32(payload) !== buf.readUInt32LE(off + 4)) {
    return { ok: false, why: 'checksum mismatch', incomplete: false };
  }
  if (filter && off > 0 && !filter(payload)) {
    return { ok: true, record: SKIPPED, end: off + HEADER_BYTES + len };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(buf.toString('utf8', off + HEADER_BYTES, off + HEADER_BYTES + len));
  } catch {
    return { ok: false, why: 'unparseable record', incomplete: false };
  }
  const problem = checkRecord(parsed);
  if (problem !== undefined) {
    return {
      ok: false,
      why: `unrecognised record: ${problem}`,
      incomplete: false,
      refusedEnd: off + HEADER_BYTES + len,
    };
  }
  const bad = macProblem(parsed as Record<string, unknown>);
  if (bad !== undefined) {
    refused.add(`record ${String((parsed as { q: unknown }).q)}: ${bad}`);
    return {
      ok: false,
      why: `record ${String((parsed as { q: unknown }).q)} refused: ${bad}`,
      incomplete: false,
      refusedEnd: off + HEADER_BYTES + len,
    };
  }
  return { ok: true, record: parsed as JournalRecord, end: off + HEADER_BYTES + len };
}

/**
 * The next offset after `from` where a complete, valid frame starts whose record comes after
 * sequence number `afterQ`, or -1. Every payload is a JSON object, so only offsets 8 bytes
 * before a `{"` are tried.
 */
function resync(buf: Buffer, from: number, afterQ: number): number {
  for (let i = buf.indexOf('{"', from + HEADER_BYTES, 'latin1'); i >= 0; i = buf.indexOf('{"', i + 1, 'latin1')) {
    const off = i - HEADER_BYTES;
    if (off <= from) {
      continue;
    }
    const f = parseFrame(buf, off);
    if (f.ok && f.record.q > afterQ) {
      return off;
    }
  }
  return -1;
}

export interface ReadResult {
  records: JournalRecord[];
  /** The first frame, when it is a segment or tree header. */
  header?: Header;
  /** Bytes up to the end of the last good record. */
  goodBytes: number;
  totalBytes: number;
  /** Damage in the middle, skipped: the records after it were kept. */
  skipped: Damage[];
  /** Why reading stopped before the end of the file, if it did (a torn tail). */
  damage?: string;
}

/**
 * Decodes frames until the end. A frame that does not check out is skipped when a valid one
 * follows it (reported in `skipped`); at the end of the buffer it is a torn tail (`damage`).
 */
export function decode(buf: Buffer, visit?: (r: JournalRecord) => void): ReadResult {
  const records: JournalRecord[] = [];
  const skipped: Damage[] = [];
  let header: Header | undefined;
  let off = 0;
  let good = 0;
  let lastQ = -Infinity;
  let damage: string | undefined;
  while (off < buf.length) {
    const f = parseFrame(buf, off);
    if (!f.ok && f.refusedEnd !== undefined) {
      skipped.push({ at: off, bytes: f.refusedEnd - off, why: f.why, refused: true });
      off = good = f.refusedEnd;
      continue;
    }
    if (!f.ok) {
      const next = resync(buf, off, lastQ);
      if (next < 0) {
        damage = `${f.why} at byte ${off}`;
        break;
      }
      skipped.push({ at: off, bytes: next - off, why: f.why });
      off = next;
      continue;
    }
    const r = f.record;
    if (off === 0 && isHeader(r)) {
      header = r;
    } else if (!isHeader(r)) {
      if (visit) {
        visit(r);
      } else {
        records.push(r);
      }
      lastQ = r.q;
    }
    off = good = f.end;
  }
  return { records, header, goodBytes: good, totalBytes: buf.length, skipped, damage };
}

/** Reads a whole journal file in pieces (files may be larger than a Buffer can hold). */
export function readFileFrames(
  file: string,
  visit: (r: JournalRecord, offset: number) => boolean | void,
  opts: { chunkBytes?: number } = {}
): ReadResult {
  const fd = fs.openSync(file, 'r');
  try {
    return readFdFrames(fd, visit, opts.chunkBytes);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Streams the frames of an open file to `visit` (which may return true to stop early). Damage is
 * handled as in decode(): skipped when a valid frame follows within the file, a torn tail otherwise.
 */
export function readFdFrames(
  fd: number,
  visit: (r: JournalRecord, offset: number) => boolean | void,
  chunkBytes = 8 << 20,
  filter?: PayloadFilter
): ReadResult {
  const total = fs.fstatSync(fd).size;
  const skipped: Damage[] = [];
  let header: Header | undefined;
  let buf = Buffer.alloc(0);
  let base = 0; // file offset of buf[0]
  let pos = 0; // next file offset to read
  let off = 0; // offset in buf
  let good = 0;
  let lastQ = -Infinity;
  let damage: string | undefined;
  let stopped = false;
  const fill = (need: number): boolean => {
    if (buf.length - off >= need || pos >= total) {
      return buf.length - off >= need;
    }
    const keep = buf.subarray(off);
    const want = Math.max(need - keep.length, chunkBytes);
    const next = Buffer.allocUnsafe(keep.length + Math.min(want, total - pos));
    keep.copy(next, 0);
    let n = keep.length;
    while (n < next.length) {
      const got = fs.readSync(fd, next, n, next.length - n, pos);
      if (got === 0) {
        break;
      }
      n += got;
      pos += got;
    }
    base += off;
    buf = next.subarray(0, n);
    off = 0;
    return buf.length >= need;
  };
  while (!stopped) {
    if (!fill(HEADER_BYTES)) {
      if (buf.length - off > 0) {
        damage = `incomplete frame header at byte ${base + off}`;
      }
      break;
    }
    const len = buf.readUInt32LE(off);
    if (len > 0 && len <= MAX_RECORD_BYTES) {
      fill(HEADER_BYTES + len);
    }
    const f = parseFrame(buf, off, filter);
    if (!f.ok && f.refusedEnd !== undefined) {
      skipped.push({ at: base + off, bytes: f.refusedEnd - off, why: f.why, refused: true });
      off = f.refusedEnd;
      good = base + off;
      continue;
    }
    if (!f.ok) {
      // Look for the next good frame in the rest of the file, a window at a time; a frame may
      // start anywhere in the last MAX_RECORD_BYTES of a window, so that much is carried over.
      const start = base + off;
      let from = start; // file offset: fill() moves the buffer
      let next = -1;
      for (;;) {
        fill(Math.min(total - (base + off), Math.max(chunkBytes, 2 * (MAX_RECORD_BYTES + HEADER_BYTES))));
        next = resync(buf, from - base, lastQ);
        if (next >= 0 || pos >= total) {
          break;
        }
        off = Math.max(off, buf.length - (MAX_RECORD_BYTES + HEADER_BYTES));
        from = base + off - 1;
      }
      if (next < 0) {
        damage = `${f.why} at byte ${start}`;
        break;
      }
      skipped.push({ at: start, bytes: base + next - start, why: f.why });
      off = next;
      continue;
    }
    const r = f.record;
    if (r === SKIPPED) {
      off = f.end;
      good = base + off;
      continue;
    }
    if (base + off === 0 && isHeader(r)) {
      header = r;
    } else if (!isHeader(r)) {
      lastQ = r.q;
      if (visit(r, base + off) === true) {
        stopped = true;
      }
    }
    off = f.end;
    good = base + off;
  }
  return { records: [], header, goodBytes: good, totalBytes: total, skipped, damage };
}

/** The record of the frame at `offset` of an open file, or undefined when it does not check out there. */
export function readFrameAt(fd: number, offset: number): JournalRecord | undefined {
  const head = Buffer.allocUnsafe(HEADER_BYTES);
  if (fs.readSync(fd, head, 0, HEADER_BYTES, offset) !== HEADER_BYTES) {
    return undefined;
  }
  const len = head.readUInt32LE(0);
  if (len === 0 || len > MAX_RECORD_BYTES) {
    return undefined;
  }
  const buf = Buffer.allocUnsafe(HEADER_BYTES + len);
  if (fs.readSync(fd, buf, 0, buf.length, offset) !== buf.length) {
    return undefined;
  }
  const f = parseFrame(buf, 0);
  return f.ok && !isHeader(f.record) ? f.record : undefined;
}
