import { type DataFrame, type DataQueryResponse, type DataSourceInstanceSettings } from '@grafana/data';
import { of } from 'rxjs';
import { type BackendSrv, config, type DataSourceSrv, setBackendSrv, setDataSourceSrv } from '@grafana/runtime';

// Test doubles for Grafana's services, set through @grafana/runtime's own setters so the code
// under test runs unchanged.

export function vigilSettings(uid = 'vigil-cdp', jsonData: Record<string, unknown> = {}): DataSourceInstanceSettings {
  return {
    uid,
    type: 'vigil-cdp-datasource',
    name: `Vigil ${uid}`,
    jsonData,
    access: 'proxy',
    readOnly: false,
    meta: { id: 'vigil-cdp-datasource', name: 'Vigil CDP', type: 'datasource' },
  } as unknown as DataSourceInstanceSettings;
}

/** A datasource instance whose query answers frames per query type (or fails with a message). */
export function fakeVigilInstance(answers: Record<string, DataFrame[] | Error>) {
  return {
    type: 'vigil-cdp-datasource',
    query: jest.fn((request: { targets: Array<{ queryType?: string }> }) => {
      const answer = answers[request.targets[0].queryType ?? 'status'] ?? [];
      return of<DataQueryResponse>(
        answer instanceof Error ? { data: [], errors: [{ message: answer.message }] } : { data: answer }
      );
    }),
  };
}

export function useDatasources(list: DataSourceInstanceSettings[], instances: Record<string, unknown> = {}) {
  setDataSourceSrv({
    getInstanceSettings: (ref?: unknown) => {
      const key = typeof ref === 'string' ? ref : (ref as { uid?: string } | undefined)?.uid;
      return list.find((s) => s.uid === key || s.name === key);
    },
    getList: (filter?: { type?: string }) => list.filter((s) => !filter?.type || s.type === filter.type),
    get: (ref?: unknown) => {
      const key = typeof ref === 'string' ? ref : (ref as { uid?: string } | undefined)?.uid;
      return key && instances[key]
        ? Promise.resolve(instances[key])
        : Promise.reject(new Error(`no datasource instance for ${JSON.stringify(ref)} in tests`));
    },
    reload: () => Promise.resolve(),
    registerRuntimeDataSource: () => {},
  } as unknown as DataSourceSrv);
}

/** An HTTP failure the way getBackendSrv rejects: {status, data}. */
export function httpError(status: number, code: string, message: string, extra: Record<string, unknown> = {}) {
  return { status, data: { error: { code, message }, ...extra } };
}

export interface FakeBackend {
  get: jest.Mock;
  post: jest.Mock;
  put: jest.Mock;
}

export function useBackend(): FakeBackend {
  const fake = { get: jest.fn(), post: jest.fn(), put: jest.fn(), fetch: jest.fn(), request: jest.fn() };
  setBackendSrv(fake as unknown as BackendSrv);
  return fake;
}

export function useRole(role: string) {
  config.bootData.user.orgRole = role as typeof config.bootData.user.orgRole;
}
