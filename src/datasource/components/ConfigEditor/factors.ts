import type { BudgetSettings } from '../../types';
import { DEFAULT_POLICY } from '../../fleet';

type DurationKey = Exclude<keyof BudgetSettings, 'combine' | 'mode'>;

/** The budget factors in the order the budget adds them, each with what it stands for. */
export const BUDGET_FACTORS: Array<{ key: DurationKey; label: string; explanation: string; fallback: string }> = [
  {
    key: 'responseTime',
    label: 'Response time',
    explanation: 'Network transit and the agent answering; the measured p99 round trip replaces it when larger.',
  },
  { key: 'processing', label: 'Processing', explanation: "The monitor's own time to handle an answer." },
  {
    key: 'failover',
    label: 'Failover',
    explanation: 'A cluster moving its active node; counts only for agents with a cluster.',
  },
  { key: 'restart', label: 'Machine restart', explanation: 'The protected machine (or its agent) rebooting.' },
  {
    key: 'networkInterruption',
    label: 'Network interruption',
    explanation: 'The network between Grafana and the agent dropping for a while.',
  },
  {
    key: 'appErrorRecovery',
    label: 'App error recovery',
    explanation: 'The CDP application recovering from an error on its own.',
  },
].map((f) => ({ ...f, key: f.key as DurationKey, fallback: DEFAULT_POLICY.budget[f.key as DurationKey] }));
