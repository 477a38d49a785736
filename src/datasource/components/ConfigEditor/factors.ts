import type { AutoRestartSettings, BudgetSettings, MeasuredSettings } from '../../types';
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

/** A setting of the measured-mode or auto-restart policy typed into a text field. */
export interface PolicyField<K extends string> {
  key: K;
  label: string;
  explanation: string;
  /** Kept as a number when it is one (the rest are durations, kept as typed). */
  numeric?: boolean;
}

export const MEASURED_FIELDS: Array<PolicyField<keyof MeasuredSettings>> = [
  {
    key: 'percentile',
    label: 'Percentile',
    explanation: 'Of the past silences of one kind; above 0, at most 100.',
    numeric: true,
  },
  { key: 'floor', label: 'Floor', explanation: 'A learned allowance is never below this.' },
  { key: 'ceiling', label: 'Ceiling', explanation: 'A learned allowance is never above this.' },
  {
    key: 'minSamples',
    label: 'Minimum samples',
    explanation: 'Silences of a kind to know before the learned value replaces the configured one.',
    numeric: true,
  },
];

export const AUTO_RESTART_FIELDS: Array<
  PolicyField<Exclude<keyof AutoRestartSettings, 'enabled' | 'stopWhenNotExpected'>>
> = [
  {
    key: 'maxRestarts',
    label: 'Max restarts',
    explanation:
      'Successful restarts of one process tolerated within the window; one more marks it DEGRADED and pauses auto-restart.',
    numeric: true,
  },
  { key: 'window', label: 'Window', explanation: 'The period the flap guard counts restarts over.' },
  {
    key: 'backoffInitial',
    label: 'Back-off initial',
    explanation: 'Wait after a failed restart attempt; doubles with each further failure.',
  },
  { key: 'backoffMax', label: 'Back-off max', explanation: 'The longest wait between failed attempts.' },
];
