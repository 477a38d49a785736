// Point-in-time restore and version listing, read-only on the store: they need no lease and
// can run while the replicator writes (a record being appended is an incomplete tail, ignored).
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import { parseDuration } from '../duration';
import { hashBuffer, loadHasher, newHasher, type HashAlgorithm } from './digest';
import { readFrameAt, type DirRecord, type FileRecord, type JournalRecord, type LinkRecord } from './journal';
import {
  baseSnapshot,
  describeDamage,
  earliestOf,
  firstRecordOf,
  forEachRecord,
  indexHasPath,
  indexOffsets,
  pathKey,
  readIndex,
  readSnapshot,
  readSnapshotHeader,
  resolveChain,
  segmentEnd,
  snapshotFits,
  type Chain,
  type ChainSegment,
  type SegmentDamage,
  type SegmentIndex,
  type SnapshotFile,
} from './segments';
import { dirnameFs, displayPath, encodeName, fsPath, holdShort, joinFs, viaShort, type FsPath } from './fspath';
import { applyMetadata as applyOwnerAndXattrs, type RecordedMetadata } from './metadata';
import { openStoreForReading, type StoreLayout } from './store';
import { apply, parentOf, within, type Entry, type Tree } from './tree';

export class RestoreError extends Error {}

/** "now", an ISO 8601 time, milliseconds since the epoch, or "-DURATION" (that long ago). */
export function parseTime(s: string, now = Date.now()): number | undefined {
  const t = s.trim();
  if (t === 'now') {
    return now;
  }
  if (t.startsWith('-')) {
    const d = parseDuration(t.slice(1));
    return d === undefined ? undefined : now - d;
  }
  if (/^\d{12,}$/.test(t)) {
    return Number(t);
  }
  if (!/^\d{4}-\d{2}-\d{2}/.test(t)) {
    return undefined;
  }
  const ms = Date.parse(t);
  return Number.isNaN(ms) ? undefined : ms;
}

/** A relative path inside the tree: no leading '/', no '..', no empty parts. */
export function normalisePath(p: string): string {
  const parts = p.split('/').filter((x) => x !== '' && x !== '.');
  if (parts.some((x) => x === '..')) {
    throw new RestoreError(`--path ${JSON.stringify(p)}: must not contain ".."`);
  }
  return parts.join('/');
}

/** The store's journal for reading: its chain of segments, and what is wrong with it. */
export function loadJournal(store: string): { layout: StoreLayout; chain: Chain; warnings: string[] } {
  let layout;
  try {
    layout = openStoreForReading(store);
  } catch (e) {
    throw new RestoreError((e as Error).message);
  }
  let chain: Chain;
  try {
    chain = resolveChain(layout.root);
  } catch (e) {
    throw new RestoreError(`cannot read the journal of ${store}: ${(e as Error).message}`);
  }
  const warnings = [
    ...chain.problems.map((p) => `journal: ${p}`),
    ...chain.ignored.map((i) => `journal: ${i.name} is not part of the journal (${i.why})`),
  ];
  return { layout, chain, warnings };
}

function noteDamage(damage: SegmentDamage[], warnings: string[]): void {
  for (const d of damage) {
    warnings.push(...describeDamage(d));
    // The writer may be appending right now: an incomplete last record is normal then.
    if (d.tail) {
      warnings.push(
        `journal: ignored ${d.tail.bytes} bytes after the last complete record of ${d.segment} (${d.tail.damage})`
      );
    }
  }
}

/**
 * The tree as the journal knew it at time `at` (every record up to and including that time):
 * from the newest snapshot taken before it, then the records after the snapshot.
 */
