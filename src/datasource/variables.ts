import {
  CustomVariableSupport,
  type DataQueryRequest,
  type DataQueryResponse,
  type MetricFindValue,
  type ScopedVars,
} from '@grafana/data';
import { from, map, type Observable } from 'rxjs';
import { z } from 'zod';

import { VariableQueryEditor } from './components/VariableQueryEditor/VariableQueryEditor';
import { clustersOf, listAgents, type ResourceCaller } from '../shared/resources';
import type { DataSource } from './datasource';
import { expandValues } from './templating';
import type { VigilOptions, VigilQuery, VigilVariableQuery } from './types';

// Dashboard variables of a Vigil datasource: its agents (optionally of one cluster) or its
// clusters, read from the GET agents resource.

const storedQuery = z.union([
  z.object({
    refId: z.string().optional(),
    kind: z.enum(['agents', 'clusters']).catch('agents'),
    cluster: z.string().optional(),
  }),
  // A query typed as text, as older dashboards and metricFindQuery callers pass it:
  // "agents", "clusters" or "agents(<cluster>)".
  z
    .string()
    .regex(/^\s*(agents|clusters)\s*(\(\s*([^)]*?)\s*\))?\s*$/)
    .transform((s) => {
      const m = /^\s*(agents|clusters)\s*(\(\s*([^)]*?)\s*\))?\s*$/.exec(s)!;
      return { kind: m[1] as 'agents' | 'clusters', cluster: m[3] || undefined };
    }),
]);

export function normalizeVariableQuery(raw: unknown): VigilVariableQuery {
  const parsed = storedQuery.safeParse(raw);
  const q = parsed.success ? parsed.data : { kind: 'agents' as const };
  return { refId: 'refId' in q && q.refId ? q.refId : 'VigilVariable', kind: q.kind, cluster: q.cluster || undefined };
}

export async function variableValues(
  ds: ResourceCaller,
  query: VigilVariableQuery,
  scopedVars?: ScopedVars
): Promise<MetricFindValue[]> {
  const agents = await listAgents(ds);
  const clusters = query.cluster ? expandValues([query.cluster], scopedVars) : [];
  const inCluster = clusters.length ? agents.filter((a) => a.cluster && clusters.includes(a.cluster)) : agents;
  const names = query.kind === 'clusters' ? clustersOf(inCluster) : inCluster.map((a) => a.name);
  return names.map((text) => ({ text, value: text }));
}

export class VigilVariableSupport extends CustomVariableSupport<
  DataSource,
  VigilVariableQuery,
  VigilQuery,
  VigilOptions
> {
  editor = VariableQueryEditor;

  constructor(private readonly ds: DataSource) {
    super();
  }

  query(request: DataQueryRequest<VigilVariableQuery>): Observable<DataQueryResponse> {
    const query = normalizeVariableQuery(request.targets[0]);
    return from(variableValues(this.ds, query, request.scopedVars)).pipe(map((data) => ({ data })));
  }
}
