import type { DataFrame, DataSourceInstanceSettings, PanelData } from '@grafana/data';
import { getDataSourceSrv } from '@grafana/runtime';

import { DEFAULT_RESTART_ROLE, type GrafanaRole, isGrafanaRole } from '../roles';

export const VIGIL_DATASOURCE_TYPE = 'vigil-cdp-datasource';

function refUid(ref: unknown): string | undefined {
  if (typeof ref === 'string') {
    return ref;
  }
  if (ref && typeof ref === 'object' && typeof (ref as { uid?: unknown }).uid === 'string') {
    return (ref as { uid: string }).uid;
  }
  return undefined;
}

function vigilSettings(ref: string | undefined): DataSourceInstanceSettings | undefined {
  if (!ref) {
    return undefined;
  }
  // getInstanceSettings resolves names and template variables (${ds}) to the instance.
  const settings = getDataSourceSrv().getInstanceSettings(ref);
  return settings?.type === VIGIL_DATASOURCE_TYPE ? settings : undefined;
}

export function vigilDatasources(): DataSourceInstanceSettings[] {
  return getDataSourceSrv()
    .getList({ type: VIGIL_DATASOURCE_TYPE })
    .filter((s) => s.type === VIGIL_DATASOURCE_TYPE);
}

/**
 * The Vigil datasource a panel's rows came from: the query's targets (a mixed panel may hold other
 * datasources too), then a uid the backend put in the frame's meta, then the only Vigil
 * datasource if there is exactly one. Undefined when it cannot be told: the panel then says so
 * instead of restarting through a guessed datasource.
 */
export function panelDatasource(data: Pick<PanelData, 'request' | 'series'>): DataSourceInstanceSettings | undefined {
  for (const target of data.request?.targets ?? []) {
    const found = vigilSettings(refUid(target.datasource));
    if (found) {
      return found;
    }
  }
  const fromRequest = vigilSettings(refUid((data.request as { datasource?: unknown } | undefined)?.datasource));
  if (fromRequest) {
    return fromRequest;
  }
  for (const frame of data.series as DataFrame[]) {
    const custom = frame.meta?.custom as { datasourceUid?: unknown } | undefined;
    const found = vigilSettings(refUid(custom?.datasourceUid));
    if (found) {
      return found;
    }
  }
  const all = vigilDatasources();
  return all.length === 1 ? all[0] : undefined;
}

/** The minimum Grafana role the datasource allows to restart (jsonData.restartRole, default Editor). */
export function restartRoleOf(settings: DataSourceInstanceSettings | undefined): GrafanaRole {
  const configured = (settings?.jsonData as { restartRole?: unknown } | undefined)?.restartRole;
  return isGrafanaRole(configured) ? configured : DEFAULT_RESTART_ROLE;
}
