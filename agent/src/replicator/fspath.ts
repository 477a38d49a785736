// Paths of the protected tree as the file system has them, whatever they are.
//
// Names: Linux names are bytes. A name that is not valid UTF-8 is kept in the journal's
// strings by mapping each byte of an invalid sequence to a lone surrogate U+DC80–U+DCFF (the
// "surrogateescape" of other tools); a valid UTF-8 name never decodes to one, so the mapping is
// exact both ways, and fsPath() gives the original bytes back for system calls.
//
// Length: a path longer than the system's limit (PATH_MAX, 4096 bytes) cannot be handed to a
// system call. shortPath() opens the directories on the way one piece at a time (O_PATH, which
// needs only search permission) and hands the call /proc/self/fd/N/rest instead.
import * as fs from 'node:fs';
import * as path from 'node:path';

export type FsPath = string | Buffer;

const decoder = new TextDecoder('utf-8', { fatal: true });

/** The length in bytes of the valid UTF-8 sequence at `i`, or 0. */
function utf8Sequence(b: Uint8Array, i: number): number {
  const c = b[i] as number;
  if (c < 0x80) {
    return 1;
  }
  const cont = (k: number) => i + k < b.length && ((b[i + k] as number) & 0xc0) === 0x80;
  if (c >= 0xc2 && c <= 0xdf) {
    return cont(1) ? 2 : 0;
  }
  if (c >= 0xe0 && c <= 0xef) {
    if (!cont(1) || !cont(2)) {
      return 0;
    }
    const c1 = b[i + 1] as number;
    if (c === 0xe0 && c1 < 0xa0) {
      return 0;
    } // overlong
    if (c === 0xed && c1 >= 0xa0) {
      return 0;
    } // a surrogate
    return 3;
  }
  if (c >= 0xf0 && c <= 0xf4) {
    if (!cont(1) || !cont(2) || !cont(3)) {
      return 0;
    }
    const c1 = b[i + 1] as number;
    if (c === 0xf0 && c1 < 0x90) {
      return 0;
    } // overlong
    if (c === 0xf4 && c1 >= 0x90) {
      return 0;
    } // beyond U+10FFFF
    return 4;
  }
  return 0;
}

/** A name's bytes as a string: UTF-8, with the bytes of invalid sequences as U+DC80–U+DCFF. */
export function decodeName(b: Uint8Array): string {
  try {
    return decoder.decode(b);
  } catch {
    // not valid UTF-8: decode piece by piece below
  }
  let out = '';
  let start = 0;
  let i = 0;
  while (i < b.length) {
    const n = utf8Sequence(b, i);
    if (n > 0) {
      i += n;
      continue;
    }
    if (i > start) {
      out += decoder.decode(b.subarray(start, i));
    }
    out += String.fromCharCode(0xdc00 + (b[i] as number));
    i++;
    start = i;
  }
  if (start < b.length) {
    out += decoder.decode(b.subarray(start));
  }
  return out;
}

/** Whether a string holds escaped bytes (a lone low surrogate U+DC80–U+DCFF). */
export function hasEscapes(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xdc80 && c <= 0xdcff && !(i > 0 && (s.charCodeAt(i - 1) & 0xfc00) === 0xd800)) {
      return true;
    }
  }
  return false;
}

/** The bytes a string stands for (the inverse of decodeName). */
export function encodeName(s: string): Buffer {
  if (!hasEscapes(s)) {
    return Buffer.from(s, 'utf8');
  }
  const parts: Buffer[] = [];
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xdc80 && c <= 0xdcff && !(i > 0 && (s.charCodeAt(i - 1) & 0xfc00) === 0xd800)) {
      if (i > start) {
        parts.push(Buffer.from(s.slice(start, i), 'utf8'));
      }
      parts.push(Buffer.from([c - 0xdc00]));
      start = i + 1;
    }
  }
  if (start < s.length) {
    parts.push(Buffer.from(s.slice(start), 'utf8'));
  }
  return Buffer.concat(parts);
}

