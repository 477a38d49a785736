// The event log: every state change, with a sequence number, persisted in stateDir so it
// survives agent restarts (including kill -9). Bounded: the newest `keep` events stay, and
// up to `keepFailures` older failures are kept beyond that so a burst of routine events
// cannot push the evidence of a crash out of the log.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger } from './log';

export const FAILURE_TYPES = new Set([
  'crashed',
  'start_failed',
  'restart_failed',
  'stop_failed',
  'auto_restart_suspended',
  'leftover_stopped',
  'role_error',
]);

export interface AgentEvent {
  seq: number;
  time: string;
  type: string;
  reason: string;
  process?: string;
  [field: string]: unknown;
}

export type NewEvent = Omit<AgentEvent, 'seq' | 'time'>;

export class EventLog {
  private events: AgentEvent[] = [];
  private lastSeq = 0;
  private linesInFile = 0;
  readonly file: string;
  private listeners: Array<(e: AgentEvent) => void> = [];

  constructor(
    stateDir: string,
    private readonly keep: number,
    private readonly keepFailures: number,
    private readonly log: Logger
  ) {
    this.file = path.join(stateDir, 'events.jsonl');
    this.load();
  }

  private load(): void {
    let text = '';
    try {
      text = fs.readFileSync(this.file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
        this.log.warn('cannot read the event log; starting a new one', { file: this.file, error: e });
      }
      return;
    }
    const lines = text.split('\n');
    let torn = 0;
    for (const line of lines) {
      if (line.trim() === '') {
        continue;
      }
      try {
        const e = JSON.parse(line) as AgentEvent;
        if (typeof e.seq === 'number' && e.seq > this.lastSeq) {
          this.events.push(e);
          this.lastSeq = e.seq;
        }
      } catch {
        // A kill -9 in the middle of an append leaves at most one torn line.
        torn++;
      }
    }
    if (torn > 0) {
      this.log.warn('skipped unreadable lines in the event log', { file: this.file, lines: torn });
    }
    this.trim();
    this.rewrite();
  }

  private trim(): void {
    if (this.events.length <= this.keep) {
      return;
    }
    const cut = this.events.length - this.keep;
    const older = this.events.slice(0, cut).filter((e) => FAILURE_TYPES.has(e.type));
    const keptFailures = this.keepFailures > 0 ? older.slice(-this.keepFailures) : [];
    this.events = [...keptFailures, ...this.events.slice(cut)];
  }

  private rewrite(): void {
    const tmp = `${this.file}.tmp`;
    fs.writeFileSync(tmp, this.events.map((e) => JSON.stringify(e) + '\n').join(''), { mode: 0o600 });
    fs.renameSync(tmp, this.file);
    this.linesInFile = this.events.length;
  }

  onEvent(listener: (e: AgentEvent) => void): void {
    this.listeners.push(listener);
  }

  add(e: NewEvent): AgentEvent {
    const event: AgentEvent = { seq: ++this.lastSeq, time: new Date().toISOString(), ...e } as AgentEvent;
    this.events.push(event);
    try {
      fs.appendFileSync(this.file, JSON.stringify(event) + '\n', { mode: 0o600 });
      this.linesInFile++;
      this.trim();
      if (this.linesInFile > this.keep * 2 + this.keepFailures) {
        this.rewrite();
      }
    } catch (err) {
      this.log.error('cannot persist an event', { file: this.file, error: err, type: e.type });
    }
    const { seq, type, process: proc, reason, ...rest } = event;
    this.log.info('event', { seq, type, process: proc, reason, ...rest });
    for (const l of this.listeners) {
      l(event);
    }
    return event;
  }

  /** Events with seq > since, oldest first. */
  since(since: number, limit: number): { events: AgentEvent[]; next: number } {
    const out: AgentEvent[] = [];
    for (const e of this.events) {
      if (e.seq > since) {
        out.push(e);
        if (out.length >= limit) {
          break;
        }
      }
    }
    // With nothing new, `next` stays at `since` unless the log was reset below it, so a
    // client holding a sequence number from a wiped stateDir catches up instead of waiting forever.
    const next = out.length > 0 ? (out[out.length - 1] as AgentEvent).seq : Math.min(since, this.lastSeq);
    return { events: out, next };
  }

  stats(): { count: number; oldestSeq: number | null; latestSeq: number; failures: number; file: string } {
    return {
      count: this.events.length,
      oldestSeq: this.events[0]?.seq ?? null,
      latestSeq: this.lastSeq,
      failures: this.events.filter((e) => FAILURE_TYPES.has(e.type)).length,
      file: this.file,
    };
  }

  latestSeq(): number {
    return this.lastSeq;
  }
}
