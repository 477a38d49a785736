// Retention: segments whose every record is older than the window's start are dropped whole,
// after a base snapshot (the tree right after their last record) took their place; then the
// objects that only they named are deleted. A restore at any moment from the base on gives
// exactly what it gave before; the window kept is at least `retention` (up to one segment more).
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { JournalRecord } from './journal';
import {
  buildIndex,
  forEachRecord,
  indexObjects,
  readIndex,
  readSnapshot,
  segmentEnd,
  snapshotFits,
  writeIndex,
  writeSnapshot,
  type Chain,
  type ChainSegment,
  type SegmentIndex,
} from './segments';
import { fsyncDir, type StoreLayout } from './store';
import { apply, type Tree } from './tree';

export interface PruneResult {
  cutoff: number;
  /** The earliest restorable moment after pruning. */
  earliest: number;
  segmentsRemoved: number;
  recordsRemoved: number;
  objectsRemoved: number;
  bytesRemoved: number;
}

/** The index of a segment, rebuilt (and written) when it is missing or damaged. */
export function indexOf(
  layout: StoreLayout,
  seg: ChainSegment,
  last: number,
  withObjects: boolean
): SegmentIndex | undefined {
  if (!seg.legacy) {
    const idx = readIndex(layout.journal, seg.name, withObjects);
    if (idx) {
      return idx;
    }
  }
  const records: Array<{ r: JournalRecord; offset: number }> = [];
  forEachRecord(
    { dir: layout.journal, segments: [seg], snapshots: [], ignored: [], problems: [] },
    seg.first - 1,
    (r, _seg, offset) => {
      if (r.q > last) {
        return true;
      }
      records.push({ r, offset });
      return false;
    }
  );
  const idx = buildIndex(records);
  if (idx && !seg.legacy) {
    writeIndex(layout.journal, layout.tmp, seg.name, idx);
  }
  return idx;
}

/** The tree right after record `upTo`: from the newest snapshot at or before it, then records. */
export function treeAfter(chain: Chain, upTo: number): { tree: Tree; at: number } {
  let tree: Tree = new Map();
  let from = -Infinity;
  let at = 0;
  for (let i = chain.snapshots.length - 1; i >= 0; i--) {
    const s = chain.snapshots[i];
    if (!s || s.upTo > upTo || !snapshotFits(chain, s, upTo)) {
      continue;
    }
    if (chain.segments[0] && s.upTo < chain.segments[0].first - 1) {
      break;
    }
    const snap = readSnapshot(s);
    if (!snap) {
      continue;
    }
    tree = snap.tree;
    from = s.upTo;
    at = snap.header.at;
    break;
  }
  forEachRecord(chain, from, (r) => {
    if (r.q > upTo) {
      return true;
    }
    apply(tree, r);
    at = r.at;
    return false;
  });
  return { tree, at };
}

/**
 * Drops the segments before `cutoff` (never `current`, the writer's own), leaving a base
 * snapshot; then deletes the objects no remaining record or snapshot names. Returns null when
 * nothing is old enough.
 */
