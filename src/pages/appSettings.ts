import type { DataSourceInstanceSettings } from '@grafana/data';
import { getBackendSrv, locationService } from '@grafana/runtime';

import { vigilDatasources } from '../shared/data/datasource';
import { PLUGIN_ID } from '../constants';

/** The app's jsonData: which Vigil datasource its pages show. */
export interface AppSettings {
  datasourceUid?: string;
}

/** The datasource a page shows: ?ds= in the URL, else the app's choice, else the first Vigil one. */
export function chosenDatasource(settings: AppSettings): DataSourceInstanceSettings | undefined {
  const list = vigilDatasources();
  const fromUrl = locationService.getSearchObject().ds;
  const wanted = typeof fromUrl === 'string' ? fromUrl : settings.datasourceUid;
  return list.find((s) => s.uid === wanted) ?? list[0];
}

export async function saveAppSettings(settings: AppSettings) {
  await getBackendSrv().post(
    `/api/plugins/${PLUGIN_ID}/settings`,
    { enabled: true, pinned: true, jsonData: settings },
    { showErrorAlert: false }
  );
}
