// Point-in-time restore and version listing, read-only on the store: they need no lease and
// can run while the replicator writes (a record being appended is an incomplete tail, ignored).
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
import { dirnameFs, displayPath, encodeName, fsPath, mkdirp, viaShort, type FsPath } from './fspath';
import { applyMetadata, type RecordedMetadata } from './metadata';
import { openStoreForReading, type StoreLayout } from './store';
import { apply, parentOf, within, type Tree } from './tree';

export class RestoreError extends Error {}

/** "now", an ISO 8601 time, milliseconds since the epoch, or "-DURATION" (that long ago). */
export function parseTime(s: string, now = Date.now()): number | undefined {
  const t = s.trim();
  if (t === 'now') return now;
  if (t.startsWith('-')) {
    const d = parseDuration(t.slice(1));
    return d === undefined ? undefined : now - d;
  }
  if (/^\d{12,}$/.test(t)) return Number(t);
  if (!/^\d{4}-\d{2}-\d{2}/.test(t)) return undefined;
  const ms = Date.parse(t);
  return Number.isNaN(ms) ? undefined : ms;
}

/** A relative path inside the tree: no leading '/', no '..', no empty parts. */
export function normalisePath(p: string): string {
  const parts = p.split('/').filter((x) => x !== '' && x !== '.');
  if (parts.some((x) => x === '..')) throw new RestoreError(`--path ${JSON.stringify(p)}: must not contain ".."`);
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
  const warnings = [...chain.problems.map((p) => `journal: ${p}`), ...chain.ignored.map((i) => `journal: ${i.name} is not part of the journal (${i.why})`)];
  return { layout, chain, warnings };
}

function noteDamage(damage: SegmentDamage[], warnings: string[]): void {
  for (const d of damage) {
    warnings.push(...describeDamage(d));
    // The writer may be appending right now: an incomplete last record is normal then.
    if (d.tail) warnings.push(`journal: ignored ${d.tail.bytes} bytes after the last complete record of ${d.segment} (${d.tail.damage})`);
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
    if (s.upTo < start || !snapshotFits(chain, s, Infinity)) continue;
    const h = readSnapshotHeader(s);
    if (!h || h.at > at) continue;
    const snap = readSnapshot(s);
    if (!snap) continue;
    tree = snap.tree;
    from = s.upTo;
    break;
  }
  noteDamage(
    forEachRecord(chain, from, (r) => {
      if (r.at > at) return true;
      apply(tree, r);
      return false;
    }),
    warnings,
  );
  return tree;
}

export interface RestoreResult {
  at: string;
  to: string;
  files: number;
  dirs: number;
  links: number;
  bytes: number;
  warnings: string[];
  /** Paths that could not be restored as recorded (content missing or damaged in the store). */
  errors: string[];
  /** Owners and extended attributes that could not be restored, per path, and why (metadata.ts). */
  metadata: string[];
}

/**
 * Copies the object for `e` to `dest` and checks, from the bytes copied, that they hash to the
 * object's name. A damaged or missing object is replaced by the record's inline copy when it
 * has one (and that checks out); otherwise the file is left out and the reason returned.
 */
