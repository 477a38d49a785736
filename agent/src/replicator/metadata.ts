// Owners, groups and extended attributes (POSIX ACLs included: they are the
// `system.posix_acl_access` and `system.posix_acl_default` attributes) of captured paths, and
// putting them back at restore.
//
// Node has no extended-attribute API: the native module `@napi-rs/xattr` (prebuilt per
// platform) does it, loaded on first use. Where it does not load (the single-file build, a
// platform without a binary) capture goes on and every record says why its attributes are
// missing (`xe`), and a restore says so for every path that has some.
//
// Record keys (added to file, dir and link records; records written before them have none and
// restore as they always did):
//   u, g    owner and group, numeric, always
//   un, gn  their names, where /etc/passwd and /etc/group resolve them
//   x       extended attributes: name -> value (base64); absent when there are none
//   xe      why the attributes were not captured (or not all of them)
import * as fs from 'node:fs';
import { constants as osConstants } from 'node:os';
import type { FsPath } from './fspath';

/** At most this many bytes of attribute names and values per path are captured. */
export const XATTR_MAX_BYTES = 64 * 1024;

export interface Metadata {
  u: number;
  g: number;
  un?: string;
  gn?: string;
  x?: Record<string, string>;
  xe?: string;
}

/** What a record may carry of the above (older records carry none of it). */
export type RecordedMetadata = Partial<Metadata>;

interface XattrModule {
  listAttributesSync(path: string): string[];
  getAttributeSync(path: string, name: string): Buffer | null;
  setAttributeSync(path: string, name: string, value: Uint8Array): void;
}

const XATTR_MODULE = '@napi-rs/xattr';
let xattrMod: { mod: XattrModule } | { why: string } | undefined;

/** The native module, or why it is not there (not installed, no binary for this platform). */
export function xattrModule(): { mod: XattrModule } | { why: string } {
  if (xattrMod !== undefined) {
    return xattrMod;
  }
  if (process.env.VIGIL_NATIVE_XATTR === '0') {
    return (xattrMod = { why: 'switched off (VIGIL_NATIVE_XATTR=0)' });
  }
  try {
    // A plain require with a computed name: the single-file build leaves it out and falls back.
    xattrMod = { mod: require(require.resolve(XATTR_MODULE)) as XattrModule };
  } catch (e) {
    xattrMod = {
      why: `the module ${XATTR_MODULE} is not available on this machine (${(e as Error).message.split('\n')[0]})`,
    };
  }
  return xattrMod;
}

// ---- names of users and groups ----

interface IdFile {
  file: string;
  byId: Map<number, string>;
  byName: Map<string, number>;
  mtimeMs: number;
  checkedAt: number;
}

/** How long a read of /etc/passwd or /etc/group is trusted before its mtime is looked at again. */
const ID_RECHECK_MS = 2000;
const idFiles = new Map<string, IdFile>();

function idFile(file: string, now = Date.now()): IdFile {
  let f = idFiles.get(file);
  if (f && now - f.checkedAt < ID_RECHECK_MS) {
    return f;
  }
  const mtimeMs = fs.statSync(file, { throwIfNoEntry: false })?.mtimeMs ?? -1;
  if (f && f.mtimeMs === mtimeMs) {
    f.checkedAt = now;
    return f;
  }
  f = { file, byId: new Map(), byName: new Map(), mtimeMs, checkedAt: now };
  let text = '';
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    // No such file: no names resolve, numbers are kept anyway.
  }
  for (const line of text.split('\n')) {
    const [name, , id] = line.split(':');
    const n = Number(id);
    if (!name || id === undefined || id === '' || !Number.isInteger(n)) {
      continue;
    }
    if (!f.byId.has(n)) {
      f.byId.set(n, name);
    }
    if (!f.byName.has(name)) {
      f.byName.set(name, n);
    }
  }
  idFiles.set(file, f);
  return f;
}

/** Where names come from: the local files only (names from LDAP and the like do not resolve). */
export const ID_FILES = { passwd: '/etc/passwd', group: '/etc/group' };

export function userName(uid: number): string | undefined {
  return idFile(ID_FILES.passwd).byId.get(uid);
}
export function groupName(gid: number): string | undefined {
  return idFile(ID_FILES.group).byId.get(gid);
}
export function userId(name: string): number | undefined {
  return idFile(ID_FILES.passwd).byName.get(name);
}
export function groupId(name: string): number | undefined {
  return idFile(ID_FILES.group).byName.get(name);
}

// ---- paths the native module accepts ----

const utf8 = new TextDecoder('utf-8', { fatal: true });
const O_PATH = 0o10000000;

