// Bearer tokens, compared in constant time against every configured token.
import { createHash, timingSafeEqual } from 'node:crypto';
import * as fs from 'node:fs';

export type Access = 'none' | 'read' | 'control';

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

export interface AuthSource {
  readTokens: string[];
  controlTokens: string[];
  readTokenFile?: string;
  controlTokenFile?: string;
}

export class Auth {
  private read: Buffer[] = [];
  private control: Buffer[] = [];

  constructor(private readonly source: AuthSource) {
    this.set(source.readTokens, source.controlTokens);
  }

  private set(read: string[], control: string[]): void {
    this.read = read.map(digest);
    this.control = control.map(digest);
  }

  reload(): void {
    const fromFile = (file: string | undefined, current: string[]) => {
      if (!file) return current;
      const v = fs.readFileSync(file, 'utf8').trim();
      if (v === '') throw new Error(`token file ${file} is empty`);
      return [v];
    };
    this.set(fromFile(this.source.readTokenFile, this.source.readTokens), fromFile(this.source.controlTokenFile, this.source.controlTokens));
  }

  counts(): { read: number; control: number } {
    return { read: this.read.length, control: this.control.length };
  }

  /** What the Authorization header grants. Every comparison runs, whatever matches. */
  check(header: string | undefined): Access | 'missing' {
    if (!header) return 'missing';
    const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
    if (!m) return 'none';
    const d = digest(m[1] as string);
    let isRead = false;
    let isControl = false;
    for (const t of this.read) if (timingSafeEqual(t, d)) isRead = true;
    for (const t of this.control) if (timingSafeEqual(t, d)) isControl = true;
    return isControl ? 'control' : isRead ? 'read' : 'none';
  }
}