export function pruneJournal(
  layout: StoreLayout,
  chain: Chain,
  current: string,
  cutoff: number,
  epoch: number
): PruneResult | null {
  const drop: Array<{ seg: ChainSegment; idx?: SegmentIndex; last: number }> = [];
  for (let i = 0; i < chain.segments.length; i++) {
    const seg = chain.segments[i] as ChainSegment;
    if (seg.name === current) {
      break;
    }
    const last = segmentEnd(chain, i);
    const idx = indexOf(layout, seg, last, true);
    const lastAt = idx?.lastAt ?? seg.header?.at ?? 0;
    if (lastAt > cutoff) {
      break;
    }
    drop.push({ seg, idx, last: idx?.last ?? seg.first - 1 });
  }
  const lastDropped = drop[drop.length - 1];
  if (!lastDropped) {
    return null;
  }
  const boundary = lastDropped.last;
  const { tree, at } = treeAfter(chain, boundary);
  const oldBase = chain.segments[0]
    ? chain.snapshots.find((s) => s.upTo === (chain.segments[0] as ChainSegment).first - 1)
    : undefined;
  const earliest = lastDropped.idx?.lastAt ?? at;
  writeSnapshot(layout.root, layout.tmp, tree, { upTo: boundary, at, epoch, from: earliest });

  // Objects only the dropped segments (or the replaced base) named are candidates.
  const candidates = new Set<string>();
  for (const d of drop) {
    for (const h of d.idx ? indexObjects(d.idx) : []) {
      candidates.add(h);
    }
  }
  if (oldBase) {
    const snap = readSnapshot(oldBase);
    if (snap) {
      for (const e of snap.tree.values()) {
        if (e.op === 'file') {
          candidates.add(e.h);
        }
      }
    }
  }
  for (const e of tree.values()) {
    if (e.op === 'file') {
      candidates.delete(e.h);
    }
  }
  const kept: Chain = { ...chain, segments: chain.segments.slice(drop.length) };
  keepReferenced(layout, kept, candidates);

  // The journal first, then the objects: a crash between leaves unreferenced objects, never
  // records without their contents. The list of what is left to delete survives such a crash.
  const pending = path.join(layout.journal, 'prune-pending.json');
  fs.writeFileSync(pending, JSON.stringify([...candidates]), { mode: 0o600 });
  let recordsRemoved = 0;
  for (const d of drop) {
    recordsRemoved += d.idx?.count ?? 0;
    fs.rmSync(d.seg.file, { force: true });
    if (!d.seg.legacy) {
      fs.rmSync(path.join(layout.journal, d.seg.name.replace(/\.log$/, '.idx')), { force: true });
    }
  }
  for (const s of chain.snapshots) {
    if (s.upTo < boundary || (s.upTo === boundary && s.epoch !== epoch)) {
      fs.rmSync(s.file, { force: true });
    }
  }
  // Segments a writer that had lost the lease wrote: evidence until the window passes them.
  for (const ig of chain.ignored) {
    if (ig.first <= boundary) {
      fs.rmSync(ig.file, { force: true });
    }
  }
  fsyncDir(layout.journal);
  const removed = deleteObjects(layout, candidates);
  fs.rmSync(pending, { force: true });
  return { cutoff, earliest, segmentsRemoved: drop.length, recordsRemoved, ...removed };
}

/** Removes from `candidates` every object that a segment of `chain` or its base snapshot names. */
export function keepReferenced(layout: StoreLayout, chain: Chain, candidates: Set<string>): void {
  if (candidates.size === 0) {
    return;
  }
  const first = chain.segments[0];
  const base = first ? chain.snapshots.find((s) => s.upTo === first.first - 1) : undefined;
  if (base) {
    const snap = readSnapshot(base);
    if (snap) {
      for (const e of snap.tree.values()) {
        if (e.op === 'file') {
          candidates.delete(e.h);
        }
      }
    }
  }
  for (let i = 0; i < chain.segments.length && candidates.size > 0; i++) {
    const seg = chain.segments[i] as ChainSegment;
    const next = chain.segments[i + 1];
    const last = segmentEnd(chain, i);
    // The writer's own segment has no index yet: read it.
    const idx = next ? indexOf(layout, seg, last, true) : undefined;
    if (idx) {
      for (const h of indexObjects(idx)) {
        candidates.delete(h);
      }
    } else {
      forEachRecord({ ...chain, segments: [seg] }, seg.first - 1, (r) => {
        if (r.q > last) {
          return true;
        }
        if (r.op === 'file') {
          candidates.delete(r.h);
        }
        return false;
      });
    }
  }
}

export function deleteObjects(
  layout: StoreLayout,
  hashes: Iterable<string>
): { objectsRemoved: number; bytesRemoved: number } {
  let objectsRemoved = 0;
  let bytesRemoved = 0;
  for (const h of hashes) {
    const f = layout.object(h);
    try {
      bytesRemoved += fs.statSync(f).size;
      fs.rmSync(f, { force: true });
      objectsRemoved++;
    } catch {
      // gone already
    }
  }
  return { objectsRemoved, bytesRemoved };
}

/**
 * Objects nothing names: what a crash between storing an object and recording it, or in the
 * middle of pruning, leaves behind. Every object file is listed, so this runs only after an
 * unclean stop.
 */
export function collectGarbage(
  layout: StoreLayout,
  chain: Chain,
  keep: Iterable<string>
): { objectsRemoved: number; bytesRemoved: number } {
  const candidates = new Set<string>();
  const pending = path.join(layout.journal, 'prune-pending.json');
  for (const d of fs.readdirSync(layout.objects)) {
    let names: string[];
    try {
      names = fs.readdirSync(path.join(layout.objects, d));
    } catch {
      continue;
    }
    for (const h of names) {
      if (/^[0-9a-f]{64}$/.test(h)) {
        candidates.add(h);
      }
    }
  }
  for (const h of keep) {
    candidates.delete(h);
  }
  keepReferenced(layout, chain, candidates);
  const removed = deleteObjects(layout, candidates);
  fs.rmSync(pending, { force: true });
  return removed;
}