/** The native module's errors carry "(os error N)": the errno's name, like node:fs gives. */
function errnoOf(e: unknown): string {
  const m = /\(os error (\d+)\)/.exec(String((e as Error)?.message));
  if (!m) {
    return (e as NodeJS.ErrnoException)?.code ?? 'error';
  }
  const n = Number(m[1]);
  for (const [name, v] of Object.entries(osConstants.errno)) {
    if (v === n) {
      return name;
    }
  }
  return `errno ${n}`;
}

/**
 * Runs `fn` with a text path for `p` (the native module takes text only). A name that is not
 * UTF-8 in a parent is reached through an open descriptor of the parent (O_PATH); only the
 * last name itself must be UTF-8. The module never follows a last symbolic link.
 */
function withTextPath<T>(p: FsPath, fn: (s: string) => T): T {
  if (typeof p === 'string') {
    return fn(p);
  }
  try {
    return fn(utf8.decode(p));
  } catch (e) {
    if (!(e instanceof TypeError)) {
      throw e;
    }
  }
  const cut = p.lastIndexOf(0x2f);
  let last: string;
  try {
    last = utf8.decode(p.subarray(cut + 1));
  } catch {
    throw Object.assign(new Error('its name is not UTF-8, which the extended-attribute module cannot take'), {
      code: 'ENAMEUTF8',
    });
  }
  const fd = fs.openSync(cut <= 0 ? Buffer.from('/') : p.subarray(0, cut), O_PATH | fs.constants.O_DIRECTORY);
  try {
    return fn(`/proc/self/fd/${fd}/${last}`);
  } finally {
    fs.closeSync(fd);
  }
}

// ---- capture ----

/** Logged once per reason that applies to every path (the module missing). */
const warnedOnce = new Set<string>();

/**
 * Owner, group and extended attributes of `abs` (a path the system accepts: see viaShort), whose
 * lstat gave `uid` and `gid`. Never throws: what cannot be read is said in `xe`.
 */
export function readMetadata(
  abs: FsPath,
  uid: number,
  gid: number,
  warn?: (msg: string, fields: Record<string, unknown>) => void
): Metadata {
  const out: Metadata = { u: uid, g: gid };
  const un = userName(uid);
  const gn = groupName(gid);
  if (un !== undefined) {
    out.un = un;
  }
  if (gn !== undefined) {
    out.gn = gn;
  }
  const x = readXattrs(abs);
  if ('x' in x) {
    if (Object.keys(x.x).length > 0) {
      out.x = x.x;
    }
    if (x.partial) {
      out.xe = x.partial;
    }
  } else {
    out.xe = x.why;
    if (x.once) {
      if (!warnedOnce.has(x.why)) {
        warn?.('extended attributes are not captured', { why: x.why });
      }
      warnedOnce.add(x.why);
    } else {
      warn?.('extended attributes not captured', { why: x.why });
    }
  }
  return out;
}

type XattrRead = { x: Record<string, string>; partial?: string } | { why: string; once?: boolean };

function readXattrs(abs: FsPath): XattrRead {
  const m = xattrModule();
  if (!('mod' in m)) {
    return { why: `not read: ${m.why}`, once: true };
  }
  const mod = m.mod;
  try {
    return withTextPath(abs, (s) => {
      let names: string[];
      try {
        names = mod.listAttributesSync(s);
      } catch (e) {
        const code = errnoOf(e);
        // A file system without extended attributes has none to lose.
        if (code === 'ENOTSUP' || code === 'EOPNOTSUPP') {
          return { x: {} };
        }
        return { why: `not read: listing them failed (${code})` };
      }
      const x: Record<string, string> = {};
      const failed: string[] = [];
      let bytes = 0;
      for (const name of names.sort()) {
        let v: Buffer | null;
        try {
          v = mod.getAttributeSync(s, name);
        } catch (e) {
          failed.push(`${name} (${errnoOf(e)})`);
          continue;
        }
        if (v === null) {
          continue;
        } // removed since the listing
        bytes += Buffer.byteLength(name) + v.length;
        if (bytes > XATTR_MAX_BYTES) {
          return { why: `not captured: too large (more than ${XATTR_MAX_BYTES} bytes of names and values)` };
        }
        x[name] = v.toString('base64');
      }
      return failed.length > 0 ? { x, partial: `not read: ${failed.join(', ')}` } : { x };
    });
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    return { why: `not read: ${err.code === 'ENAMEUTF8' ? err.message : `${err.code ?? 'error'}`}` };
  }
}

/** Whether a record already says what `m` says (a record without owner predates these keys). */
export function sameMetadata(e: RecordedMetadata, m: Metadata): boolean {
  if (e.u !== m.u || e.g !== m.g || e.un !== m.un || e.gn !== m.gn || e.xe !== m.xe) {
    return false;
  }
  const a = e.x ?? {};
  const b = m.x ?? {};
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) {
    return false;
  }
  return ka.every((k) => a[k] === b[k]);
}