export function treeAtTime(chain: Chain, at: number, warnings: string[] = []): Tree {
  let tree: Tree = new Map();
  let from = -Infinity;
  const start = chain.segments[0] ? (chain.segments[0] as { first: number }).first - 1 : -Infinity;
  for (let i = chain.snapshots.length - 1; i >= 0; i--) {
    const s = chain.snapshots[i] as SnapshotFile;
    if (s.upTo < start || !snapshotFits(chain, s, Infinity)) {
      continue;
    }
    const h = readSnapshotHeader(s);
    if (!h || h.at > at) {
      continue;
    }
    const snap = readSnapshot(s);
    if (!snap) {
      continue;
    }
    tree = snap.tree;
    from = s.upTo;
    break;
  }
  noteDamage(
    forEachRecord(chain, from, (r) => {
      if (r.at > at) {
        return true;
      }
      apply(tree, r);
      return false;
    }),
    warnings
  );
  return tree;
}

export interface RestoreOptions {
  store: string;
  at: number;
  to: string;
  path?: string;
  /** Restore setuid and setgid bits as recorded (without it they are left out, and listed). */
  keepSpecial?: boolean;
  /** Owners by number only, not by the recorded names (see metadata.ts ownerFor). */
  numericIds?: boolean;
}

export interface RestoreResult {
  at: string;
  to: string;
  files: number;
  dirs: number;
  links: number;
  bytes: number;
  warnings: string[];
  /** Paths that could not be restored as recorded (content missing or damaged in the store, an entry the tree cannot hold). */
  errors: string[];
  /** Paths whose setuid/setgid bits were left out (no keepSpecial), with the recorded and the restored mode. */
  stripped: string[];
  /** Owners and extended attributes that could not be restored, per path, and why (metadata.ts). */
  metadata: string[];
}

/** setuid and setgid: a restored file must not gain privileges because a store said so. */
const SPECIAL_BITS = 0o6000;
const octal = (m: number) => `0${m.toString(8).padStart(3, '0')}`;

const O_CREATE_NEW = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW;
const O_OBJECT = fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK;
const O_PATH = 0o10000000;

/** A file-system error that belongs to one entry (the tree cannot hold it), not to the restore. */
const ENTRY_ERRORS = new Set(['EEXIST', 'ENOTDIR', 'ELOOP', 'EISDIR', 'ENAMETOOLONG']);

/**
 * Where a restored entry gets its metadata: the single place for it. `fd` is the open file for
 * a regular file (its content complete), absent for directories (applied last, deepest first)
 * and symbolic links (their owner and extended attributes; a link's times are not restored).
 * Owner, group and extended attributes go first (metadata.ts): chown clears setuid and setgid,
 * and an ACL sets the group bits.
 */
function applyMetadata(
  e: Entry,
  at: { fd?: number; path: FsPath },
  mode: number,
  ctx: { numericIds?: boolean; report: (problem: string) => void }
): void {
  for (const problem of applyOwnerAndXattrs(at.path, e as RecordedMetadata, { numericIds: ctx.numericIds })) {
    ctx.report(problem);
  }
  if (e.op === 'link') {
    return;
  }
  const t = e.mt / 1000;
  if (at.fd !== undefined) {
    fs.fchmodSync(at.fd, mode);
    fs.futimesSync(at.fd, t, t);
    return;
  }
  viaShort(at.path, (d) => {
    fs.chmodSync(d, mode);
    fs.utimesSync(d, t, t);
  });
}

/**
 * Copies the object for `e` into a new file beside `dest` and checks, from the bytes copied,
 * that they are as many as recorded and hash to the object's name; only then does the file get
 * its name. A damaged or missing object is replaced by the record's inline copy when it has one
 * (and that checks out); otherwise nothing is left behind and the reason is returned. Returns
 * the open file (its content in place under `dest`) to take the entry's metadata.
 */
