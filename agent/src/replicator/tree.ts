// The protected tree as the journal knows it: replaying records in order gives the state of
// the source at any moment they cover.
import {
  decodeReadRecord,
  encodeRecord,
  type Change,
  type DirRecord,
  type FileRecord,
  type JournalRecord,
  type LinkRecord,
  type Version,
} from './journal';

export type Entry = FileRecord | DirRecord | LinkRecord;
export type Tree = Map<string, Entry>;
/** The same in the readable form (journal.ts's codec): the replicator's tree. */
export type VersionTree = Map<string, Version>;

/** True when `p` is `dir` or lies under it. Paths are relative, '/'-separated, without a leading '/'. */
export function within(p: string, dir: string): boolean {
  return dir === '' || p === dir || p.startsWith(dir + '/');
}

export function parentOf(p: string): string {
  const i = p.lastIndexOf('/');
  return i < 0 ? '' : p.slice(0, i);
}

/** Removes `p` and, when it was a directory, everything under it. */
export function removeSubtree(tree: Map<string, { op: string }>, p: string): string[] {
  const removed: string[] = [];
  const e = tree.get(p);
  if (e) {
    tree.delete(p);
    removed.push(p);
  }
  // Every path's parent directories are in the tree before it, so only a directory can have
  // anything under it.
  if (e?.op === 'dir') {
    const prefix = p + '/';
    for (const k of tree.keys()) {
      if (k.startsWith(prefix)) {
        tree.delete(k);
        removed.push(k);
      }
    }
  }
  return removed;
}

export function apply(tree: Tree, r: JournalRecord): void {
  switch (r.op) {
    case 'file':
    case 'link':
      // A directory replaced by a file takes its subtree with it.
      if (tree.get(r.p)?.op === 'dir') {
        removeSubtree(tree, r.p);
      }
      tree.set(r.p, r);
      break;
    case 'dir':
      tree.set(r.p, r);
      break;
    case 'del':
      removeSubtree(tree, r.p);
      break;
    case 'base':
    case 'sync':
      break;
  }
}

/** The tree as it was at time `at` (inclusive), from records in journal order. */
export function treeAt(records: readonly JournalRecord[], at: number): Tree {
  const tree: Tree = new Map();
  for (const r of records) {
    if (r.at > at) {
      break;
    }
    apply(tree, r);
  }
  return tree;
}

/** The earliest moment a restore can rebuild: the base left by pruning, or the first record. */
export function earliestRestorable(records: readonly JournalRecord[]): number | null {
  const first = records[0];
  if (!first) {
    return null;
  }
  return first.op === 'base' ? first.from : first.at;
}

/** apply() for a readable change. */
export function applyChange(tree: VersionTree, c: Change): void {
  switch (c.op) {
    case 'file':
    case 'link':
      if (tree.get(c.path)?.op === 'dir') {
        removeSubtree(tree, c.path);
      }
      tree.set(c.path, c);
      break;
    case 'dir':
      tree.set(c.path, c);
      break;
    case 'del':
      removeSubtree(tree, c.path);
      break;
    case 'base':
    case 'sync':
      break;
  }
}

/** A replayed tree (its records checked as they were read) in the readable form. */
export function decodeTree(tree: Tree): VersionTree {
  const out: VersionTree = new Map();
  for (const [p, e] of tree) {
    out.set(p, decodeReadRecord(e));
  }
  return out;
}

/** A readable tree in the on-disk form (for a snapshot). */
export function encodeTree(tree: VersionTree): Tree {
  const out: Tree = new Map();
  for (const [p, e] of tree) {
    out.set(p, encodeRecord(e) as Entry);
  }
  return out;
}
