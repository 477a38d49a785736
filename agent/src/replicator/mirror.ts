// Mirror files are copies of their objects (a reflink where the file system has them), never
// hard links: writing to a file in mirror/ must not change a stored object, which is history.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger } from '../log';
import { decodeName, dirnameFs, encodeName, fsPath, mkdirp, rmrf, viaShort, type FsPath } from './fspath';
import { DIR_MODE, FILE_MODE } from './modes';
import type { StoreLayout } from './store';
import type { VersionTree } from './tree';

/** Copies up to this size are made in place (cheaper than a round trip to the thread pool). */
const SYNC_COPY_BYTES = 1 << 20;

/**
 * Writes object `h` (of `size` bytes) to `tmp` as a mirror file, owner-only. Returns the new
 * file's inode, or undefined when the object is not in the store (pruned, never stored).
 */
export async function copyObjectForMirror(
  layout: StoreLayout,
  h: string,
  size: number,
  tmp: string
): Promise<number | undefined> {
  try {
    const obj = layout.object(h);
    if (size > SYNC_COPY_BYTES) {
      await fs.promises.copyFile(obj, tmp, fs.constants.COPYFILE_FICLONE);
    } else {
      fs.copyFileSync(obj, tmp, fs.constants.COPYFILE_FICLONE);
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      return undefined;
    }
    throw err;
  }
  return owned(tmp);
}

/** copyObjectForMirror on this thread, for callers that are not asynchronous. */
export function copyObjectForMirrorSync(layout: StoreLayout, h: string, tmp: string): number | undefined {
  try {
    fs.copyFileSync(layout.object(h), tmp, fs.constants.COPYFILE_FICLONE);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      return undefined;
    }
    throw err;
  }
  return owned(tmp);
}

/** The copy took the object's mode (0400): the mirror file's is 0600. Returns its inode. */
function owned(tmp: string): number {
  fs.chmodSync(tmp, FILE_MODE);
  return fs.statSync(tmp).ino;
}

/**
 * The replicator's mirror/: the tree's latest versions as plain files, updated after each
 * batch is acknowledged. `mirror.seq` names the last record it has applied, so a start after a
 * crash redoes only the paths of later records.
 */
export class Mirror {
  /** What each mirror file holds (content hash, inode), as this run wrote it: the "unchanged" check. */
  private readonly mirrored = new Map<string, { hash: string; ino: number }>();

  constructor(
    private readonly layout: StoreLayout,
    /** The tree it follows (replaced when the journal is replayed). */
    private readonly tree: () => VersionTree,
    private readonly log: Logger
  ) {}

  private pathOf(p: string): FsPath {
    return fsPath(this.layout.mirror, p);
  }

  /** The last record the mirror applied, or -1 when unknown. */
  readSeq(): number {
    try {
      const seq = Number(fs.readFileSync(this.layout.mirrorSeq, 'utf8').trim());
      return Number.isInteger(seq) ? seq : -1;
    } catch {
      return -1;
    }
  }

  writeSeq(seq: number): void {
    const tmp = `${this.layout.mirrorSeq}.tmp`;
    fs.writeFileSync(tmp, `${seq}\n`, { mode: FILE_MODE });
    fs.renameSync(tmp, this.layout.mirrorSeq);
  }

  /**
   * Makes mirror/p match the tree (the entry, or nothing). Paths of any length and bytes. A
   * content over 1 MiB is copied on the thread pool (a copy of 256 MiB would hold the event
   * loop for a good part of a second); callers run one at a time (exclusive, or at start).
   */
  async sync(p: string): Promise<void> {
    const dest = this.pathOf(p);
    const e = this.tree().get(p);
    const cur = viaShort(dest, (d) => fs.lstatSync(d, { throwIfNoEntry: false }));
    if (!e) {
      this.forget(p, cur);
      rmrf(dest);
      return;
    }
    if (e.op !== 'file') {
      this.mirrored.delete(p);
    }
    if (e.op === 'dir') {
      if (cur && !cur.isDirectory()) {
        rmrf(dest);
      }
      if (!cur?.isDirectory()) {
        mkdirp(dest, DIR_MODE);
      }
      return;
    }
    if (cur?.isDirectory()) {
      this.forget(p, cur);
      rmrf(dest);
    }
    mkdirp(dirnameFs(dest), DIR_MODE);
    const tmp = path.join(this.layout.tmp, `mirror-${process.pid}-${Math.random().toString(36).slice(2)}`);
    if (e.op === 'link') {
      fs.symlinkSync(encodeName(e.linkTarget), tmp);
      viaShort(dest, (d) => fs.renameSync(tmp, d));
      return;
    }
    // Unchanged: the file this replicator put there for this content, still in place.
    const known = this.mirrored.get(p);
    if (known && cur?.isFile() && known.hash === e.hash && known.ino === cur.ino && cur.nlink === 1) {
      return;
    }
    const ino = await copyObjectForMirror(this.layout, e.hash, e.size, tmp);
    if (ino === undefined) {
      return;
    } // pruned or never stored: restore reports it
    viaShort(dest, (d) => fs.renameSync(tmp, d));
    this.mirrored.set(p, { hash: e.hash, ino });
  }

  /** Drops what is known of p and, when it was a directory, of everything under it. */
  private forget(p: string, cur: fs.Stats | undefined): void {
    this.mirrored.delete(p);
    if (!cur?.isDirectory() || this.mirrored.size === 0) {
      return;
    }
    for (const k of this.mirrored.keys()) {
      if (k.startsWith(p + '/')) {
        this.mirrored.delete(k);
      }
    }
  }

  /**
   * After a crash, the mirror may lag the journal: redo the paths of records it had not
   * applied (`touched`), or everything (null). Then it is current up to `seq`.
   */
  async repair(touched: Set<string> | null, seq: number): Promise<void> {
    const tree = this.tree();
    if (touched === null) {
      // No record of progress: rebuild it all, removing what the tree does not have.
      const walk = (rel: string) => {
        const abs = rel === '' ? this.layout.mirror : this.pathOf(rel);
        for (const d of viaShort(abs, (a) => fs.readdirSync(a, { withFileTypes: true, encoding: 'buffer' }))) {
          const name = decodeName(d.name);
          const p = rel === '' ? name : `${rel}/${name}`;
          const e = tree.get(p);
          if (!e) {
            rmrf(this.pathOf(p));
          } else if (d.isDirectory() && e.op === 'dir') {
            walk(p);
          }
        }
      };
      walk('');
      for (const p of [...tree.keys()].sort()) {
        await this.sync(p);
      }
    } else {
      for (const p of [...touched].sort()) {
        await this.sync(p);
        // A directory that came back holds whatever the tree has under it.
        if (tree.get(p)?.op === 'dir') {
          for (const k of [...tree.keys()]) {
            if (k.startsWith(p + '/')) {
              await this.sync(k);
            }
          }
        }
      }
      if (touched.size > 0) {
        this.log.info('mirror repaired after an unclean stop', { paths: touched.size });
      }
    }
    this.writeSeq(seq);
  }
}