function restoreContent(layout: StoreLayout, e: FileRecord, dest: FsPath): { fd: number } | { problem: string } {
  const obj = layout.object(e.h);
  const tmp = joinFs(dirnameFs(dest), `.vigil-restore-${randomUUID()}.tmp`);
  const out = viaShort(tmp, (d) => fs.openSync(d, O_CREATE_NEW, 0o600));
  let problem: string | undefined;
  let fd: number | undefined;
  try {
    try {
      fd = fs.openSync(obj, O_OBJECT);
      const st = fs.fstatSync(fd);
      if (!st.isFile()) {
        problem = `its content in the store (${obj}) is not a regular file`;
      } else {
        // An object of another size is hashed only (to name what it is), never copied.
        const copy = st.size === e.s;
        const h = newHasher(layout.hash);
        const buf = Buffer.allocUnsafe(Math.min(Math.max(e.s, 1), 1 << 20));
        let total = 0;
        for (;;) {
          const n = fs.readSync(fd, buf, 0, buf.length, null);
          if (n === 0) {
            break;
          }
          h.update(buf.subarray(0, n));
          if (copy) {
            fs.writeSync(out, buf, 0, n);
          }
          total += n;
        }
        const found = h.digest('hex');
        const sizes = total === e.s ? '' : `; ${total} bytes, ${e.s} recorded`;
        if (found !== e.h) {
          problem = `its content in the store (${e.h}) is damaged: it does not hash to its name (expected ${e.h}, found ${found}${sizes})`;
        } else if (!copy || total !== e.s) {
          problem = `its content in the store (${e.h}) has ${total} bytes, not the ${e.s} recorded`;
        }
      }
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') {
        problem = `its content (${e.h}) is missing from the store`;
      } else if (code === 'ELOOP') {
        problem = `its content in the store (${obj}) is a symbolic link, not an object`;
      } else {
        throw err;
      }
    } finally {
      if (fd !== undefined) {
        fs.closeSync(fd);
      }
    }
    if (problem !== undefined && e.d !== undefined) {
      // Lost in a crash before its checkpoint: the record carries the content.
      const data = Buffer.from(e.d, 'base64');
      if (data.length === e.s && hashBuffer(layout.hash, data) === e.h) {
        fs.ftruncateSync(out, 0);
        fs.writeSync(out, data, 0, data.length, 0);
        problem = undefined;
      }
    }
    // The name is given only to checked content; link() never replaces what is there.
    if (problem === undefined) {
      const a = holdShort(tmp);
      const b = holdShort(dest);
      try {
        fs.linkSync(a.abs, b.abs);
      } finally {
        a.release?.();
        b.release?.();
      }
    }
  } catch (err) {
    fs.closeSync(out);
    viaShort(tmp, (d) => fs.rmSync(d, { force: true }));
    throw err;
  }
  viaShort(tmp, (d) => fs.rmSync(d, { force: true }));
  if (problem !== undefined) {
    fs.closeSync(out);
    return { problem };
  }
  return { fd: out };
}

export async function restoreAsync(o: RestoreOptions): Promise<RestoreResult> {
  await loadHasher(openStoreForReadingOrFail(o.store).hash);
  return restore(o);
}

function openStoreForReadingOrFail(store: string): StoreLayout {
  try {
    return openStoreForReading(store);
  } catch (e) {
    throw new RestoreError((e as Error).message);
  }
}

/**
 * Makes `to` (new or empty) and opens it: everything is written through the open directory
 * (/proc/self/fd/N), so what `to` names cannot change under the restore.
 */
function openTarget(to: string): { root: string; close: () => void } {
  let existing: string[] = [];
  try {
    existing = fs.readdirSync(to);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOTDIR') {
      throw new RestoreError(`${to} is not a directory; restore into a new or empty directory`);
    }
    if (code !== 'ENOENT') {
      throw new RestoreError(`cannot use ${to}: ${(e as Error).message}`);
    }
  }
  if (existing.length > 0) {
    throw new RestoreError(`${to} is not empty; restore into a new or empty directory`);
  }
  fs.mkdirSync(to, { recursive: true });
  const fd = fs.openSync(to, O_PATH | fs.constants.O_DIRECTORY);
  const root = `/proc/self/fd/${fd}`;
  if (!fs.existsSync(root)) {
    // No /proc: the resolved path, checked once.
    fs.closeSync(fd);
    return { root: fs.realpathSync(to), close: () => undefined };
  }
  return { root, close: () => fs.closeSync(fd) };
}

