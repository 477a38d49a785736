import type { DataQuery } from '@grafana/schema';

import { QUERY_TYPES } from './contract.gen';

// The datasource's query model: what the app pages, the panel and the datasource's editors send.
// The query types come from the backend (pkg/plugin QueryTypes) through the generated contract.
export { QUERY_TYPES };
export type QueryType = (typeof QUERY_TYPES)[number];

export interface VigilQuery extends DataQuery {
  queryType?: QueryType;
  /** Agent names or template variables ("$agent"); empty means every agent. */
  agents?: string[];
  cluster?: string;
  /** State names (src/shared/states.ts); empty means every state. */
  states?: string[];
  /** For queryType metrics: which series (METRICS); empty means all. */
  metrics?: string[];
}
