// `vigil-agent verify`: reads a whole store back and checks it against itself. Every journal
// record must decode, every object a retained record (or the base snapshot) names must exist
// with the recorded size and hash to its name, no object may lie in objects/ that nothing
// names, and mirror/ must hold the tree the journal gives. The journal is read with the same
// readers as a start or a restore (segments.ts): damage is what they report.
//
// A live store (one with a lease file: a writer may be at work) is checked without false
// alarms: an object stored for a record not appended yet is not a stray until it is older
// than a grace period, the mirror is compared with the tree after the record mirror.seq names
// and paths the writer touched meanwhile are left out, a segment pruned meanwhile is not damage.
//
// `--repair` takes the lease (so no writer runs meanwhile) and repairs only what can be
// repaired without losing a version: a missing or damaged object from a record's inline copy
// or from the source file when that still has the very content, the mirror from the objects,
// stray objects when the journal has no damage. Records are never deleted or rewritten.
import { copyObjectForMirrorSync } from './mirror';
import { DIR_MODE, OBJECT_MODE } from './modes';
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { isSameProcessAlive, procInfo } from '../kinds/procfs';
import { hashBuffer, hashFile, loadHasher, type HashAlgorithm } from './digest';
import { decodeName, displayPath, encodeName, fsPath, mkdirp, rmrf, viaShort, dirnameFs, type FsPath } from './fspath';
import { hashFileInWorker } from './hash';
import type { JournalRecord } from './journal';
import { baseSnapshot, forEachRecord, highestEpoch, readSnapshot, resolveChain, type SegmentDamage } from './segments';
import {
  acquireLease,
  openStoreForReading,
  releaseLease,
  writeFileDurably,
  type Lease,
  type StoreLayout,
} from './store';
import { apply, within, type Tree } from './tree';

export type ProblemKind =
  | 'journal-damage'
  | 'journal-chain'
  | 'journal-tail'
  | 'snapshot-damaged'
  | 'missing-object'
  | 'damaged-object'
  | 'object-size'
  | 'stray-object'
  | 'mirror-missing'
  | 'mirror-extra'
  | 'mirror-differs';

export interface VerifyProblem {
  kind: ProblemKind;
  /** One line, naming what and where. */
  message: string;
  /** The path in the protected tree (as in the journal). */
  path?: string;
  /** The record's sequence number, the journal segment and the byte offset of its frame (or of the damage). */
  q?: number;
  segment?: string;
  offset?: number;
  /** The object's file in the store, the hash it should have and the one its content has. */
  object?: string;
  expected?: string;
  found?: string;
  /** What --repair did about it: repaired, or why not. */
  repair?: { done: boolean; how: string };
}

export interface VerifyResult {
  store: string;
  hashAlgorithm: HashAlgorithm;
  startedAt: string;
  ms: number;
  ok: boolean;
  /** A lease file was there (a writer may have been at work): the live-store rules applied. */
  live: boolean;
  checked: { segments: number; records: number; objects: number; objectBytes: number; mirrorPaths: number };
  problems: VerifyProblem[];
  /** Not problems: a torn tail a writer may be completing, segments left out by fencing, recent unreferenced objects. */
  warnings: string[];
  repaired: number;
  notRepaired: number;
}

export interface VerifyOptions {
  /** Repair what can be repaired (takes the lease; refused while another writer holds it). */
  repair?: boolean;
  /** The protected tree, where --repair looks for lost contents. */
  source?: string;
  /** On a live store, unreferenced objects younger than this are not reported (an append may be on its way). */
  strayGraceMs?: number;
  /** Objects hashed side by side. */
  concurrency?: number;
  /** Run in the background of a replicator: no worker threads, and rest `restMs` after every `workMs` of work. */
  pace?: { workMs: number; restMs: number };
  /** Checked between pieces of work: true stops the run (VerifyCancelled). */
  cancelled?: () => boolean;
  /** For --repair: this node's name in the lease (default: the host name). */
  node?: string;
}

