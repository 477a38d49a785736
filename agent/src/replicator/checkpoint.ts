// Checkpoints: a small object is stored without its own fsync, its record carrying the content
// (journal.ts, `data`). A checkpoint fsyncs those objects side by side (the file system commits
// them together) and records a sync record: the inline contents before it are then not needed.
// After an unclean stop, the objects after the last sync record are rewritten from their records.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger } from '../log';
import { hashBuffer } from './digest';
import type { FileChange } from './journal';
import type { OpenJournal } from './journalkeeper';
import { OBJECT_MODE } from './modes';
import { fsyncDirAsync, type StoreLayout } from './store';

/** At most this many objects wait for a checkpoint, whatever the time. */
const CHECKPOINT_MAX_OBJECTS = 4096;

export class Checkpoints {
  /** Objects written without their own fsync (their records carry the content). */
  private readonly unsynced = new Set<string>();
  private timer?: NodeJS.Timeout;
  private due = false;

  constructor(
    private readonly layout: StoreLayout,
    private readonly everyMs: number,
    /** Files fsynced side by side. */
    private readonly concurrency: number
  ) {}

  /** Object `obj` was stored without an fsync. */
  add(obj: string): void {
    this.unsynced.add(obj);
  }

  /** Whether object `obj` still waits for its fsync (its record must carry the content). */
  waits(obj: string): boolean {
    return this.unsynced.has(obj);
  }

  /** A long burst must not pile up objects without fsync: a checkpoint is due on time, or by count. */
  get needed(): boolean {
    return this.due || this.unsynced.size >= CHECKPOINT_MAX_OBJECTS;
  }

  /** Starts the timer (unless it runs) when objects wait; `run` is called when it fires. */
  schedule(run: () => void): void {
    if (this.timer || this.unsynced.size === 0) {
      return;
    }
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.due = true;
      run();
    }, this.everyMs);
  }

  cancel(): void {
    if (this.timer) {
      clearTimeout(this.timer);
    }
  }

  /**
   * Makes the waiting objects durable, then appends a sync record for the journal's last
   * record. False when nothing waited (nothing appended).
   */
  async run(journal: OpenJournal): Promise<boolean> {
    this.due = false;
    if (this.unsynced.size === 0) {
      return false;
    }
    const files = [...this.unsynced];
    this.unsynced.clear();
    const upTo = journal.lastSeq;
    let next = 0;
    const dirs = new Set<string>();
    const worker = async () => {
      while (next < files.length) {
        const f = files[next++] as string;
        dirs.add(path.dirname(f));
        const fh = await fs.promises.open(f, 'r').catch(() => undefined);
        if (!fh) {
          continue;
        } // pruned meanwhile
        try {
          await fh.datasync();
        } finally {
          await fh.close();
        }
      }
    };
    await Promise.all(Array.from({ length: this.concurrency }, worker));
    await Promise.all([...dirs].map((d) => fsyncDirAsync(d)));
    await journal.appendSync(upTo);
    return true;
  }

  /**
   * After an unclean stop (a power loss at worst), objects written after the last sync record
   * may be missing or incomplete: rewrites them from their records' inline copies (they wait
   * for the next checkpoint). Returns how many were rewritten.
   */
  recover(records: readonly FileChange[], noteError: (msg: string) => void, log: Logger): number {
    let rewritten = 0;
    let checked = 0;
    for (const r of records) {
      if (r.data === undefined) {
        continue;
      }
      const obj = this.layout.object(r.hash);
      checked++;
      let ok = false;
      try {
        ok = hashBuffer(this.layout.hash, fs.readFileSync(obj)) === r.hash;
      } catch {
        ok = false;
      }
      if (!ok) {
        const data = Buffer.from(r.data, 'base64');
        if (hashBuffer(this.layout.hash, data) !== r.hash) {
          noteError(
            `store: the inline copy of ${r.path} (record ${r.seq}) does not match its hash; its object could not be recovered`
          );
          continue;
        }
        const tmp = path.join(this.layout.tmp, `recover-${r.hash}`);
        fs.writeFileSync(tmp, data, { mode: OBJECT_MODE });
        fs.renameSync(tmp, obj);
        rewritten++;
      }
      this.unsynced.add(obj);
    }
    if (rewritten > 0) {
      log.warn('objects rewritten from the journal after an unclean stop', { rewritten, checked });
      noteError(`store: ${rewritten} object(s) lost in an unclean stop were rewritten from the journal`);
    }
    return rewritten;
  }
}
