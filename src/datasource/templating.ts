import type { ScopedVars } from '@grafana/data';
import { getTemplateSrv } from '@grafana/runtime';

// Expands template variables in filter values. A multi-value variable ("$agent" with two agents
// selected) becomes several values; agent, cluster and state names never hold a comma, so the
// csv format splits them safely.
export function expandValues(values: string[] | undefined, scopedVars: ScopedVars = {}): string[] {
  const srv = getTemplateSrv();
  const out = (values ?? [])
    .flatMap((v) => srv.replace(v, scopedVars, 'csv').split(','))
    .map((v) => v.trim())
    .filter(Boolean);
  return [...new Set(out)];
}

export function expandValue(value: string | undefined, scopedVars: ScopedVars = {}): string | undefined {
  if (!value) {
    return undefined;
  }
  return getTemplateSrv().replace(value, scopedVars, 'csv').trim() || undefined;
}

/** "$name" for each dashboard variable, to offer next to the values a filter can take. */
export function variableNames(): string[] {
  return getTemplateSrv()
    .getVariables()
    .map((v) => `$${v.name}`);
}
