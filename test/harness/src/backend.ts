import { lastValueFrom, Observable } from 'rxjs';
import type { BackendSrv, BackendSrvRequest, FetchResponse } from '@grafana/runtime';

// Grafana's backend service, reduced to what plugins call: a fetch that returns an Observable of
// {data, status, ...} and rejects with {status, data} on HTTP errors. The user's role travels in a
// header the test host reads, as Grafana would take it from the session.
export function createBackendSrv(role: string, login: string): BackendSrv {
  const fetchObservable = <T>(options: BackendSrvRequest): Observable<FetchResponse<T>> =>
    new Observable<FetchResponse<T>>((subscriber) => {
      const controller = new AbortController();
      const params = options.params
        ? `${options.url.includes('?') ? '&' : '?'}${new URLSearchParams(options.params)}`
        : '';
      const url = options.url + params;
      const headers: Record<string, string> = { ...options.headers, 'X-Grafana-Role': role, 'X-Grafana-Login': login };
      let body: BodyInit | undefined;
      if (options.data !== undefined) {
        headers['Content-Type'] = 'application/json';
        body = typeof options.data === 'string' ? options.data : JSON.stringify(options.data);
      }
      window
        .fetch(url, { method: options.method ?? 'GET', headers, body, signal: controller.signal })
        .then(async (res) => {
          const text = await res.text();
          let data: unknown = text;
          try {
            data = text ? JSON.parse(text) : undefined;
          } catch {
            // Not JSON: hand the text over as Grafana does.
          }
          const response = {
            data: data as T,
            status: res.status,
            statusText: res.statusText,
            ok: res.ok,
            headers: res.headers,
            redirected: res.redirected,
            type: res.type,
            url: res.url,
            config: options,
          };
          if (!res.ok) {
            subscriber.error({ ...response, message: (data as { message?: string })?.message ?? res.statusText });
            return;
          }
          subscriber.next(response);
          subscriber.complete();
        })
        .catch((err) => subscriber.error({ status: 0, data: { message: String(err) }, config: options }));
      return () => controller.abort();
    });

  const request = async <T>(options: BackendSrvRequest) => (await lastValueFrom(fetchObservable<T>(options))).data;

  return {
    fetch: fetchObservable,
    request,
    datasourceRequest: (options: BackendSrvRequest) => lastValueFrom(fetchObservable(options)),
    get: (url: string, params?: Record<string, string>) => request({ url, params, method: 'GET' }),
    delete: (url: string, data?: unknown) => request({ url, data, method: 'DELETE' }),
    post: (url: string, data?: unknown) => request({ url, data, method: 'POST' }),
    patch: (url: string, data?: unknown) => request({ url, data, method: 'PATCH' }),
    put: (url: string, data?: unknown) => request({ url, data, method: 'PUT' }),
    resolveCancelerIfExists: () => {},
    chunked: () => {
      throw new Error('chunked requests are not used by Vigil');
    },
  } as unknown as BackendSrv;
}
