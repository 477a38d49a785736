// Point-in-time restore and version listing, read-only on the store: they need no lease and
// can run while the replicator writes (a record being appended is an incomplete tail, ignored).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseDuration } from '../duration';
import type { HashAlgorithm } from './digest';
import { readJournal, type JournalRecord } from './journal';
import { openStoreForReading, type StoreLayout } from './store';
import { earliestRestorable, treeAt, within } from './tree';

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

function loadJournal(store: string): { layout: StoreLayout; records: JournalRecord[]; warnings: string[] } {
  let layout;
  try {
    layout = openStoreForReading(store);
  } catch (e) {
    throw new RestoreError((e as Error).message);
  }
  const read = readJournal(layout.journal);
  const warnings: string[] = [];
  // The writer may be appending right now: an incomplete last record is normal then.
  if (read.damage) warnings.push(`journal: ignored ${read.totalBytes - read.goodBytes} bytes after the last complete record (${read.damage})`);
  return { layout, records: read.records, warnings };
}

export interface RestoreResult {
  at: string;
  to: string;
  files: number;
  dirs: number;
  links: number;
  bytes: number;
  warnings: string[];
}

export function restore(o: { store: string; at: number; to: string; path?: string }): RestoreResult {
  const { layout, records, warnings } = loadJournal(o.store);
  const earliest = earliestRestorable(records);
  if (earliest === null) throw new RestoreError(`the store ${o.store} has no journal records yet`);
  if (o.at < earliest) {
    throw new RestoreError(
      `${new Date(o.at).toISOString()} is before the earliest restorable point ${new Date(earliest).toISOString()}${
        records[0]?.op === 'base' ? ' (older versions were pruned by retention)' : ' (the first change captured)'
      }`,
    );
  }
  const sub = o.path === undefined ? '' : normalisePath(o.path);
  const tree = treeAt(records, o.at);
  if (sub !== '' && !tree.has(sub)) throw new RestoreError(`${sub} did not exist at ${new Date(o.at).toISOString()}`);
  const existing = fs.existsSync(o.to) ? fs.readdirSync(o.to) : [];
  if (existing.length > 0) throw new RestoreError(`${o.to} is not empty; restore into a new or empty directory`);
  fs.mkdirSync(o.to, { recursive: true });

  const res: RestoreResult = { at: new Date(o.at).toISOString(), to: o.to, files: 0, dirs: 0, links: 0, bytes: 0, warnings };
  const paths = [...tree.keys()].filter((p) => within(p, sub) || within(sub, p)).sort();
  const dirModes: [string, number, number][] = [];
  for (const p of paths) {
    const e = tree.get(p);
    if (!e) continue;
    const dest = path.join(o.to, p);
    if (e.op === 'dir') {
      fs.mkdirSync(dest, { recursive: true });
      // Modes and times of directories last: a read-only directory would refuse its contents.
      if (within(p, sub)) {
        dirModes.push([dest, e.m, e.mt]);
        res.dirs++;
      }
      continue;
    }
    if (!within(p, sub)) continue;
    fs.mkdirSync(path.dirname(dest), { recursive: true });
    if (e.op === 'link') {
      fs.symlinkSync(e.l, dest);
      res.links++;
      continue;
    }
    const obj = layout.object(e.h);
    try {
      fs.copyFileSync(obj, dest);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      // Lost in a crash before its checkpoint: the record carries the content.
      if (e.d === undefined) throw new RestoreError(`the content of ${p} (${e.h}) is missing from the store`);
      fs.writeFileSync(dest, Buffer.from(e.d, 'base64'));
    }
    fs.chmodSync(dest, e.m);
    fs.utimesSync(dest, e.mt / 1000, e.mt / 1000);
    res.files++;
    res.bytes += e.s;
  }
  for (const [dest, m, mt] of dirModes.reverse()) {
    fs.chmodSync(dest, m);
    fs.utimesSync(dest, mt / 1000, mt / 1000);
  }
  return res;
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
  const { layout, records, warnings } = loadJournal(store);
  const hash = layout.hash;
  const target = normalisePath(p);
  if (target === '') throw new RestoreError('--path must name a file or directory inside the tree');
  const out: Version[] = [];
  let current: JournalRecord | undefined;
  for (const r of records) {
    if (r.op === 'base' || r.op === 'sync') continue;
    if (r.op === 'del') {
      if (current && within(target, r.p)) {
        out.push({ seq: r.q, at: new Date(r.at).toISOString(), change: 'deleted', type: null, size: null, mode: null, hash: null, sha256: null });
        current = undefined;
      }
      continue;
    }
    if (r.p !== target) {
      // A file put where a parent directory was removes the subtree.
      if (current && r.op !== 'dir' && within(target, r.p) && target !== r.p) {
        out.push({ seq: r.q, at: new Date(r.at).toISOString(), change: 'deleted', type: null, size: null, mode: null, hash: null, sha256: null });
        current = undefined;
      }
      continue;
    }
    let change: Version['change'] = current ? 'modified' : 'created';
    if (current && current.op === r.op) {
      const same =
        (r.op === 'file' && current.op === 'file' && r.h === current.h) ||
        (r.op === 'link' && current.op === 'link' && r.l === current.l) ||
        r.op === 'dir';
      if (same) change = 'metadata';
    }
    out.push({
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
    current = r;
  }
  const earliest = earliestRestorable(records);
  return { path: target, hashAlgorithm: hash, versions: out, earliestRestorable: earliest === null ? null : new Date(earliest).toISOString(), warnings };
}
