import type { DataFrame } from '@grafana/data';

export interface StatusRow {
  agent: string;
  cluster: string;
  process: string;
  state: string;
  stateCode: number;
  reason: string;
}

// Reads the datasource's `status` frames into rows. A frame without the fields the panel needs is
// reported by name instead of rendering an empty list that would look like a healthy fleet.
export function statusRows(frames: DataFrame[]): { rows: StatusRow[]; problem?: string } {
  const rows: StatusRow[] = [];
  for (const frame of frames) {
    const field = (name: string) => frame.fields.find((f) => f.name === name);
    const agent = field('agent');
    const state = field('state');
    if (!agent || !state) {
      const missing = [agent ? undefined : 'agent', state ? undefined : 'state'].filter(Boolean).join(' and ');
      return {
        rows,
        problem: `The query does not return a status table: frame "${frame.name ?? frame.refId ?? ''}" has no ${missing} field. Use the Vigil CDP datasource with query type "status".`,
      };
    }
    const value = (name: string, i: number) => field(name)?.values[i];
    for (let i = 0; i < frame.length; i++) {
      rows.push({
        agent: String(agent.values[i] ?? ''),
        cluster: String(value('cluster', i) ?? ''),
        process: String(value('process', i) ?? ''),
        state: String(state.values[i] ?? ''),
        stateCode: Number(value('stateCode', i) ?? 6),
        reason: String(value('reason', i) ?? ''),
      });
    }
  }
  return { rows };
}