/** Why the tree cannot hold `p` as recorded: a parent of it that is not a directory there. */
function parentProblem(tree: Tree, p: string): string | undefined {
  for (let a = parentOf(p); a !== ''; a = parentOf(a)) {
    const e = tree.get(a);
    if (e && e.op !== 'dir') {
      return `its parent ${displayPath(a)} is ${e.op === 'link' ? 'a symbolic link' : 'a file'} in the journal, not a directory`;
    }
  }
  return undefined;
}

/**
 * Restores the tree as of `o.at` into `o.to`, which must be new or empty. Nothing is written
 * outside it, by construction: every recorded path is relative without '..' (checked when it is
 * read), directories are made one level at a time and each checked with lstat to be a real
 * directory, files are created new (O_EXCL, O_NOFOLLOW) and named only once their content
 * checked out, and symbolic links are made last, when no later write can go through one.
 */
export function restore(o: RestoreOptions): RestoreResult {
  const { layout, chain, warnings } = loadJournal(o.store);
  const earliest = earliestOf(chain);
  if (earliest === null) {
    throw new RestoreError(`the store ${o.store} has no journal records yet`);
  }
  if (o.at < earliest) {
    throw new RestoreError(
      `${new Date(o.at).toISOString()} is before the earliest restorable point ${new Date(earliest).toISOString()}${
        baseSnapshot(chain) || firstRecordOf(chain)?.op === 'base'
          ? ' (older versions were pruned by retention)'
          : ' (the first change captured)'
      }`
    );
  }
  const sub = o.path === undefined ? '' : normalisePath(o.path);
  const tree = treeAtTime(chain, o.at, warnings);
  if (sub !== '' && !tree.has(sub)) {
    throw new RestoreError(`${sub} did not exist at ${new Date(o.at).toISOString()}`);
  }
  const target = openTarget(o.to);
  try {
    return restoreInto(layout, tree, sub, target.root, o, warnings);
  } finally {
    target.close();
  }
}

