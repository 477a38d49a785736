// Prometheus text exposition of the status document.
import type { StatusDocument } from './agent';

function esc(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

export function renderMetrics(s: StatusDocument, events: { latestSeq: number; count: number }): string {
  const out: string[] = [];
  const family = (
    name: string,
    type: 'gauge' | 'counter',
    help: string,
    rows: Array<[Record<string, string>, number | null]>
  ) => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of rows) {
      if (value === null) {
        continue;
      }
      const l = Object.entries(labels)
        .map(([k, v]) => `${k}="${esc(v)}"`)
        .join(',');
      out.push(`${name}${l ? `{${l}}` : ''} ${Number.isFinite(value) ? value : 'NaN'}`);
    }
  };
  const p = (name: string, kind: string) => ({ process: name, kind });
  family('vigil_agent_info', 'gauge', 'Agent identity; always 1.', [
    [
      { version: s.agent.version, id: s.agent.id, hostname: s.agent.hostname, role: s.cluster?.role ?? 'standalone' },
      1,
    ],
  ]);
  family('vigil_agent_start_time_seconds', 'gauge', 'When the agent started, in seconds since the epoch.', [
    [{}, Date.parse(s.agent.startedAt) / 1000],
  ]);
  family(
    'vigil_agent_cluster_active',
    'gauge',
    '1 when the node is active or standalone, 0 when passive, NaN when the role is unknown.',
    [[{}, s.cluster === null || s.cluster.role === 'active' ? 1 : s.cluster.role === 'passive' ? 0 : NaN]]
  );
  family('vigil_agent_events_last_seq', 'counter', 'Sequence number of the newest event.', [[{}, events.latestSeq]]);
  family(
    'vigil_agent_process_up',
    'gauge',
    '1 when the process is running.',
    s.processes.map((x) => [p(x.name, x.kind), x.state === 'running' ? 1 : 0])
  );
  family(
    'vigil_agent_process_expected',
    'gauge',
    '1 when the process should run on this node now.',
    s.processes.map((x) => [p(x.name, x.kind), x.expected ? 1 : 0])
  );
  family(
    'vigil_agent_process_restarts_total',
    'counter',
    'Restarts done by the agent.',
    s.processes.map((x) => [p(x.name, x.kind), x.restarts])
  );
  family(
    'vigil_agent_process_generation',
    'gauge',
    'Grows by one at every (re)start.',
    s.processes.map((x) => [p(x.name, x.kind), x.generation])
  );
  family(
    'vigil_agent_process_last_exit_code',
    'gauge',
    'Exit code of the last exit; -1 when it was killed by a signal or the code is unknown.',
    s.processes.map((x) => [p(x.name, x.kind), x.lastExit ? (x.lastExit.code ?? -1) : null])
  );
  family(
    'vigil_agent_process_start_time_seconds',
    'gauge',
    'When the running process started, in seconds since the epoch.',
    s.processes.map((x) => [p(x.name, x.kind), x.startedAt ? Date.parse(x.startedAt) / 1000 : null])
  );
  family(
    'vigil_agent_process_protection_lag_seconds',
    'gauge',
    'Replication lag reported by the process, when its kind knows it.',
    s.processes.map((x) => [p(x.name, x.kind), x.protection?.lagSeconds ?? null])
  );
  const verify = (x: StatusDocument['processes'][number]) =>
    (x.protection as { verify?: { problems: number; at: string } | null } | null)?.verify ?? null;
  family(
    'vigil_replicator_verify_problems',
    'gauge',
    'Problems the last scheduled verify of the store found (verifyEvery); absent before the first.',
    s.processes.map((x) => [p(x.name, x.kind), verify(x)?.problems ?? null])
  );
  family(
    'vigil_replicator_verify_last_timestamp_seconds',
    'gauge',
    'When the last scheduled verify of the store finished, in seconds since the epoch.',
    s.processes.map((x) => [p(x.name, x.kind), verify(x) ? Date.parse((verify(x) as { at: string }).at) / 1000 : null])
  );
  return out.join('\n') + '\n';
}