/** Whether recorded metadata names an owner (records from before owners were recorded do not). */
export function recordsOwner(e: RecordedMetadata | undefined): boolean {
  return e?.u !== undefined;
}

/** Whether the recorded owner and group are uid and gid; nothing recorded matches any. */
export function sameOwner(e: RecordedMetadata | undefined, uid: number, gid: number): boolean {
  return e?.u === undefined || (e.u === uid && e.g === gid);
}

/** The metadata of a path whose attributes could not be read at all (`code`): owner and group, and why. */
export function metadataNotRead(uid: number, gid: number, code: string): Metadata {
  return { u: uid, g: gid, xe: `not read: ${code}` };
}

/** A record's metadata keys checked (journal.ts): an error message, or undefined. */
export function checkMetadataKeys(o: Record<string, unknown>): string | undefined {
  const id = (v: unknown) => v === undefined || (Number.isInteger(v) && (v as number) >= 0);
  const str = (v: unknown) => v === undefined || typeof v === 'string';
  if (!id(o.u)) {
    return 'u: expected a non-negative integer';
  }
  if (!id(o.g)) {
    return 'g: expected a non-negative integer';
  }
  for (const k of ['un', 'gn', 'xe']) {
    if (!str(o[k])) {
      return `${k}: expected a string`;
    }
  }
  if (o.x !== undefined) {
    if (o.x === null || typeof o.x !== 'object' || Array.isArray(o.x)) {
      return 'x: expected an object';
    }
    for (const v of Object.values(o.x)) {
      if (typeof v !== 'string') {
        return 'x: expected base64 strings';
      }
    }
  }
  return undefined;
}

// ---- restore ----

export interface ApplyOptions {
  /** Owners by number only; otherwise by name where the recorded name resolves here (as rsync). */
  numericIds?: boolean;
  /** Whether this process may give files away (root); default: its effective uid is 0. */
  root?: boolean;
}

/** The uid and gid to give a restored path: by name where it resolves here, unless numericIds. */
export function ownerFor(e: RecordedMetadata, numericIds = false): { uid: number; gid: number } | undefined {
  if (e.u === undefined || e.g === undefined) {
    return undefined;
  }
  const uid = !numericIds && e.un !== undefined ? (userId(e.un) ?? e.u) : e.u;
  const gid = !numericIds && e.gn !== undefined ? (groupId(e.gn) ?? e.g) : e.g;
  return { uid, gid };
}

function describeOwner(uid: number, gid: number, e: RecordedMetadata): string {
  return `${e.un ?? uid}:${e.gn ?? gid}${e.un !== undefined || e.gn !== undefined ? ` (${uid}:${gid})` : ''}`;
}

/**
 * Gives the restored path `dest` (a path the system accepts, just created by the restore) the
 * recorded owner and extended attributes. Call it before the mode is set: chown clears setuid
 * and setgid, and an ACL sets the group bits. Returns what could not be restored, and why.
 * Symbolic links are never followed (lchown; the module's calls do not follow).
 */
export function applyMetadata(dest: FsPath, e: RecordedMetadata, o: ApplyOptions = {}): string[] {
  const problems: string[] = [];
  const owner = ownerFor(e, o.numericIds);
  if (owner) {
    const root = o.root ?? process.geteuid?.() === 0;
    if (root) {
      try {
        fs.lchownSync(dest, owner.uid, owner.gid);
      } catch (err) {
        problems.push(
          `owner ${describeOwner(owner.uid, owner.gid, e)} not restored: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`
        );
      }
    } else {
      const st = fs.lstatSync(dest);
      if (st.uid !== owner.uid || st.gid !== owner.gid) {
        problems.push(`owner ${describeOwner(owner.uid, owner.gid, e)} not restored: not root`);
      }
    }
  }
  if (e.xe !== undefined) {
    problems.push(`extended attributes ${e.xe}`);
  }
  const names = e.x ? Object.keys(e.x) : [];
  if (names.length === 0) {
    return problems;
  }
  const m = xattrModule();
  if (!('mod' in m)) {
    problems.push(`extended attributes (${names.join(', ')}) not restored: ${m.why}`);
    return problems;
  }
  try {
    withTextPath(dest, (s) => {
      for (const name of names) {
        try {
          m.mod.setAttributeSync(s, name, Buffer.from((e.x as Record<string, string>)[name] as string, 'base64'));
        } catch (err) {
          problems.push(`extended attribute ${name} not restored: ${errnoOf(err)}`);
        }
      }
    });
  } catch (err) {
    const x = err as NodeJS.ErrnoException;
    problems.push(
      `extended attributes (${names.join(', ')}) not restored: ${x.code === 'ENAMEUTF8' ? x.message : (x.code ?? x.message)}`
    );
  }
  return problems;
}
