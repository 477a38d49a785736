import { PanelPlugin, type SelectableValue } from '@grafana/data';

import { RestartPanel } from './components/RestartPanel/RestartPanel';
import { DEFAULT_COLUMNS, DETAIL_COLUMNS, type DetailColumn, type RestartPanelOptions } from './types';

export const plugin = new PanelPlugin<RestartPanelOptions>(RestartPanel).setPanelOptions((builder) =>
  builder
    .addRadio({
      path: 'layout',
      name: 'Layout',
      description: 'Compact shows one line per process; full adds the details below it.',
      defaultValue: 'full',
      settings: {
        options: [
          { value: 'compact', label: 'Compact' },
          { value: 'full', label: 'Full' },
        ],
      },
    })
    .addMultiSelect({
      path: 'columns',
      name: 'Details',
      description: 'What the full layout shows for each process.',
      defaultValue: DEFAULT_COLUMNS,
      // The builder types a multi-select's options by the option's whole value (an array); each
      // option is one element of it.
      settings: {
        options: DETAIL_COLUMNS.map((c) => ({ value: c.value, label: c.label })) as unknown as Array<
          SelectableValue<DetailColumn[]>
        >,
      },
    })
    .addBooleanSwitch({
      path: 'reasonRequired',
      name: 'Reason required',
      description: 'A restart cannot be confirmed without a reason; the reason goes into the agent event.',
      defaultValue: false,
    })
);
