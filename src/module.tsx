import React, { Suspense, lazy } from 'react';
import { AppPlugin, type AppRootProps } from '@grafana/data';
import { LoadingPlaceholder } from '@grafana/ui';

const LazyApp = lazy(() => import('./components/App/App'));

function App(props: AppRootProps) {
  return (
    <Suspense fallback={<LoadingPlaceholder text="Loading Vigil" />}>
      <LazyApp {...props} />
    </Suspense>
  );
}

export const plugin = new AppPlugin<{}>().setRootPage(App);