function restoreInto(
  layout: StoreLayout,
  tree: Tree,
  sub: string,
  root: string,
  o: RestoreOptions,
  warnings: string[]
): RestoreResult {
  const res: RestoreResult = {
    at: new Date(o.at).toISOString(),
    to: o.to,
    files: 0,
    dirs: 0,
    links: 0,
    bytes: 0,
    warnings,
    errors: [],
    stripped: [],
    metadata: [],
  };
  const paths = [...tree.keys()].filter((p) => within(p, sub) || within(sub, p)).sort();
  const modeOf = (p: string, e: FileRecord | DirRecord): number => {
    if (o.keepSpecial || (e.m & SPECIAL_BITS) === 0) {
      return e.m;
    }
    const m = e.m & ~SPECIAL_BITS;
    res.stripped.push(`${displayPath(p)} (${octal(e.m)} restored as ${octal(m)})`);
    return m;
  };
  // Directories known to be real directories made by this restore ('' is the target itself).
  const made = new Set<string>(['']);
  const makeDirs = (rel: string): void => {
    const missing: string[] = [];
    for (let d = rel; !made.has(d); d = parentOf(d)) {
      missing.push(d);
    }
    for (const d of missing.reverse()) {
      const abs = fsPath(root, d);
      try {
        viaShort(abs, (x) => fs.mkdirSync(x, 0o700));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
          throw e;
        }
      }
      if (!viaShort(abs, (x) => fs.lstatSync(x)).isDirectory()) {
        throw Object.assign(new Error(`${displayPath(d)} is not a directory in the restored tree`), {
          code: 'ENOTDIR',
        });
      }
      made.add(d);
    }
  };
  const failed = (p: string, why: string) => res.errors.push(`${displayPath(p)}: ${why}`);
  const dirModes: Array<[Entry, FsPath, number, string]> = [];
  // What could not be restored of an entry's owner or extended attributes is said per path.
  const metaOf = (p: string) => ({
    numericIds: o.numericIds,
    report: (m: string) => res.metadata.push(`${displayPath(p)}: ${m}`),
  });
  const links: Array<[string, LinkRecord]> = [];
  // First directories and files: no symbolic link exists under the target yet, so none can be
  // followed. Names are given back their bytes (fspath.ts); paths of any length are written.
  for (const p of paths) {
    const e = tree.get(p);
    if (!e) {
      continue;
    }
    if (!within(p, sub) && e.op !== 'dir') {
      continue;
    }
    const bad = parentProblem(tree, p);
    if (bad !== undefined) {
      failed(p, bad);
      continue;
    }
    try {
      if (e.op === 'dir') {
        makeDirs(p);
        // Modes and times of directories last: a read-only directory would refuse its contents.
        if (within(p, sub)) {
          dirModes.push([e, fsPath(root, p), modeOf(p, e), p]);
          res.dirs++;
        }
        continue;
      }
      makeDirs(parentOf(p));
      if (e.op === 'link') {
        links.push([p, e]);
        continue;
      }
      const done = restoreContent(layout, e, fsPath(root, p));
      if ('problem' in done) {
        failed(p, done.problem);
        continue;
      }
      try {
        applyMetadata(e, { fd: done.fd, path: fsPath(root, p) }, modeOf(p, e), metaOf(p));
      } finally {
        fs.closeSync(done.fd);
      }
      res.files++;
      res.bytes += e.s;
    } catch (err) {
      if (!ENTRY_ERRORS.has((err as NodeJS.ErrnoException).code ?? '')) {
        throw err;
      }
      failed(p, `cannot be written where the restored tree has it: ${(err as Error).message}`);
    }
  }
  // Then symbolic links, in directories checked above: symlink() never follows its last
  // component and never replaces what is there.
  for (const [p, e] of links) {
    try {
      viaShort(fsPath(root, p), (d) => fs.symlinkSync(encodeName(e.l), d));
      applyMetadata(e, { path: fsPath(root, p) }, 0, metaOf(p));
      res.links++;
    } catch (err) {
      if (!ENTRY_ERRORS.has((err as NodeJS.ErrnoException).code ?? '')) {
        throw err;
      }
      failed(p, `cannot be written where the restored tree has it: ${(err as Error).message}`);
    }
  }
  for (const [e, dest, mode, p] of dirModes.reverse()) {
    applyMetadata(e, { path: dest }, mode, metaOf(p));
  }
  return res;
}

/**
 * Visits the records of `names` in a sealed segment through its index's offsets. Returns true
 * when the segment must be read instead (an offset that does not lead to such a record: a
 * damaged index).
 */
function byOffsets(
  layout: StoreLayout,
  seg: ChainSegment,
  idx: SegmentIndex,
  keys: number[],
  names: Set<string>,
  after: number,
  end: number,
  visit: (r: JournalRecord) => void
): boolean {
  // (Keys of different paths may be equal: each offset once.)
  const offsets = [...new Set(keys.flatMap((k) => indexOffsets(layout.journal, seg.name, idx, k)))].sort(
    (a, b) => a - b
  );
  if (offsets.length === 0) {
    return false;
  }
  const found: JournalRecord[] = [];
  const fd = fs.openSync(seg.file, 'r');
  try {
    for (const off of offsets) {
      const r = readFrameAt(fd, off);
      if (!r || r.op === 'base' || r.op === 'sync') {
        return true;
      }
      // Another path with the same key (a hash collision) is not one of ours.
      if (!names.has(r.p)) {
        continue;
      }
      if (r.q > after && r.q <= end) {
        found.push(r);
      }
    }
  } finally {
    fs.closeSync(fd);
  }
  for (const r of found) {
    visit(r);
  }
  return false;
}

export interface Version {
  seq: number;
  at: string;
  change: 'created' | 'modified' | 'metadata' | 'deleted';
  type: 'file' | 'dir' | 'link' | null;
  size: number | null;
  mode: string | null;
  /** The content's hash in the store's algorithm (hashAlgorithm of the answer); null unless a file. */
  hash: string | null;
  /** The same hash when the store uses SHA-256 (stores from before BLAKE3), else null. */
  sha256: string | null;
  linkTarget?: string;
}

