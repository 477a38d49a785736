// The journal: an append-only file of framed records. Each frame is
//   u32le length | u32le crc32(payload) | payload (UTF-8 JSON)
// so a write cut short by a crash (a torn tail) is recognised by its length or checksum and
// dropped, never misread. A record counts once its bytes are fsynced.
import * as fs from 'node:fs';
import { crc32 } from 'node:zlib';
import { z } from 'zod';

/** A frame larger than this cannot be ours: treat it as damage, not as a record. */
const MAX_RECORD_BYTES = 1 << 20;
const HEADER_BYTES = 8;

const mode = z.number().int().min(0).max(0o7777);

/** A version of a regular file: its content is the object named by `h`. */
const fileRecord = z.object({
  q: z.number().int(),
  at: z.number(),
  op: z.literal('file'),
  p: z.string().min(1),
  h: z.string().regex(/^[0-9a-f]{64}$/),
  s: z.number().int().min(0),
  m: mode,
  mt: z.number(),
  ct: z.number(),
  ino: z.number(),
  /** The content itself (base64), for a small file whose object was not fsynced before this record. */
  d: z.string().optional(),
});
const dirRecord = z.object({ q: z.number().int(), at: z.number(), op: z.literal('dir'), p: z.string().min(1), m: mode, mt: z.number() });
const linkRecord = z.object({
  q: z.number().int(),
  at: z.number(),
  op: z.literal('link'),
  p: z.string().min(1),
  l: z.string(),
  mt: z.number(),
  ct: z.number(),
  ino: z.number(),
});
/** The path and everything under it is gone. */
const delRecord = z.object({ q: z.number().int(), at: z.number(), op: z.literal('del'), p: z.string().min(1) });
/** Written first by retention pruning: nothing before `from` can be restored any more. */
const baseRecord = z.object({ q: z.number().int(), at: z.number(), op: z.literal('base'), from: z.number() });
/** Every object named by a record up to `upTo` is fsynced: inline contents before it are not needed. */
const syncRecord = z.object({ q: z.number().int(), at: z.number(), op: z.literal('sync'), upTo: z.number().int() });

export const recordSchema = z.discriminatedUnion('op', [fileRecord, dirRecord, linkRecord, delRecord, baseRecord, syncRecord]);
export type JournalRecord = z.infer<typeof recordSchema>;
export type FileRecord = z.infer<typeof fileRecord>;
export type DirRecord = z.infer<typeof dirRecord>;
export type LinkRecord = z.infer<typeof linkRecord>;
export type DelRecord = z.infer<typeof delRecord>;
/** A record before the journal has given it its sequence number. */
export type NewRecord = JournalRecord extends infer R ? (R extends JournalRecord ? Omit<R, 'q'> : never) : never;

const HEX64 = /^[0-9a-f]{64}$/;
const isInt = (v: unknown) => Number.isInteger(v);
const isNum = (v: unknown) => typeof v === 'number' && Number.isFinite(v);
const isStr = (v: unknown) => typeof v === 'string';
const isPath = (v: unknown) => typeof v === 'string' && v.length > 0;
const isMode = (v: unknown) => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 0o7777;
const fieldChecks: Record<JournalRecord['op'], Record<string, (v: unknown) => boolean>> = {
  file: { p: isPath, h: (v) => typeof v === 'string' && v.length === 64 && HEX64.test(v), s: (v) => isInt(v) && (v as number) >= 0, m: isMode, mt: isNum, ct: isNum, ino: isNum },
  dir: { p: isPath, m: isMode, mt: isNum },
  link: { p: isPath, l: isStr, mt: isNum, ct: isNum, ino: isNum },
  del: { p: isPath },
  base: { from: isNum },
  sync: { upTo: isInt },
};

const checkList = Object.fromEntries(Object.entries(fieldChecks).map(([op, c]) => [op, Object.entries(c)])) as Record<
  string,
  [string, (v: unknown) => boolean][]
>;

/**
 * The same rules as recordSchema, checked by hand: replaying a journal of a large tree at
 * every start must cost little more than parsing it.
 */
export function checkRecord(r: unknown): string | undefined {
  if (r === null || typeof r !== 'object') return 'not an object';
  const o = r as Record<string, unknown>;
  if (!isInt(o.q)) return 'q: expected an integer';
  if (!isNum(o.at)) return 'at: expected a number';
  const checks = checkList[o.op as JournalRecord['op']];
  if (!checks) return `op: unknown ${JSON.stringify(o.op)}`;
  for (const [k, ok] of checks) if (!ok(o[k])) return `${k}: invalid for op ${String(o.op)}`;
  if (o.op === 'file' && o.d !== undefined && !isStr(o.d)) return 'd: invalid for op file';
  return undefined;
}