export class VerifyError extends Error {}
export class VerifyCancelled extends Error {}

export const STRAY_GRACE_MS = 10 * 60_000;
const SMALL_OBJECT = 4 << 20;

interface Ref {
  s: number;
  /** The first record (or snapshot entry) naming the object: where a problem is reported. */
  p: string;
  q: number;
  segment: string;
  offset: number | undefined;
  /** Other paths whose records name it (a few): where --repair may find the content. */
  paths: string[];
  /** A record's inline copy of the content (base64). */
  d?: string;
}

function readSeq(file: string): number {
  try {
    const n = Number(fs.readFileSync(file, 'utf8').trim());
    return Number.isInteger(n) ? n : -1;
  } catch {
    return -1;
  }
}

const byteAt = (s: string) => {
  const m = /at byte (\d+)/.exec(s);
  return m ? Number(m[1]) : undefined;
};

/** Where a record is, for messages: "q 12, journal seg-….log at byte 345". */
function where(r: { q: number; segment: string; offset: number | undefined }): string {
  return r.offset === undefined ? `${r.segment}, entry q ${r.q}` : `q ${r.q}, journal ${r.segment} at byte ${r.offset}`;
}

export async function verifyStore(store: string, o: VerifyOptions = {}): Promise<VerifyResult> {
  const t0 = Date.now();
  let layout: StoreLayout;
  try {
    layout = openStoreForReading(store);
  } catch (e) {
    throw new VerifyError((e as Error).message);
  }
  await loadHasher(layout.hash);
  let lease: Lease | undefined;
  if (o.repair) {
    fs.mkdirSync(layout.tmp, { recursive: true, mode: DIR_MODE });
    const r = acquireLease(layout, {
      node: o.node ?? os.hostname(),
      process: 'vigil-agent verify --repair',
      staleAfterMs: 30_000,
      isAlive: isSameProcessAlive,
      startTicks: procInfo(process.pid)?.startTicks ?? null,
      journalEpoch: () => highestEpoch(layout.root),
    });
    if (!r.held) {
      throw new VerifyError(
        `cannot repair ${store}: ${r.reason}; stop the replicator first (verify without --repair checks a live store)`
      );
    }
    lease = r.lease;
  }
  try {
    return await run(layout, o, t0, lease !== undefined);
  } finally {
    if (lease) {
      releaseLease(layout, lease);
    }
  }
}