/** `root` + '/' + the relative path `rel` (journal form), for system calls. */
export function fsPath(root: string, rel: string): FsPath {
  if (rel === '') {
    return root;
  }
  if (!hasEscapes(rel)) {
    return path.join(root, rel);
  }
  return Buffer.concat([Buffer.from(root.endsWith('/') ? root : `${root}/`, 'utf8'), encodeName(rel)]);
}

/** A readable form of a journal path (escaped bytes as \xNN), for messages. */
export function displayPath(rel: string): string {
  if (!hasEscapes(rel)) {
    return rel;
  }
  let out = '';
  for (let i = 0; i < rel.length; i++) {
    const c = rel.charCodeAt(i);
    out += c >= 0xdc80 && c <= 0xdcff ? `\\x${(c - 0xdc00).toString(16)}` : rel[i];
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Paths longer than PATH_MAX

/** Paths at least this long (bytes) go through /proc/self/fd: PATH_MAX is 4096 with the NUL. */
export const LONG_PATH_BYTES = 4000;
const O_PATH = 0o10000000;

const byteLength = (p: FsPath) => (typeof p === 'string' ? Buffer.byteLength(p) : p.length);

/** Splits `p` at a '/' so that every piece is shorter than `max` bytes. */
function pieces(p: Buffer, max: number): Buffer[] {
  const out: Buffer[] = [];
  let start = 0;
  while (p.length - start > max) {
    let cut = p.lastIndexOf(0x2f, start + max);
    if (cut <= start) {
      throw Object.assign(new Error(`a name in ${p.toString()} is too long`), { code: 'ENAMETOOLONG' });
    }
    out.push(p.subarray(start, cut));
    start = cut + 1;
    while (p[start] === 0x2f) {
      start++;
    }
    cut = start;
  }
  out.push(p.subarray(start));
  return out;
}

/**
 * Opens the directories of a long path's head (O_PATH, one piece of under 2 KiB at a time)
 * and returns the path to hand to a system call, with the descriptor to close after it.
 */
function openShort(p: FsPath, threshold = LONG_PATH_BYTES): { short: FsPath; fd?: number } {
  if (byteLength(p) < threshold) {
    return { short: p };
  }
  const parts = pieces(typeof p === 'string' ? Buffer.from(p) : p, 2048);
  const last = parts.pop() as Buffer;
  let fd: number | undefined;
  try {
    for (const part of parts) {
      const where = fd === undefined ? part : Buffer.concat([Buffer.from(`/proc/self/fd/${fd}/`), part]);
      const next = fs.openSync(where.length === 0 ? '/' : where, O_PATH | fs.constants.O_DIRECTORY);
      if (fd !== undefined) {
        fs.closeSync(fd);
      }
      fd = next;
    }
  } catch (e) {
    if (fd !== undefined) {
      fs.closeSync(fd);
    }
    throw e;
  }
  return { short: Buffer.concat([Buffer.from(`/proc/self/fd/${fd}/`), last]), fd };
}

/**
 * A path the system accepts for `p` (at least `threshold` bytes long: through an open O_PATH
 * descriptor), and how to release it once the call that needs it is done.
 */
export function holdShort(p: FsPath, threshold = LONG_PATH_BYTES): { abs: FsPath; release?: () => void } {
  if (byteLength(p) < threshold) {
    return { abs: p };
  }
  const { short, fd } = openShort(p, threshold);
  return { abs: short, release: fd === undefined ? undefined : () => fs.closeSync(fd) };
}

/** Runs `fn` with a path the system accepts for `p`, however long `p` is. */
export function viaShort<T>(p: FsPath, fn: (short: FsPath) => T): T {
  const { short, fd } = openShort(p);
  try {
    return fn(short);
  } finally {
    if (fd !== undefined) {
      fs.closeSync(fd);
    }
  }
}

export async function viaShortAsync<T>(p: FsPath, fn: (short: FsPath) => Promise<T>): Promise<T> {
  const { short, fd } = openShort(p);
  try {
    return await fn(short);
  } finally {
    if (fd !== undefined) {
      fs.closeSync(fd);
    }
  }
}

/** `mkdir -p` for any length: each level made through a short path. */
export function mkdirp(p: FsPath, mode = 0o777): void {
  if (byteLength(p) < LONG_PATH_BYTES) {
    fs.mkdirSync(p, { recursive: true, mode });
    return;
  }
  const b = typeof p === 'string' ? Buffer.from(p) : p;
  const cut = b.lastIndexOf(0x2f);
  if (cut <= 0) {
    return;
  }
  const parent = b.subarray(0, cut);
  try {
    viaShort(b, (s) => fs.mkdirSync(s, { mode }));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') {
      return;
    }
    if (code !== 'ENOENT') {
      throw e;
    }
    mkdirp(parent, mode);
    viaShort(b, (s) => fs.mkdirSync(s, { mode }));
  }
}

/** `rm -rf` for any length. */
export function rmrf(p: FsPath): void {
  if (byteLength(p) < LONG_PATH_BYTES - 512) {
    try {
      fs.rmSync(p, { recursive: true, force: true });
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENAMETOOLONG') {
        throw e;
      }
    }
  }
  const st = viaShort(p, (s) => fs.lstatSync(s, { throwIfNoEntry: false }));
  if (!st) {
    return;
  }
  if (st.isDirectory()) {
    const b = typeof p === 'string' ? Buffer.from(p) : p;
    for (const name of viaShort(p, (s) => fs.readdirSync(s, { encoding: 'buffer' }))) {
      rmrf(Buffer.concat([b, Buffer.from('/'), name]));
    }
    viaShort(p, (s) => fs.rmdirSync(s));
  } else {
    viaShort(p, (s) => fs.rmSync(s, { force: true }));
  }
}

