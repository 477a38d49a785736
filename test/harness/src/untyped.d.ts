declare module 'lodash';
declare module 'react-router-dom';
declare module 'grafana-runtime-panel-renderer' {
  import type { PanelRendererType } from '@grafana/runtime';
  export function setPanelRenderer(renderer: PanelRendererType): void;
}
