// Bearer tokens, compared in constant time against every configured token.
import { createHash, timingSafeEqual } from 'node:crypto';

export type Access = 'none' | 'read' | 'control';

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

export class Auth {
  private read: Buffer[] = [];
  private control: Buffer[] = [];

  constructor(tokens: { readTokens: string[]; controlTokens: string[] }) {
    this.replace(tokens.readTokens, tokens.controlTokens);
  }

  /** Takes new tokens, already checked (config.ts loadTokens): at start and on SIGHUP. */
  replace(read: string[], control: string[]): void {
    this.read = read.map(digest);
    this.control = control.map(digest);
  }

  counts(): { read: number; control: number } {
    return { read: this.read.length, control: this.control.length };
  }

  /** What the Authorization header grants. Every comparison runs, whatever matches. */
  check(header: string | undefined): Access | 'missing' {
    if (!header) {
      return 'missing';
    }
    const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
    if (!m) {
      return 'none';
    }
    const d = digest(m[1] as string);
    let isRead = false;
    let isControl = false;
    for (const t of this.read) {
      if (timingSafeEqual(t, d)) {
        isRead = true;
      }
    }
    for (const t of this.control) {
      if (timingSafeEqual(t, d)) {
        isControl = true;
      }
    }
    return isControl ? 'control' : isRead ? 'read' : 'none';
  }
}