/** Appends a relative journal path to a system path (either may be long or raw bytes). */
export function joinFs(base: FsPath, rel: string): FsPath {
  if (typeof base === 'string' && !hasEscapes(rel)) {
    return path.join(base, rel);
  }
  const b = typeof base === 'string' ? Buffer.from(base) : base;
  return Buffer.concat([b, Buffer.from('/'), encodeName(rel)]);
}

/** The parent directory of a system path. */
export function dirnameFs(p: FsPath): FsPath {
  if (typeof p === 'string') {
    return path.dirname(p);
  }
  const cut = p.lastIndexOf(0x2f);
  return cut <= 0 ? Buffer.from('/') : p.subarray(0, cut);
}

/**
 * Why `p` cannot be a path of the protected tree as the journal records it, or undefined when
 * it can: relative, '/'-separated, no empty, '.' or '..' component, no NUL. A name may hold any
 * other byte ('..foo' and '.x' are names like any other). Every record's path is checked with
 * this before a reader uses it: the store may sit on storage that someone else writes, and a
 * path that climbs out of the tree must not steer a restore.
 */
export function recordPathProblem(p: string): string | undefined {
  if (p.length === 0) {
    return 'empty';
  }
  if (p.charCodeAt(0) === 0x2f) {
    return 'absolute';
  }
  if (p.includes('\0')) {
    return 'a NUL byte';
  }
  if (p.endsWith('/') || p.includes('//')) {
    return 'an empty component';
  }
  if (p === '..' || p.startsWith('../') || p.endsWith('/..') || p.includes('/../')) {
    return 'a ".." component';
  }
  if (p === '.' || p.startsWith('./') || p.endsWith('/.') || p.includes('/./')) {
    return 'a "." component';
  }
  return undefined;
}

export const validRecordPath = (p: string): boolean => recordPathProblem(p) === undefined;
