import React, { Suspense, lazy } from 'react';
import { AppPlugin, type AppRootProps } from '@grafana/data';
import { LoadingPlaceholder } from '@grafana/ui';

import type { AppSettings } from './pages/appSettings';

const LazyApp = lazy(() => import('./pages/App/App'));

function App(props: AppRootProps<AppSettings>) {
  return (
    <Suspense fallback={<LoadingPlaceholder text="Loading Vigil" />}>
      <LazyApp {...props} />
    </Suspense>
  );
}

export const plugin = new AppPlugin<AppSettings>().setRootPage(App);