/** The path a record is about; base and sync records are about the store. */
export function pathOf(r: JournalRecord): string | undefined {
  return r.op === 'base' || r.op === 'sync' ? undefined : r.p;
}

export function frame(record: JournalRecord): Buffer {
  const payload = Buffer.from(JSON.stringify(record), 'utf8');
  const out = Buffer.allocUnsafe(HEADER_BYTES + payload.length);
  out.writeUInt32LE(payload.length, 0);
  out.writeUInt32LE(crc32(payload), 4);
  payload.copy(out, HEADER_BYTES);
  return out;
}

export interface ReadResult {
  records: JournalRecord[];
  /** Bytes up to the end of the last good record. */
  goodBytes: number;
  totalBytes: number;
  /** Why reading stopped before the end of the file, if it did. */
  damage?: string;
}

/** Decodes frames until the end or the first frame that is incomplete or fails its checksum. */
export function decode(buf: Buffer): ReadResult {
  const records: JournalRecord[] = [];
  let off = 0;
  let damage: string | undefined;
  while (off < buf.length) {
    if (buf.length - off < HEADER_BYTES) {
      damage = `incomplete frame header at byte ${off}`;
      break;
    }
    const len = buf.readUInt32LE(off);
    const sum = buf.readUInt32LE(off + 4);
    if (len === 0 || len > MAX_RECORD_BYTES) {
      damage = `impossible frame length ${len} at byte ${off}`;
      break;
    }
    if (buf.length - off - HEADER_BYTES < len) {
      damage = `incomplete record at byte ${off} (${buf.length - off - HEADER_BYTES} of ${len} bytes)`;
      break;
    }
    const payload = buf.subarray(off + HEADER_BYTES, off + HEADER_BYTES + len);
    if (crc32(payload) !== sum) {
      damage = `checksum mismatch at byte ${off}`;
      break;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(buf.toString('utf8', off + HEADER_BYTES, off + HEADER_BYTES + len));
    } catch {
      damage = `unparseable record at byte ${off}`;
      break;
    }
    const problem = checkRecord(parsed);
    if (problem !== undefined) {
      damage = `unrecognised record at byte ${off}: ${problem}`;
      break;
    }
    records.push(parsed as JournalRecord);
    off += HEADER_BYTES + len;
  }
  return { records, goodBytes: off, totalBytes: buf.length, damage };
}

export function readJournal(file: string): ReadResult {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { records: [], goodBytes: 0, totalBytes: 0 };
    throw e;
  }
  return decode(buf);
}

/** The writer's handle: appends batches and fsyncs them. Only the lease holder opens one. */
export class JournalWriter {
  private fd: number;
  private size: number;
  private nextSeq: number;
  private lastAt: number;

  /** Opens `file` for appending after cutting a torn tail off; returns what was read. */
  static open(file: string): { writer: JournalWriter; read: ReadResult } {
    const read = readJournal(file);
    const fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
    if (read.goodBytes < read.totalBytes) {
      fs.ftruncateSync(fd, read.goodBytes);
      fs.fsyncSync(fd);
    }
    const last = read.records[read.records.length - 1];
    return { writer: new JournalWriter(fd, read.goodBytes, last ? last.q + 1 : 1, last ? last.at : 0), read };
  }

  private constructor(fd: number, size: number, nextSeq: number, lastAt: number) {
    this.fd = fd;
    this.size = size;
    this.nextSeq = nextSeq;
    this.lastAt = lastAt;
  }

  get bytes(): number {
    return this.size;
  }

  get lastSeq(): number {
    return this.nextSeq - 1;
  }

  /** A time for a new record: never earlier than the previous one, so time order is journal order. */
  stamp(now = Date.now()): number {
    this.lastAt = Math.max(this.lastAt, now);
    return this.lastAt;
  }

  /** Appends the records and fsyncs; when this resolves they are acknowledged. */
  async append(records: NewRecord[]): Promise<JournalRecord[]> {
    if (records.length === 0) return [];
    const numbered = records.map((r) => ({ ...r, q: this.nextSeq++ }) as JournalRecord);
    const buf = Buffer.concat(numbered.map(frame));
    let written = 0;
    while (written < buf.length) {
      written += await new Promise<number>((resolve, reject) =>
        fs.write(this.fd, buf, written, buf.length - written, this.size + written, (e, n) => (e ? reject(e) : resolve(n))),
      );
    }
    this.size += buf.length;
    await new Promise<void>((resolve, reject) => fs.fdatasync(this.fd, (e) => (e ? reject(e) : resolve())));
    return numbered;
  }

  close(): void {
    try {
      fs.closeSync(this.fd);
    } catch {
      // already closed
    }
  }

  /** After compaction replaced the file: continue appending to the new one. */
  reopen(file: string, size: number): void {
    this.close();
    this.fd = fs.openSync(file, fs.constants.O_RDWR, 0o600);
    this.size = size;
  }
}
