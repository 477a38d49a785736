import type { DataFrame } from '@grafana/data';

/** A table frame as plain rows keyed by field name; the pages read events and status this way. */
export function frameRows(frames: DataFrame[]): Array<Record<string, unknown>> {
  const rows: Array<Record<string, unknown>> = [];
  for (const frame of frames) {
    for (let i = 0; i < frame.length; i++) {
      const row: Record<string, unknown> = {};
      for (const field of frame.fields) {
        row[field.name] = field.values[i];
      }
      rows.push(row);
    }
  }
  return rows;
}

export interface EventRow {
  id: string;
  time?: number;
  agent: string;
  process: string;
  kind: string;
  text: string;
  user: string;
}

const str = (v: unknown) => (v === null || v === undefined ? '' : String(v));

/** The datasource's `events` table, newest first. */
export function eventRows(frames: DataFrame[], limit = 50): EventRow[] {
  return frameRows(frames)
    .map((r, i) => {
      const t = r.time ?? r.Time;
      const time = typeof t === 'number' ? t : t ? Date.parse(String(t)) : undefined;
      return {
        id: String(i),
        time: Number.isNaN(time) ? undefined : time,
        agent: str(r.agent),
        process: str(r.process),
        kind: str(r.kind ?? r.type),
        text: str(r.text ?? r.title ?? r.message),
        // Who acted: the events table's `by` ("auto" for Vigil itself, else a login).
        user: str(r.by ?? r.user ?? r.login),
      };
    })
    .sort((a, b) => (b.time ?? 0) - (a.time ?? 0))
    .slice(0, limit);
}
