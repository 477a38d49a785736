import { CoreApp } from '@grafana/data';
import type { DataQuery, DataSourceJsonData } from '@grafana/schema';

import type { Combine } from '../shared/budget';
import type { SETTING_CHOICES } from '../shared/contract.gen';

import type { VigilQuery } from '../shared/query';

export { QUERY_TYPES, type QueryType, type VigilQuery } from '../shared/query';

/** The series of the metrics query, with what each holds (generated from pkg/frames). */
export { METRICS } from '../shared/contract.gen';

export const DEFAULT_QUERY: Partial<VigilQuery> = { queryType: 'status', agents: [] };

/**
 * A new query in Grafana's alert rule editor: the agents' state, one series per agent, which an alert
 * rule reduces to one number per agent (docs/alerting.md).
 */
export const ALERTING_DEFAULT_QUERY: Partial<VigilQuery> = { queryType: 'metrics', metrics: ['stateCode'], agents: [] };

/** Whether a query editor runs in Grafana's alert rule editor. */
export function isAlertingApp(app: string | undefined): boolean {
  return app === CoreApp.UnifiedAlerting || app === CoreApp.CloudAlerting;
}

/** The query of a dashboard variable of this datasource. */
export interface VigilVariableQuery extends DataQuery {
  kind: 'agents' | 'clusters';
  /** Only agents of this cluster (may be a template variable). */
  cluster?: string;
}

// The fleet as the datasource's jsonData holds it. The keys are those of the CLI's fleet.yaml, so
// one can be pasted into the other. Durations are strings ("10s", "1m30s", "0") as in the file.
export type Mode = (typeof SETTING_CHOICES.mode)[number];
export type RestartRole = (typeof SETTING_CHOICES.restartRole)[number];

export interface BudgetSettings {
  responseTime?: string;
  processing?: string;
  failover?: string;
  restart?: string;
  networkInterruption?: string;
  appErrorRecovery?: string;
  combine?: Combine;
  mode?: Mode;
}

export interface MeasuredSettings {
  percentile?: number;
  floor?: string;
  ceiling?: string;
  minSamples?: number;
}

export interface AutoRestartSettings {
  enabled?: boolean;
  maxRestarts?: number;
  window?: string;
  backoffInitial?: string;
  backoffMax?: string;
  stopWhenNotExpected?: boolean;
}

/** What the fleet sets under defaults and an agent may override. */
export interface PolicySettings {
  budget?: BudgetSettings;
  measured?: MeasuredSettings;
  autoRestart?: AutoRestartSettings;
  rpo?: string;
}

export interface AgentSettings extends PolicySettings {
  name: string;
  /** Empty for an agent that reports by itself (transport push). */
  url: string;
  cluster?: string;
  /** poll (the default) or push: the agent sends its reports (docs/push.md). */
  transport?: 'poll' | 'push';
  /** How often a push agent's report is due (default: pollInterval). */
  reportEvery?: string;
}

export interface VigilOptions extends DataSourceJsonData {
  pollInterval?: string;
  defaults?: PolicySettings;
  agents?: AgentSettings[];
  restartRole?: RestartRole;
  historyPath?: string;
  /** How long the monitor runs with no request before it stops (default 15m, at least 1s). */
  idleStop?: string;
}

// Held encrypted by Grafana and only ever sent to the backend; the browser sees booleans in
// secureJsonFields. Per agent: `agent.<name>.readToken`, `agent.<name>.controlToken` and, for a
// push agent, `agent.<name>.reportToken`.
export interface VigilSecureOptions {
  readToken?: string;
  controlToken?: string;
  [agentToken: `agent.${string}.${'readToken' | 'controlToken' | 'reportToken'}`]: string | undefined;
}

/** A push agent's report token is its own: there is no datasource-wide one. */
export type TokenKind = 'readToken' | 'controlToken' | 'reportToken';

export function agentSecretKey(name: string, kind: TokenKind): `agent.${string}.${TokenKind}` {
  return `agent.${name}.${kind}`;
}
