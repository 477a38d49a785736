// What a tree's metadata is, for comparing a source with its restore: type, mode, owner, group,
// file mtimes and extended attributes of every path (read through the same native module the
// replicator uses, never following symbolic links).
import * as fs from 'node:fs';
import * as path from 'node:path';

interface Xattr {
  listAttributesSync(p: string): string[];
  getAttributeSync(p: string, name: string): Buffer | null;
  setAttributeSync(p: string, name: string, value: Uint8Array | string): void;
}
export const xattr = require('@napi-rs/xattr') as Xattr;

export interface Meta {
  type: 'file' | 'dir' | 'link';
  mode?: string;
  uid: number;
  gid: number;
  /** Files only: a directory's mtime moves with its entries and is not recorded for that. */
  mtimeMs?: number;
  xattrs?: Record<string, string>;
}

export function xattrsOf(p: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const n of xattr.listAttributesSync(p).sort()) {
    out[n] = (xattr.getAttributeSync(p, n) ?? Buffer.alloc(0)).toString('base64');
  }
  return out;
}

/** Every path under `root` (not root itself) with its metadata. */
export function metaSnapshot(root: string): Map<string, Meta> {
  const out = new Map<string, Meta>();
  for (const rel of (fs.readdirSync(root, { recursive: true }) as string[]).sort()) {
    const abs = path.join(root, rel);
    const st = fs.lstatSync(abs);
    const type = st.isSymbolicLink() ? 'link' : st.isDirectory() ? 'dir' : 'file';
    const m: Meta = { type, uid: st.uid, gid: st.gid };
    if (type !== 'link') {
      m.mode = (st.mode & 0o7777).toString(8);
      m.xattrs = xattrsOf(abs);
    }
    if (type === 'file') {
      m.mtimeMs = st.mtimeMs;
    }
    out.set(rel, m);
  }
  return out;
}

/** Differences (empty when equal); mtimes within a millisecond are equal (restore sets them from ms). */
export function diffMeta(a: Map<string, Meta>, b: Map<string, Meta>): string[] {
  const out: string[] = [];
  const norm = (m: Meta) => JSON.stringify({ ...m, mtimeMs: undefined });
  for (const [p, x] of a) {
    const y = b.get(p);
    if (!y) {
      out.push(`only in the first: ${p}`);
    } else if (norm(x) !== norm(y) || Math.abs((x.mtimeMs ?? 0) - (y.mtimeMs ?? 0)) >= 1) {
      out.push(`differs: ${p}: ${JSON.stringify(x)} vs ${JSON.stringify(y)}`);
    }
  }
  for (const p of b.keys()) {
    if (!a.has(p)) {
      out.push(`only in the second: ${p}`);
    }
  }
  return out;
}

/**
 * A POSIX access ACL as the kernel's `system.posix_acl_access` attribute holds it (version 2,
 * then tag/permissions/id entries): owner rw, user `uid` r, group r, mask r, others none.
 */
export function aclBlob(uid: number): Buffer {
  const UNDEF = 0xffffffff;
  const entries: Array<[number, number, number]> = [
    [0x01, 6, UNDEF], // ACL_USER_OBJ
    [0x02, 4, uid], // ACL_USER
    [0x04, 4, UNDEF], // ACL_GROUP_OBJ
    [0x10, 4, UNDEF], // ACL_MASK
    [0x20, 0, UNDEF], // ACL_OTHER
  ];
  const b = Buffer.alloc(4 + entries.length * 8);
  b.writeUInt32LE(2, 0);
  entries.forEach(([tag, perm, id], i) => {
    b.writeUInt16LE(tag, 4 + i * 8);
    b.writeUInt16LE(perm, 6 + i * 8);
    b.writeUInt32LE(id, 8 + i * 8);
  });
  return b;
}
