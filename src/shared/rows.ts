import type { DataFrame, Field } from '@grafana/data';

export interface StatusRow {
  agent: string;
  cluster: string;
  role: string;
  process: string;
  state: string;
  stateCode: number;
  reason: string;
  /** Seconds; undefined when the agent never answered or the backend does not send it. */
  rttSeconds?: number;
  budgetSeconds?: number;
  lagSeconds?: number;
  /** Epoch milliseconds. */
  lastRestart?: number;
  generation?: number;
}

// The status frame's optional fields, with the names the datasource uses for each. The panel
// shows what it finds and leaves out what it does not.
const OPTIONAL: Record<'role' | 'rtt' | 'budget' | 'lag' | 'lastRestart' | 'generation', string[]> = {
  role: ['role'],
  rtt: ['rtt', 'rttSeconds'],
  budget: ['budget', 'budgetSeconds'],
  lag: ['protectionLag', 'protectionLagSeconds', 'lag', 'lagSeconds'],
  lastRestart: ['lastRestart', 'lastRestartAt'],
  generation: ['generation'],
};

function num(v: unknown): number | undefined {
  if (v === null || v === undefined || v === '') {
    return undefined;
  }
  const n = Number(v);
  return Number.isFinite(n) ? n : undefined;
}

function time(v: unknown): number | undefined {
  if (v === null || v === undefined || v === '') {
    return undefined;
  }
  if (typeof v === 'number') {
    return v;
  }
  const t = Date.parse(String(v));
  return Number.isNaN(t) ? undefined : t;
}

// Reads the datasource's `status` frames into rows. A frame without the fields the panel needs is
// reported by name instead of rendering an empty list that would look like a healthy fleet.
export function statusRows(frames: DataFrame[]): { rows: StatusRow[]; problem?: string } {
  const rows: StatusRow[] = [];
  for (const frame of frames) {
    const field = (name: string) => frame.fields.find((f) => f.name === name);
    const anyOf = (names: string[]): Field | undefined => names.map(field).find(Boolean);
    const agent = field('agent');
    const state = field('state');
    if (!agent || !state) {
      const missing = [agent ? undefined : 'agent', state ? undefined : 'state'].filter(Boolean).join(' and ');
      return {
        rows,
        problem: `The query does not return a status table: frame "${frame.name ?? frame.refId ?? ''}" has no ${missing} field. Use the Vigil CDP datasource with query type "status".`,
      };
    }
    const opt = Object.fromEntries(Object.entries(OPTIONAL).map(([k, names]) => [k, anyOf(names)])) as Record<
      keyof typeof OPTIONAL,
      Field | undefined
    >;
    const value = (name: string, i: number) => field(name)?.values[i];
    for (let i = 0; i < frame.length; i++) {
      rows.push({
        agent: String(agent.values[i] ?? ''),
        cluster: String(value('cluster', i) ?? ''),
        role: String(opt.role?.values[i] ?? ''),
        process: String(value('process', i) ?? ''),
        state: String(state.values[i] ?? ''),
        stateCode: num(value('stateCode', i)) ?? 6,
        reason: String(value('reason', i) ?? ''),
        rttSeconds: num(opt.rtt?.values[i]),
        budgetSeconds: num(opt.budget?.values[i]),
        lagSeconds: num(opt.lag?.values[i]),
        lastRestart: time(opt.lastRestart?.values[i]),
        generation: num(opt.generation?.values[i]),
      });
    }
  }
  return { rows };
}
