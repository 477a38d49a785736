// One JSON object per line on stderr. Secrets never reach a log line: every string
// field is passed through the redactor, which knows the configured tokens.

export type Level = 'debug' | 'info' | 'warn' | 'error';

const levelRank: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export type Fields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
  /** Registers values that must never appear in output (tokens). */
  addSecrets(secrets: readonly string[]): void;
  /** The text with every registered secret replaced, as a log line would have it. */
  redact(text: string): string;
}

export function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) {
    if (s.length === 0) {
      continue;
    }
    // In a JSON line a token with a quote or a backslash is written escaped: hide that form too.
    for (const form of new Set([s, JSON.stringify(s).slice(1, -1)])) {
      if (out.includes(form)) {
        out = out.split(form).join('[REDACTED]');
      }
    }
  }
  return out;
}

export function createLogger(opts: { level?: Level; write?: (line: string) => void } = {}): Logger {
  const min = levelRank[opts.level ?? 'info'];
  const write = opts.write ?? ((line: string) => process.stderr.write(line));
  const secrets: string[] = [];
  const emit = (level: Level, msg: string, fields?: Fields) => {
    if (levelRank[level] < min) {
      return;
    }
    const record: Fields = { time: new Date().toISOString(), level, msg, ...fields };
    let line: string;
    try {
      line = JSON.stringify(record, (_k, v: unknown) => {
        if (v instanceof Error) {
          return { name: v.name, message: v.message };
        }
        if (typeof v === 'bigint') {
          return v.toString();
        }
        return v;
      });
    } catch {
      line = JSON.stringify({ time: record.time, level, msg, note: 'fields not serialisable' });
    }
    write(redact(line, secrets) + '\n');
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    addSecrets: (s) => {
      for (const x of s) {
        if (x && !secrets.includes(x)) {
          secrets.push(x);
        }
      }
      // Longest first so a token that contains another is redacted whole.
      secrets.sort((a, b) => b.length - a.length);
    },
    redact: (text) => redact(text, secrets),
  };
}
