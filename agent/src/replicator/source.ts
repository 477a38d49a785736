// The protected directory as the replicator sees it: lstat, owner and attributes, link targets,
// and whether it is still the directory it started with (an unmounted disk is not a mass delete).
import * as fs from 'node:fs';
import type { Logger } from '../log';
import { decodeName, displayPath, fsPath, viaShort, type FsPath } from './fspath';
import { metadataNotRead, readMetadata, type Metadata } from './metadata';

/** An lstat: the stats, null when the path is gone, or why it cannot be seen. */
export type SourceStat = fs.Stats | null | { unreadable: string };

export class Source {
  /** The root's identity, once the catch-up starts. */
  id?: { dev: number; ino: number };
  /** Why the source cannot be trusted right now (null: it can). */
  problem: string | null = null;

  constructor(
    readonly root: string,
    private readonly log: Logger,
    /** Told of a new problem, with whether another directory stands there now. */
    private readonly lost: (problem: string, replaced: boolean) => void
  ) {}

  /** The source path of `p` for system calls (raw bytes for names that are not UTF-8; may be longer than PATH_MAX). */
  path(p: string): FsPath {
    return fsPath(this.root, p);
  }

  lstat(p: string): SourceStat {
    try {
      return viaShort(this.path(p), (a) => fs.lstatSync(a));
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? 'error';
      if (code === 'ENOENT' || code === 'ENOTDIR') {
        return null;
      }
      return { unreadable: code };
    }
  }

  readlink(p: string): string {
    return decodeName(viaShort(this.path(p), (a) => fs.readlinkSync(a, { encoding: 'buffer' })));
  }

  /** Owner, group and extended attributes of a source path (metadata.ts): what its record carries. */
  metadata(p: string, uid: number, gid: number, quiet = false): Metadata {
    try {
      return viaShort(this.path(p), (a) =>
        readMetadata(
          a,
          uid,
          gid,
          quiet ? undefined : (msg, fields) => this.log.warn(msg, { path: displayPath(p), ...fields })
        )
      );
    } catch (e) {
      // A long path's directories could not be opened: gone or unreadable, which its lstat tells.
      return metadataNotRead(uid, gid, (e as NodeJS.ErrnoException).code ?? 'error');
    }
  }

  /** Why the source cannot be trusted right now (null: it can), logged when that changes. */
  check(): string | null {
    const st = fs.statSync(this.root, { throwIfNoEntry: false });
    let problem: string | null = null;
    if (!st?.isDirectory()) {
      problem = `source ${this.root} is missing`;
    } else if (this.id && (st.dev !== this.id.dev || st.ino !== this.id.ino)) {
      problem = `source ${this.root} is another directory than at start (unmounted or replaced)`;
    }
    if (problem && problem !== this.problem) {
      this.log.error('not recording: the source is not available', { problem });
      this.lost(problem, st?.isDirectory() === true);
    }
    if (!problem && this.problem) {
      this.log.info('the source is back', { source: this.root });
    }
    this.problem = problem;
    return problem;
  }
}
