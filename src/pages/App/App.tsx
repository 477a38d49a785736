import React, { lazy, Suspense, useSyncExternalStore } from 'react';
import type { AppRootProps } from '@grafana/data';
import { locationService } from '@grafana/runtime';
import { LoadingPlaceholder } from '@grafana/ui';

import { PLUGIN_BASE_URL, ROUTES } from '../../constants';
import type { AppSettings } from '../appSettings';
import { testIds } from '../../shared/testIds';

const Fleet = lazy(() => import('../Fleet/Fleet'));
const Agent = lazy(() => import('../Agent/Agent'));
const Configuration = lazy(() => import('../Configuration/Configuration'));

export type Route = { page: ROUTES.Fleet } | { page: ROUTES.Agent; agent: string } | { page: ROUTES.Configuration };

/**
 * The page for a path under the app's base URL; anything unknown shows the fleet. Routing reads
 * Grafana's own location service: it is shared with every plugin at run time, where a bundled
 * router would not see Grafana's router context.
 */
export function routeOf(pathname: string, basename = PLUGIN_BASE_URL): Route {
  const rest = pathname.startsWith(basename) ? pathname.slice(basename.length) : '';
  const [first, second] = rest.split('/').filter(Boolean).map(decodeURIComponent);
  if (first === ROUTES.Agent && second) {
    return { page: ROUTES.Agent, agent: second };
  }
  if (first === ROUTES.Configuration) {
    return { page: ROUTES.Configuration };
  }
  return { page: ROUTES.Fleet };
}

const subscribe = (onChange: () => void) => locationService.getHistory().listen(onChange);
const pathname = () => locationService.getLocation().pathname;

export default function App({ basename, meta }: AppRootProps<AppSettings>) {
  const route = routeOf(useSyncExternalStore(subscribe, pathname), basename || PLUGIN_BASE_URL);
  const settings = meta?.jsonData ?? {};
  return (
    <div data-testid={testIds.app.root}>
      <Suspense fallback={<LoadingPlaceholder text="Loading Vigil" />}>
        {route.page === ROUTES.Agent && <Agent agent={route.agent} settings={settings} />}
        {route.page === ROUTES.Configuration && <Configuration settings={settings} />}
        {route.page === ROUTES.Fleet && <Fleet settings={settings} />}
      </Suspense>
    </div>
  );
}
