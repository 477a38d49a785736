// Mirror files are copies of their objects (a reflink where the file system has them), never
// hard links: writing to a file in mirror/ must not change a stored object, which is history.
import * as fs from 'node:fs';
import { FILE_MODE } from './modes';
import type { StoreLayout } from './store';

/** Copies up to this size are made in place (cheaper than a round trip to the thread pool). */
const SYNC_COPY_BYTES = 1 << 20;

/**
 * Writes object `h` (of `size` bytes) to `tmp` as a mirror file, owner-only. Returns the new
 * file's inode, or undefined when the object is not in the store (pruned, never stored).
 */
export async function copyObjectForMirror(layout: StoreLayout, h: string, size: number, tmp: string): Promise<number | undefined> {
  try {
    const obj = layout.object(h);
    if (size > SYNC_COPY_BYTES) {await fs.promises.copyFile(obj, tmp, fs.constants.COPYFILE_FICLONE);}
    else {fs.copyFileSync(obj, tmp, fs.constants.COPYFILE_FICLONE);}
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {return undefined;}
    throw err;
  }
  return owned(tmp);
}

/** copyObjectForMirror on this thread, for callers that are not asynchronous. */
export function copyObjectForMirrorSync(layout: StoreLayout, h: string, tmp: string): number | undefined {
  try {
    fs.copyFileSync(layout.object(h), tmp, fs.constants.COPYFILE_FICLONE);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {return undefined;}
    throw err;
  }
  return owned(tmp);
}

/** The copy took the object's mode (0400): the mirror file's is 0600. Returns its inode. */
function owned(tmp: string): number {
  fs.chmodSync(tmp, FILE_MODE);
  return fs.statSync(tmp).ino;
}
