import { PanelPlugin } from '@grafana/data';

import { RestartPanel } from './components/RestartPanel/RestartPanel';
import type { RestartPanelOptions } from './types';

export const plugin = new PanelPlugin<RestartPanelOptions>(RestartPanel).setPanelOptions((builder) =>
  builder.addRadio({
    path: 'layout',
    name: 'Layout',
    defaultValue: 'full',
    settings: {
      options: [
        { value: 'compact', label: 'Compact' },
        { value: 'full', label: 'Full' },
      ],
    },
  })
);