async function run(layout: StoreLayout, o: VerifyOptions, t0: number, holding: boolean): Promise<VerifyResult> {
  const live = !holding && fs.existsSync(layout.lease);
  const problems: VerifyProblem[] = [];
  const warnings: string[] = [];
  const checked = { segments: 0, records: 0, objects: 0, objectBytes: 0, mirrorPaths: 0 };
  let slice = Date.now();
  const pace = async () => {
    if (o.cancelled?.()) {
      throw new VerifyCancelled('verify stopped');
    }
    if (!o.pace) {
      return;
    }
    if (Date.now() - slice < o.pace.workMs) {
      return;
    }
    await new Promise((r) => setTimeout(r, o.pace?.restMs ?? 0));
    slice = Date.now();
  };

  // ---- the journal: every record, with where it is ----
  const mirrorSeq = readSeq(layout.mirrorSeq);
  const chain = resolveChain(layout.root);
  for (const p of chain.problems) {
    problems.push({ kind: 'journal-chain', message: `journal: ${p}`, segment: p.split(':')[0] });
  }
  for (const i of chain.ignored) {
    warnings.push(`journal: ${i.name} is not part of the journal (${i.why}); pruning removes it`);
  }
  const refs = new Map<string, Ref>();
  const ref = (h: string, s: number, p: string, q: number, segment: string, offset: number | undefined, d?: string) => {
    const cur = refs.get(h);
    if (!cur) {
      refs.set(h, { s, p, q, segment, offset, paths: [p], ...(d === undefined ? {} : { d }) });
    } else {
      if (cur.paths.length < 8 && !cur.paths.includes(p)) {
        cur.paths.push(p);
      }
      if (cur.d === undefined && d !== undefined) {
        cur.d = d;
      }
    }
  };
  // The tree the mirror should hold: after mirror.seq on a live store (the writer updates the
  // mirror after each append), after the last record otherwise.
  let tree: Tree = new Map();
  const base = baseSnapshot(chain);
  let after = -Infinity;
  if (base) {
    const snap = readSnapshot(base.file);
    after = base.header.upTo;
    if (!snap) {
      problems.push({
        kind: 'snapshot-damaged',
        message: `journal ${base.file.name}: the base snapshot (the tree before the first retained record) is damaged or incomplete`,
        segment: base.file.name,
      });
    } else {
      tree = snap.tree;
      for (const e of snap.tree.values()) {
        if (e.op === 'file') {
          ref(e.h, e.s, e.p, e.q, base.file.name, undefined);
        }
      }
    }
  }
  for (const s of chain.snapshots) {
    if (base && s.name === base.file.name) {
      continue;
    }
    if (!readSnapshot(s)) {
      problems.push({
        kind: 'snapshot-damaged',
        message: `journal ${s.name}: tree snapshot is damaged or incomplete (a start replays from an older one)`,
        segment: s.name,
      });
    }
    await pace();
  }
  const laterPaths = new Set<string>();
  const treeUpTo = live ? mirrorSeq : Infinity;
  let lastQ = after;
  const damages: SegmentDamage[] = [];
  for (let i = 0; i < chain.segments.length; i++) {
    checked.segments++;
    const d = forEachRecord(
      chain,
      after,
      (r: JournalRecord, sg, offset) => {
        checked.records++;
        lastQ = Math.max(lastQ, r.q);
        if (r.op === 'file') {
          ref(r.h, r.s, r.p, r.q, sg.name, offset, r.d);
        }
        if (r.q <= treeUpTo) {
          apply(tree, r);
        } else if (r.op !== 'sync' && r.op !== 'base') {
          laterPaths.add(r.p);
        }
      },
      { only: (_s, j) => j === i }
    );
    damages.push(...d);
    await pace();
  }
  let journalDamaged = false;
  for (const d of damages) {
    for (const s of d.skipped) {
      journalDamaged = true;
      problems.push({
        kind: 'journal-damage',
        message: `journal ${d.segment}: ${s.bytes} undecodable bytes at byte ${s.at} (${s.why}); readers skip them and keep the records after them`,
        segment: d.segment,
        offset: s.at,
      });
    }
    if (d.missing) {
      const seg = chain.segments.find((x) => x.name === d.segment);
      // Pruned while we read (a live store): not damage.
      if (live && seg && !fs.existsSync(seg.file)) {
        continue;
      }
      journalDamaged = true;
      problems.push({
        kind: 'journal-damage',
        message: `journal ${d.segment}: ${d.missing}`,
        segment: d.segment,
        offset: byteAt(d.missing),
      });
    }
    if (d.tail) {
      const msg = `journal ${d.segment}: ${d.tail.bytes} bytes after the last complete record are not a complete record (${d.tail.damage})`;
      if (live) {
        warnings.push(`${msg}; normal while the writer appends`);
      } else {
        problems.push({
          kind: 'journal-tail',
          message: `${msg}: a write cut short (the replicator continues after it at its next start)`,
          segment: d.segment,
          offset: byteAt(d.tail.damage),
        });
      }
    }
  }

  // ---- the objects ----
  const onDisk = new Set<string>();
  let fans: string[] = [];
  try {
    fans = fs.readdirSync(layout.objects);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw e;
    }
  }
  for (const f of fans) {
    let names: string[] = [];
    try {
      names = fs.readdirSync(path.join(layout.objects, f));
    } catch {
      continue;
    }
    for (const h of names) {
      if (/^[0-9a-f]{64}$/.test(h) && h.startsWith(f)) {
        onDisk.add(h);
      }
    }
  }
  let pendingGc = new Set<string>();
  try {
    pendingGc = new Set(
      JSON.parse(fs.readFileSync(path.join(layout.journal, 'prune-pending.json'), 'utf8')) as string[]
    );
  } catch {
    // no pruning under way
  }
  const badObjects = new Map<string, VerifyProblem>();
  const hashOf = async (file: FsPath, size: number): Promise<string> => {
    if (size <= SMALL_OBJECT) {
      return hashBuffer(layout.hash, await fs.promises.readFile(file));
    }
    return o.pace ? hashFile(layout.hash, file) : hashFileInWorker(file, layout.hash);
  };
  const todo = [...refs.entries()];
  let next = 0;
  const worker = async () => {
    while (next < todo.length) {
      const [h, r] = todo[next++] as [string, Ref];
      const file = layout.object(h);
      const rel = path.relative(layout.root, file);
      const at = `${displayPath(r.p)} (${where(r)})`;
      let st: fs.Stats | undefined;
      try {
        st = await fs.promises.stat(file);
      } catch {
        st = undefined;
      }
      if (!st) {
        // Pruned while we read (a live store): its records went first.
        if (
          live &&
          (pendingGc.has(h) || (r.offset !== undefined && !fs.existsSync(path.join(layout.journal, r.segment))))
        ) {
          continue;
        }
        const p: VerifyProblem = {
          kind: 'missing-object',
          message: `missing object: ${at}: its content ${rel} is not in the store`,
          path: r.p,
          q: r.q,
          segment: r.segment,
          offset: r.offset,
          object: rel,
          expected: h,
        };
        badObjects.set(h, p);
        problems.push(p);
        continue;
      }
      checked.objects++;
      checked.objectBytes += st.size;
      let found: string;
      try {
        found = await hashOf(file, st.size);
      } catch (e) {
        found = `unreadable (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`;
      }
      if (found !== h) {
        const p: VerifyProblem = {
          kind: 'damaged-object',
          message: `damaged object: ${at}: ${rel} does not hash to its name (found ${found})`,
          path: r.p,
          q: r.q,
          segment: r.segment,
          offset: r.offset,
          object: rel,
          expected: h,
          found,
        };
        badObjects.set(h, p);
        problems.push(p);
      } else if (st.size !== r.s) {
        const p: VerifyProblem = {
          kind: 'object-size',
          message: `object size: ${at}: ${rel} has ${st.size} bytes, the record says ${r.s}`,
          path: r.p,
          q: r.q,
          segment: r.segment,
          offset: r.offset,
          object: rel,
          expected: String(r.s),
          found: String(st.size),
        };
        problems.push(p);
      }
      await pace();
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, o.pace ? 1 : (o.concurrency ?? 4)) }, worker));

  let recent = 0;
  const strays: VerifyProblem[] = [];
  const grace = o.strayGraceMs ?? STRAY_GRACE_MS;
  for (const h of onDisk) {
    if (refs.has(h) || pendingGc.has(h)) {
      continue;
    }
    const file = layout.object(h);
    const st = fs.statSync(file, { throwIfNoEntry: false });
    if (!st) {
      continue;
    }
    if (live && Date.now() - st.mtimeMs < grace) {
      recent++;
      continue;
    }
    const rel = path.relative(layout.root, file);
    strays.push({
      kind: 'stray-object',
      message: `stray object: ${rel} (${st.size} bytes) is named by no retained record`,
      object: rel,
    });
  }
  problems.push(...strays);
  if (recent > 0) {
    warnings.push(
      `${recent} object(s) named by no record yet are younger than ${Math.round(grace / 1000)} s (a capture may be on its way): not judged`
    );
  }

  // ---- repairs of objects ----
  let repaired = 0;
  let notRepaired = 0;
  const note = (p: VerifyProblem, done: boolean, how: string) => {
    p.repair = { done, how };
    if (done) {
      repaired++;
    } else {
      notRepaired++;
    }
  };
  if (holding) {
    for (const [h, p] of badObjects) {
      const r = refs.get(h) as Ref;
      const how = repairObject(layout, h, r, o.source);
      note(p, how.done, how.how);
    }
    for (const p of problems) {
      if (p.kind === 'object-size') {
        note(p, false, 'the content hashes to its name: the record is what differs; records are never rewritten');
      }
      if (p.kind === 'journal-damage' || p.kind === 'journal-chain' || p.kind === 'journal-tail') {
        note(p, false, 'journal records are never deleted or rewritten; readers skip the damaged bytes');
      }
      if (p.kind === 'snapshot-damaged') {
        note(p, false, 'not repaired: a snapshot is written again by the replicator when a segment is sealed');
      }
    }
    for (const p of strays) {
      if (journalDamaged) {
        note(p, false, 'kept: the journal is damaged, and this may be the content of a record that cannot be read');
        continue;
      }
      fs.rmSync(path.join(layout.root, p.object as string), { force: true });
      note(p, true, 'removed (nothing names it)');
    }
  }

  // ---- the mirror ----
  if (fs.existsSync(layout.mirror)) {
    const mirrorProblems: VerifyProblem[] = [];
    const seen = new Set<string>();
    const objIno = (h: string) => fs.statSync(layout.object(h), { throwIfNoEntry: false })?.ino;
    const walk = async (rel: string) => {
      const abs = rel === '' ? layout.mirror : fsPath(layout.mirror, rel);
      let entries: Array<fs.Dirent<Buffer>>;
      try {
        entries = viaShort(abs, (a) => fs.readdirSync(a, { withFileTypes: true, encoding: 'buffer' }));
      } catch {
        return;
      }
      for (const d of entries) {
        const name = decodeName(d.name);
        const p = rel === '' ? name : `${rel}/${name}`;
        checked.mirrorPaths++;
        seen.add(p);
        const e = tree.get(p);
        const mp = `mirror/${displayPath(p)}`;
        if (!e) {
          mirrorProblems.push({ kind: 'mirror-extra', message: `mirror: ${mp} is not in the journal's tree`, path: p });
          continue;
        }
        const dest = fsPath(layout.mirror, p);
        const st = viaShort(dest, (a) => fs.lstatSync(a, { throwIfNoEntry: false }));
        const type = !st
          ? 'nothing'
          : st.isDirectory()
            ? 'dir'
            : st.isSymbolicLink()
              ? 'link'
              : st.isFile()
                ? 'file'
                : 'other';
        if (type !== e.op) {
          mirrorProblems.push({
            kind: 'mirror-differs',
            message: `mirror: ${mp} is a ${type}, the journal has a ${e.op} (q ${e.q})`,
            path: p,
            q: e.q,
          });
          continue;
        }
        if (e.op === 'dir') {
          await walk(p);
          continue;
        }
        if (e.op === 'link') {
          const l = decodeName(viaShort(dest, (a) => fs.readlinkSync(a, { encoding: 'buffer' })));
          if (l !== e.l) {
            mirrorProblems.push({
              kind: 'mirror-differs',
              message: `mirror: ${mp} points to ${JSON.stringify(l)}, the journal has ${JSON.stringify(e.l)} (q ${e.q})`,
              path: p,
              q: e.q,
            });
          }
          continue;
        }
        const fst = st as fs.Stats;
        // A hard link to the object: the object's own check covers its content.
        if (fst.ino === objIno(e.h) && !badObjects.has(e.h)) {
          continue;
        }
        let found: string;
        try {
          found = fst.size !== e.s ? `${fst.size} bytes` : await viaShort(dest, (a) => hashOf(a, fst.size));
        } catch (err) {
          found = `unreadable (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`;
        }
        if (found !== e.h) {
          mirrorProblems.push({
            kind: 'mirror-differs',
            message: `mirror: ${mp} differs from the journal's latest version (q ${e.q}: ${e.s} bytes, ${e.h.slice(0, 16)}…; the mirror has ${found.length === 64 ? found.slice(0, 16) + '…' : found})`,
            path: p,
            q: e.q,
            expected: e.h,
            found,
          });
        }
        await pace();
      }
    };
    await walk('');
    for (const [p, e] of tree) {
      if (!seen.has(p)) {
        mirrorProblems.push({
          kind: 'mirror-missing',
          message: `mirror: mirror/${displayPath(p)} is missing (the journal has a ${e.op}, q ${e.q})`,
          path: p,
          q: e.q,
        });
      }
    }
    let kept = mirrorProblems;
    if (live) {
      // Whatever the writer recorded after mirror.seq (before or during the walk) may be half applied.
      forEachRecord(resolveChain(layout.root), mirrorSeq, (r) => {
        if (r.op !== 'sync' && r.op !== 'base') {
          laterPaths.add(r.p);
        }
      });
      kept = mirrorProblems.filter(
        (m) => ![...laterPaths].some((t) => within(m.path as string, t) || within(t, m.path as string))
      );
    }
    problems.push(...kept);
    if (holding) {
      let allFixed = true;
      for (const m of [...kept].sort((a, b) => ((a.path as string) < (b.path as string) ? -1 : 1))) {
        const how = repairMirror(layout, tree, m.path as string, badObjects);
        note(m, how.done, how.how);
        if (!how.done) {
          allFixed = false;
        }
      }
      if (allFixed && mirrorSeq < lastQ && Number.isFinite(lastQ)) {
        fs.writeFileSync(`${layout.mirrorSeq}.tmp`, `${lastQ}\n`);
        fs.renameSync(`${layout.mirrorSeq}.tmp`, layout.mirrorSeq);
      }
    }
  }

  const remaining = problems.filter((p) => !p.repair?.done).length;
  return {
    store: layout.root,
    hashAlgorithm: layout.hash,
    startedAt: new Date(t0).toISOString(),
    ms: Date.now() - t0,
    ok: remaining === 0,
    live,
    checked,
    problems,
    warnings,
    repaired,
    notRepaired,
  };
}

