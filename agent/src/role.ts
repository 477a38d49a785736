// The node's cluster role, read on demand and cached briefly so every status answer is at
// most `cacheFor` old. A change is an event; the agent never acts on it by itself.
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import type { Config } from './config';
import type { EventLog } from './events';
import type { Logger } from './log';

export type ObservedRole = 'active' | 'passive' | 'standalone' | 'unknown';

export interface RoleReading {
  role: ObservedRole;
  readAt: string;
  error?: string;
}

const VALID = new Set(['active', 'passive']);

export class RoleReader {
  private cached?: { reading: RoleReading; at: number };
  private inFlight?: Promise<RoleReading>;
  private last?: ObservedRole;

  constructor(
    private readonly cluster: Config['cluster'],
    private readonly events: EventLog,
    private readonly log: Logger,
    initial?: ObservedRole
  ) {
    this.last = initial;
  }

  get standalone(): boolean {
    return this.cluster === undefined;
  }

  async current(): Promise<RoleReading> {
    const c = this.cluster;
    if (!c) {
      return { role: 'standalone', readAt: new Date().toISOString() };
    }
    if (this.cached && Date.now() - this.cached.at < c.roleCacheMs) {
      return this.cached.reading;
    }
    if (!this.inFlight) {
      this.inFlight = this.read().finally(() => (this.inFlight = undefined));
    }
    return this.inFlight;
  }

  private async read(): Promise<RoleReading> {
    const c = this.cluster as NonNullable<Config['cluster']>;
    let role: ObservedRole = 'unknown';
    let error: string | undefined;
    try {
      const raw = await this.readRaw(c);
      const v = raw.trim().toLowerCase();
      if (VALID.has(v)) {
        role = v as ObservedRole;
      } else {
        error = `role source gave ${JSON.stringify(raw.trim().slice(0, 40))}, expected active or passive`;
      }
    } catch (e) {
      error = (e as Error).message;
    }
    const reading: RoleReading = { role, readAt: new Date().toISOString(), ...(error ? { error } : {}) };
    this.cached = { reading, at: Date.now() };
    if (this.last !== role) {
      const from = this.last ?? null;
      this.last = role;
      if (role === 'unknown') {
        this.events.add({ type: 'role_error', reason: error ?? 'role unreadable', from, to: role });
      } else if (from !== null) {
        this.events.add({ type: 'role_changed', reason: `role source now says ${role}`, from, to: role });
      }
      this.onChange?.(role);
    } else if (error) {
      this.log.debug('role still unreadable', { error });
    }
    return reading;
  }

  onChange?: (role: ObservedRole) => void;

  private readRaw(c: NonNullable<Config['cluster']>): Promise<string> {
    const src = c.role;
    switch (src.type) {
      case 'static':
        return Promise.resolve(src.role);
      case 'file':
        return fs.promises.readFile(src.path, 'utf8').catch((e: NodeJS.ErrnoException) => {
          throw new Error(`cannot read role file ${src.path}: ${e.code ?? e.message}`);
        });
      case 'command':
        return new Promise((resolve, reject) => {
          execFile(
            src.argv[0] as string,
            src.argv.slice(1),
            { timeout: c.roleTimeoutMs || undefined, killSignal: 'SIGKILL', maxBuffer: 4096 },
            (err, stdout) => {
              if (err) {
                const e = err as NodeJS.ErrnoException & { killed?: boolean; code?: unknown; signal?: string | null };
                // Never e.message: it quotes the command line, and the reason reaches /v1/status and the events.
                if (e.killed) {
                  reject(new Error(`role command timed out after ${c.roleTimeoutMs} ms`));
                } else if (typeof e.code === 'number') {
                  reject(new Error(`role command failed: exit code ${e.code}`));
                } else if (e.signal) {
                  reject(new Error(`role command failed: killed by ${e.signal}`));
                } else if (typeof e.code === 'string') {
                  reject(new Error(`role command failed: ${e.code}`));
                } else {
                  reject(new Error('role command failed'));
                }
              } else {
                resolve(stdout);
              }
            }
          );
        });
    }
  }
}

/** Whether a process with this runOn should be running on a node in this role. */
export function isExpected(runOn: 'active' | 'always', role: ObservedRole): boolean {
  if (runOn === 'always') {
    return true;
  }
  return role === 'active' || role === 'standalone';
}
