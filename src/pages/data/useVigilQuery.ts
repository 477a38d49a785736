import {
  CoreApp,
  type DataFrame,
  type DataQueryRequest,
  type DataQueryResponse,
  dateTime,
  type TimeRange,
} from '@grafana/data';
import { getDataSourceSrv } from '@grafana/runtime';
import { isObservable, lastValueFrom } from 'rxjs';

import { type AsyncValue, useAsyncValue } from './useAsyncValue';
import type { VigilQuery } from '../../shared/query';

export function lastHours(hours: number): TimeRange {
  const to = dateTime();
  const from = dateTime(to).subtract(hours, 'hours');
  return { from, to, raw: { from: `now-${hours}h`, to: 'now' } };
}

/** Runs one query of the Vigil datasource the way a panel would, and answers its frames. */
export async function runVigilQuery(uid: string, query: Omit<VigilQuery, 'refId'>, range: TimeRange) {
  const ds = await getDataSourceSrv().get({ uid });
  const request = {
    requestId: `vigil-app-${query.queryType}`,
    app: CoreApp.Unknown,
    interval: '10s',
    intervalMs: 10000,
    maxDataPoints: 500,
    range,
    scopedVars: {},
    targets: [{ refId: 'A', datasource: { uid, type: ds.type }, ...query }],
    timezone: 'browser',
    startTime: Date.now(),
  } as unknown as DataQueryRequest<VigilQuery>;
  const answer = ds.query(request as never);
  const response: DataQueryResponse = isObservable(answer) ? await lastValueFrom(answer) : await answer;
  const errors = response.errors ?? [];
  if (errors.length > 0) {
    throw new Error(errors.map((e) => e.message ?? 'query failed').join('; '));
  }
  return response.data as DataFrame[];
}

export function useVigilQuery(
  uid: string | undefined,
  query: Omit<VigilQuery, 'refId'>,
  range: TimeRange
): AsyncValue<DataFrame[]> {
  const key = JSON.stringify(query);
  return useAsyncValue(
    () => (uid ? runVigilQuery(uid, query, range) : Promise.resolve([])),
    [uid, key, range.from.valueOf(), range.to.valueOf()]
  );
}
