import type { DataQuery, DataSourceJsonData } from '@grafana/schema';

export const QUERY_TYPES = ['status'] as const;
export type QueryType = (typeof QUERY_TYPES)[number];

export interface VigilQuery extends DataQuery {
  queryType?: QueryType;
}

export const DEFAULT_QUERY: Partial<VigilQuery> = { queryType: 'status' };

// The fleet as the datasource's jsonData holds it. The keys are shared with the CLI's fleet.yaml,
// so one can be pasted into the other.
export interface AgentSettings {
  name: string;
  url: string;
  cluster?: string;
}

export interface VigilOptions extends DataSourceJsonData {
  pollInterval?: string;
  agents?: AgentSettings[];
  restartRole?: 'Viewer' | 'Editor' | 'Admin';
  historyPath?: string;
}

// Held encrypted by Grafana and only ever sent to the backend; the browser sees booleans.
export interface VigilSecureOptions {
  readToken?: string;
  controlToken?: string;
}