/** Writes `data` as object `h`, durably and read-only, through tmp/. */
function storeObject(layout: StoreLayout, h: string, data: Buffer): void {
  const obj = layout.object(h);
  fs.mkdirSync(path.dirname(obj), { recursive: true, mode: DIR_MODE });
  fs.mkdirSync(layout.tmp, { recursive: true, mode: DIR_MODE });
  writeFileDurably(obj, data, { mode: OBJECT_MODE, tmpDir: layout.tmp });
}

function repairObject(
  layout: StoreLayout,
  h: string,
  r: Ref,
  source: string | undefined
): { done: boolean; how: string } {
  if (r.d !== undefined) {
    const data = Buffer.from(r.d, 'base64');
    if (hashBuffer(layout.hash, data) === h && data.length === r.s) {
      storeObject(layout, h, data);
      return { done: true, how: 'written again from the inline copy in its journal record' };
    }
  }
  // A mirror file that is a copy (or a hard link the damage did not reach) may still have it.
  const tried: string[] = [];
  const places: Array<[string, string]> = r.paths.map((p) => [layout.mirror, p]);
  if (source !== undefined) {
    places.push(...r.paths.map((p): [string, string] => [source, p]));
  }
  for (const [root, p] of places) {
    const file = fsPath(root, p);
    const label = root === layout.mirror ? `mirror/${displayPath(p)}` : displayPath(p);
    let data: Buffer;
    try {
      const st = viaShort(file, (a) => fs.statSync(a));
      // Small or large, the content must hash to the name: read it whole only up to 1 GiB.
      if (!st.isFile() || st.size !== r.s || st.size > 1 << 30) {
        tried.push(`${label} (${st.isFile() ? `${st.size} bytes` : 'not a file'})`);
        continue;
      }
      data = viaShort(file, (a) => fs.readFileSync(a));
    } catch (e) {
      tried.push(`${label} (${(e as NodeJS.ErrnoException).code ?? 'unreadable'})`);
      continue;
    }
    if (hashBuffer(layout.hash, data) !== h) {
      tried.push(`${label} (other content now)`);
      continue;
    }
    storeObject(layout, h, data);
    return {
      done: true,
      how: `written again from ${root === layout.mirror ? label : path.join(root, displayPath(p))}, which still has that content`,
    };
  }
  return {
    done: false,
    how: `no copy with that content: not inline in the journal; tried ${tried.join(', ')}${source === undefined ? '; give --source to look in the protected tree' : ''}`,
  };
}

