import type { DataSourceInstanceSettings, CoreApp } from '@grafana/data';
import { DataSourceWithBackend } from '@grafana/runtime';

import { DEFAULT_QUERY, type VigilOptions, type VigilQuery } from './types';

export class DataSource extends DataSourceWithBackend<VigilQuery, VigilOptions> {
  constructor(instanceSettings: DataSourceInstanceSettings<VigilOptions>) {
    super(instanceSettings);
  }

  getDefaultQuery(_: CoreApp): Partial<VigilQuery> {
    return DEFAULT_QUERY;
  }
}
