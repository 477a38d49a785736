// Nothing in a store is readable by anyone but its owner: the store holds copies of every
// protected file (keys, databases, mail), so it must never be more readable than the source.
// Directories are made 0700, files 0600, objects 0400. A mode passed at creation can only lose
// bits to the umask, never gain any, so these hold whatever umask the process runs with.
//
// Stores written by earlier versions have 0755 directories, 0444 objects and mirror files that
// are hard links to their objects: tightenTop() fixes the root and its top level at every start
// (cheap, and what an operator's `chmod` would most likely widen); tightenAll() walks the whole
// store once, and the marker then says so (`ownerOnly`).
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { decodeName, displayPath, joinFs, viaShort, type FsPath } from './fspath';
import type { StoreLayout } from './store';

export const DIR_MODE = 0o700;
export const FILE_MODE = 0o600;
/** Objects never change once stored: owner-only read. */
export const OBJECT_MODE = 0o400;

/** What a tightening pass changed: how many entries, and the first few with their old modes. */
export interface Tightened {
  /** Entries whose group or other permission bits were removed. */
  modes: number;
  /** Mirror files that were hard links (to their objects) and are copies now. */
  unlinked: number;
  /** Up to 10 of them, `path (0755 -> 0700)`, for the log. */
  examples: string[];
}

const octal = (m: number) => (m & 0o7777).toString(8).padStart(4, '0');

function note(t: Tightened, where: string, from: number, to: number): void {
  t.modes++;
  if (t.examples.length < 10) {
    t.examples.push(`${where} (${octal(from)} -> ${octal(to)})`);
  }
}

/** Removes group and other bits (and set-id bits) from `p` when it has any; symbolic links are left alone. */
function tighten(p: FsPath, st: fs.Stats, where: string, t: Tightened): void {
  if (st.isSymbolicLink()) {
    return;
  }
  if ((st.mode & 0o7077) === 0) {
    return;
  }
  const to = st.mode & 0o700;
  viaShort(p, (s) => fs.chmodSync(s, to));
  note(t, where, st.mode, to);
}

/**
 * The store's root, every entry directly in it and the objects' fan-out directories: owner
 * only. Run at every start; other users cannot reach anything below a 0700 directory.
 */
export function tightenTop(layout: StoreLayout): Tightened {
  const t: Tightened = { modes: 0, unlinked: 0, examples: [] };
  tighten(layout.root, fs.lstatSync(layout.root), layout.root, t);
  for (const name of fs.readdirSync(layout.root)) {
    const p = path.join(layout.root, name);
    const st = fs.lstatSync(p, { throwIfNoEntry: false });
    if (st) {
      tighten(p, st, name, t);
    }
  }
  for (const name of fs.readdirSync(layout.objects)) {
    const p = path.join(layout.objects, name);
    const st = fs.lstatSync(p, { throwIfNoEntry: false });
    if (st?.isDirectory()) {
      tighten(p, st, `objects/${name}`, t);
    }
  }
  return t;
}

/**
 * Every entry of the store: owner only; and every mirror file with more than one link (an
 * earlier version linked mirror files to their objects, so that writing to one changed
 * history) is replaced by a copy of itself. Only the lease holder may run this (it writes).
 */
export function tightenAll(layout: StoreLayout): Tightened {
  const t = tightenTop(layout);
  const walk = (dir: FsPath, rel: string, inMirror: boolean) => {
    let names: Buffer[];
    try {
      names = viaShort(dir, (s) => fs.readdirSync(s, { encoding: 'buffer' }));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
        return;
      }
      throw e;
    }
    for (const raw of names) {
      const name = decodeName(raw);
      const p = joinFs(dir, name);
      const r = `${rel}/${name}`;
      const st = viaShort(p, (s) => fs.lstatSync(s, { throwIfNoEntry: false }));
      if (!st) {
        continue;
      }
      if (inMirror && st.isFile() && st.nlink > 1) {
        unlinkCopy(layout, p);
        t.unlinked++;
        continue;
      }
      tighten(p, st, displayPath(r), t);
      if (st.isDirectory()) {
        walk(p, r, inMirror);
      }
    }
  };
  for (const top of ['journal', 'objects', 'mirror', 'tmp']) {
    walk(path.join(layout.root, top), top, top === 'mirror');
  }
  return t;
}

/** Puts an owner-only copy (a reflink where the file system has them) in place of `p`. */
function unlinkCopy(layout: StoreLayout, p: FsPath): void {
  const tmp = path.join(layout.tmp, `unlink-${randomUUID()}`);
  viaShort(p, (s) => fs.copyFileSync(s, tmp, fs.constants.COPYFILE_FICLONE));
  fs.chmodSync(tmp, FILE_MODE);
  viaShort(p, (s) => fs.renameSync(tmp, s));
}