/** Every recorded version of one path, oldest first, deletions included. */
export function versions(
  store: string,
  p: string
): {
  path: string;
  hashAlgorithm: HashAlgorithm;
  versions: Version[];
  earliestRestorable: string | null;
  warnings: string[];
} {
  const { layout, chain, warnings } = loadJournal(store);
  const hash = layout.hash;
  const target = normalisePath(p);
  if (target === '') {
    throw new RestoreError('--path must name a file or directory inside the tree');
  }
  const out: Version[] = [];
  let current: JournalRecord | undefined;
  const describe = (r: FileRecord | DirRecord | LinkRecord, change: Version['change']): Version => ({
    seq: r.q,
    at: new Date(r.at).toISOString(),
    change,
    type: r.op,
    size: r.op === 'file' ? r.s : null,
    mode: r.op === 'link' ? null : `0${r.m.toString(8).padStart(3, '0')}`,
    hash: r.op === 'file' ? r.h : null,
    sha256: r.op === 'file' && hash === 'sha256' ? r.h : null,
    ...(r.op === 'link' ? { linkTarget: r.l } : {}),
  });
  // The version in force at the journal's base (what retention kept), listed at its own time.
  const base = baseSnapshot(chain);
  if (base) {
    const snap = readSnapshot(base.file);
    const e = snap?.tree.get(target);
    if (e) {
      out.push(describe(e, 'created'));
      current = e;
    }
  }
  const gone = (r: JournalRecord) => {
    out.push({
      seq: r.q,
      at: new Date(r.at).toISOString(),
      change: 'deleted',
      type: null,
      size: null,
      mode: null,
      hash: null,
      sha256: null,
    });
    current = undefined;
  };
  const visit = (r: JournalRecord) => {
    if (r.op === 'base' || r.op === 'sync') {
      return;
    }
    if (r.op === 'del') {
      if (current && within(target, r.p)) {
        gone(r);
      }
      return;
    }
    if (r.p !== target) {
      // A file put where a parent directory was removes the subtree.
      if (current && r.op !== 'dir' && within(target, r.p)) {
        gone(r);
      }
      return;
    }
    let change: Version['change'] = current ? 'modified' : 'created';
    if (current && current.op === r.op) {
      const same =
        (r.op === 'file' && current.op === 'file' && r.h === current.h) ||
        (r.op === 'link' && current.op === 'link' && r.l === current.l) ||
        r.op === 'dir';
      if (same) {
        change = 'metadata';
      }
    }
    out.push(describe(r, change));
    current = r;
  };
  // The records that name the path or one of its parents, and no others: a sealed segment's
  // index gives their offsets (a segment that does not name them is not opened); any other
  // segment is read, parsing only the frames that name them.
  const names = new Set<string>();
  for (let d = target; d !== ''; d = parentOf(d)) {
    names.add(d);
  }
  const keys = [...names].map(pathKey);
  const needles = [...names].map((d) => Buffer.from(`"p":${JSON.stringify(d)}`));
  const filter = (payload: Buffer) => needles.some((n) => payload.includes(n));
  const after = base ? base.header.upTo : -Infinity;
  for (let i = 0; i < chain.segments.length; i++) {
    const seg = chain.segments[i] as ChainSegment;
    const next = chain.segments[i + 1];
    const end = segmentEnd(chain, i);
    if (end <= after) {
      continue;
    }
    const idx = seg.legacy || !next ? undefined : readIndex(layout.journal, seg.name);
    if (idx && !byOffsets(layout, seg, idx, keys, names, after, end, visit)) {
      continue;
    }
    if (idx && keys.every((k) => !indexHasPath(idx, k))) {
      continue;
    }
    noteDamage(
      forEachRecord(chain, after, (r) => visit(r), { only: (_s, j) => j === i, filter }),
      warnings
    );
  }
  const earliest = earliestOf(chain);
  return {
    path: target,
    hashAlgorithm: hash,
    versions: out,
    earliestRestorable: earliest === null ? null : new Date(earliest).toISOString(),
    warnings,
  };
}