function restoreContent(layout: StoreLayout, e: FileRecord, dest: FsPath): string | undefined {
  const obj = layout.object(e.h);
  let problem: string | undefined;
  let fd: number | undefined;
  try {
    fd = fs.openSync(obj, 'r');
    const out = viaShort(dest, (d) => fs.openSync(d, 'w', 0o600));
    const h = newHasher(layout.hash);
    const buf = Buffer.allocUnsafe(Math.min(Math.max(e.s, 1), 1 << 20));
    let total = 0;
    try {
      for (;;) {
        const n = fs.readSync(fd, buf, 0, buf.length, null);
        if (n === 0) break;
        h.update(buf.subarray(0, n));
        fs.writeSync(out, buf, 0, n);
        total += n;
      }
    } finally {
      fs.closeSync(out);
    }
    if (h.digest('hex') !== e.h) problem = `its content in the store (${e.h}) is damaged: it does not hash to its name`;
    else if (total !== e.s) problem = `its content in the store has ${total} bytes, not the ${e.s} recorded`;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT') throw err;
    problem = `its content (${e.h}) is missing from the store`;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
  if (problem === undefined) return undefined;
  // Lost in a crash before its checkpoint: the record carries the content.
  if (e.d !== undefined) {
    const data = Buffer.from(e.d, 'base64');
    if (hashBuffer(layout.hash, data) === e.h) {
      viaShort(dest, (d) => fs.writeFileSync(d, data, { mode: 0o600 }));
      return undefined;
    }
  }
  viaShort(dest, (d) => fs.rmSync(d, { force: true }));
  return problem;
}

export interface RestoreOptions {
  store: string;
  at: number;
  to: string;
  path?: string;
  /** Owners by number only, not by the recorded names (see metadata.ts ownerFor). */
  numericIds?: boolean;
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

export function restore(o: RestoreOptions): RestoreResult {
  const { layout, chain, warnings } = loadJournal(o.store);
  const earliest = earliestOf(chain);
  if (earliest === null) throw new RestoreError(`the store ${o.store} has no journal records yet`);
  if (o.at < earliest) {
    throw new RestoreError(
      `${new Date(o.at).toISOString()} is before the earliest restorable point ${new Date(earliest).toISOString()}${
        baseSnapshot(chain) || firstRecordOf(chain)?.op === 'base' ? ' (older versions were pruned by retention)' : ' (the first change captured)'
      }`,
    );
  }
  const sub = o.path === undefined ? '' : normalisePath(o.path);
  const tree = treeAtTime(chain, o.at, warnings);
  if (sub !== '' && !tree.has(sub)) throw new RestoreError(`${sub} did not exist at ${new Date(o.at).toISOString()}`);
  const existing = fs.existsSync(o.to) ? fs.readdirSync(o.to) : [];
  if (existing.length > 0) throw new RestoreError(`${o.to} is not empty; restore into a new or empty directory`);
  fs.mkdirSync(o.to, { recursive: true });

  const res: RestoreResult = { at: new Date(o.at).toISOString(), to: o.to, files: 0, dirs: 0, links: 0, bytes: 0, warnings, errors: [], metadata: [] };
  // Owner and extended attributes, before the mode (chown clears setuid and setgid).
  const metadata = (d: FsPath, p: string, e: RecordedMetadata) => {
    for (const m of applyMetadata(d, e, { numericIds: o.numericIds })) res.metadata.push(`${displayPath(p)}: ${m}`);
  };
  const paths = [...tree.keys()].filter((p) => within(p, sub) || within(sub, p)).sort();
  const dirModes: [FsPath, number, number, string][] = [];
  // Names are given back their bytes (fspath.ts); paths of any length are written.
  for (const p of paths) {
    const e = tree.get(p);
    if (!e) continue;
    const dest = fsPath(o.to, p);
    if (e.op === 'dir') {
      mkdirp(dest);
      // Modes and times of directories last: a read-only directory would refuse its contents.
      if (within(p, sub)) {
        dirModes.push([dest, e.m, e.mt, p]);
        res.dirs++;
      }
      continue;
    }
    if (!within(p, sub)) continue;
    mkdirp(dirnameFs(dest));
    if (e.op === 'link') {
      viaShort(dest, (d) => fs.symlinkSync(encodeName(e.l), d));
      viaShort(dest, (d) => metadata(d, p, e));
      res.links++;
      continue;
    }
    const problem = restoreContent(layout, e, dest);
    if (problem !== undefined) {
      res.errors.push(`${displayPath(p)}: ${problem}`);
      continue;
    }
    viaShort(dest, (d) => {
      metadata(d, p, e);
      fs.chmodSync(d, e.m);
      fs.utimesSync(d, e.mt / 1000, e.mt / 1000);
    });
    res.files++;
    res.bytes += e.s;
  }
  for (const [dest, m, mt, p] of dirModes.reverse()) {
    viaShort(dest, (d) => {
      metadata(d, p, tree.get(p) as RecordedMetadata);
      fs.chmodSync(d, m);
      fs.utimesSync(d, mt / 1000, mt / 1000);
    });
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
  visit: (r: JournalRecord) => void,
): boolean {
  // (Keys of different paths may be equal: each offset once.)
  const offsets = [...new Set(keys.flatMap((k) => indexOffsets(layout.journal, seg.name, idx, k)))].sort((a, b) => a - b);
  if (offsets.length === 0) return false;
  const found: JournalRecord[] = [];
  const fd = fs.openSync(seg.file, 'r');
  try {
    for (const off of offsets) {
      const r = readFrameAt(fd, off);
      if (!r || r.op === 'base' || r.op === 'sync') return true;
      // Another path with the same key (a hash collision) is not one of ours.
      if (!names.has(r.p)) continue;
      if (r.q > after && r.q <= end) found.push(r);
    }
  } finally {
    fs.closeSync(fd);
  }
  for (const r of found) visit(r);
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
  p: string,
): { path: string; hashAlgorithm: HashAlgorithm; versions: Version[]; earliestRestorable: string | null; warnings: string[] } {
  const { layout, chain, warnings } = loadJournal(store);
  const hash = layout.hash;
  const target = normalisePath(p);
  if (target === '') throw new RestoreError('--path must name a file or directory inside the tree');
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
    out.push({ seq: r.q, at: new Date(r.at).toISOString(), change: 'deleted', type: null, size: null, mode: null, hash: null, sha256: null });
    current = undefined;
  };
  const visit = (r: JournalRecord) => {
    if (r.op === 'base' || r.op === 'sync') return;
    if (r.op === 'del') {
      if (current && within(target, r.p)) gone(r);
      return;
    }
    if (r.p !== target) {
      // A file put where a parent directory was removes the subtree.
      if (current && r.op !== 'dir' && within(target, r.p)) gone(r);
      return;
    }
    let change: Version['change'] = current ? 'modified' : 'created';
    if (current && current.op === r.op) {
      const same = (r.op === 'file' && current.op === 'file' && r.h === current.h) || (r.op === 'link' && current.op === 'link' && r.l === current.l) || r.op === 'dir';
      if (same) change = 'metadata';
    }
    out.push(describe(r, change));
    current = r;
  };
  // The records that name the path or one of its parents, and no others: a sealed segment's
  // index gives their offsets (a segment that does not name them is not opened); any other
  // segment is read, parsing only the frames that name them.
  const names = new Set<string>();
  for (let d = target; d !== ''; d = parentOf(d)) names.add(d);
  const keys = [...names].map(pathKey);
  const needles = [...names].map((d) => Buffer.from(`"p":${JSON.stringify(d)}`));
  const filter = (payload: Buffer) => needles.some((n) => payload.includes(n));
  const after = base ? base.header.upTo : -Infinity;
  for (let i = 0; i < chain.segments.length; i++) {
    const seg = chain.segments[i] as ChainSegment;
    const next = chain.segments[i + 1];
    const end = segmentEnd(chain, i);
    if (end <= after) continue;
    const idx = seg.legacy || !next ? undefined : readIndex(layout.journal, seg.name);
    if (idx && !byOffsets(layout, seg, idx, keys, names, after, end, visit)) continue;
    if (idx && keys.every((k) => !indexHasPath(idx, k))) continue;
    noteDamage(forEachRecord(chain, after, (r) => visit(r), { only: (_s, j) => j === i, filter }), warnings);
  }
  const earliest = earliestOf(chain);
  return { path: target, hashAlgorithm: hash, versions: out, earliestRestorable: earliest === null ? null : new Date(earliest).toISOString(), warnings };
}