/** Makes mirror/p what the tree has (the entry, or nothing), from the objects. */
function repairMirror(
  layout: StoreLayout,
  tree: Tree,
  p: string,
  bad: Map<string, VerifyProblem>
): { done: boolean; how: string } {
  const dest: FsPath = fsPath(layout.mirror, p);
  const e = tree.get(p);
  if (!e) {
    rmrf(dest);
    return { done: true, how: 'removed' };
  }
  const cur = viaShort(dest, (d) => fs.lstatSync(d, { throwIfNoEntry: false }));
  if (e.op === 'dir') {
    if (cur && !cur.isDirectory()) {
      rmrf(dest);
    }
    mkdirp(dest, DIR_MODE);
    // What the tree has under it comes back with it.
    for (const [k, sub] of tree) {
      if (
        k.startsWith(p + '/') &&
        !viaShort(fsPath(layout.mirror, k), (d) => fs.lstatSync(d, { throwIfNoEntry: false }))
      ) {
        if (sub.op === 'file' && bad.get(sub.h)?.repair?.done === false) {
          continue;
        }
        repairMirror(layout, tree, k, bad);
      }
    }
    return { done: true, how: 'made again' };
  }
  if (cur?.isDirectory()) {
    rmrf(dest);
  }
  mkdirp(dirnameFs(dest), DIR_MODE);
  const tmp = path.join(layout.tmp, `verify-mirror-${randomUUID()}`);
  fs.mkdirSync(layout.tmp, { recursive: true, mode: DIR_MODE });
  if (e.op === 'link') {
    fs.symlinkSync(encodeName(e.l), tmp);
  } else {
    const b = bad.get(e.h);
    if (b && !b.repair?.done) {
      return {
        done: false,
        how: `its content ${path.relative(layout.root, layout.object(e.h))} is ${b.kind === 'missing-object' ? 'missing' : 'damaged'} and was not repaired`,
      };
    }
    if (copyObjectForMirrorSync(layout, e.h, tmp) === undefined) {
      return { done: false, how: `its content ${path.relative(layout.root, layout.object(e.h))} is not in the store` };
    }
  }
  viaShort(dest, (d) => fs.renameSync(tmp, d));
  return {
    done: true,
    how: `rewritten from ${e.op === 'file' ? path.relative(layout.root, layout.object(e.h)) : 'the journal'}`,
  };
}

/** The problem count and first problem, for the status and metrics of a scheduled verify. */
export function summary(r: VerifyResult): {
  at: string;
  ok: boolean;
  problems: number;
  firstProblem: string | null;
  durationSeconds: number;
} {
  // ms is wall-clock time: a clock stepped back during the verify makes it negative, which the
  // contract (minimum 0) and the monitor refuse.
  const ms = Math.max(0, r.ms);
  return {
    at: new Date(Date.parse(r.startedAt) + ms).toISOString(),
    ok: r.ok,
    problems: r.problems.length,
    firstProblem: r.problems[0]?.message ?? null,
    durationSeconds: ms / 1000,
  };
}
