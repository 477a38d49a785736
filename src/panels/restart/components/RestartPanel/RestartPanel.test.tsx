import React from 'react';
import { render, screen } from '@testing-library/react';
import { FieldType, LoadingState, createDataFrame, getDefaultTimeRange, type PanelProps } from '@grafana/data';

import { RestartPanel } from './RestartPanel';
import type { RestartPanelOptions } from '../../types';
import { testIds } from '../../testIds';

function statusFrame(rows: Array<[string, string, string, string, number, string]>) {
  return createDataFrame({
    name: 'status',
    fields: [
      { name: 'agent', type: FieldType.string, values: rows.map((r) => r[0]) },
      { name: 'cluster', type: FieldType.string, values: rows.map((r) => r[1]) },
      { name: 'process', type: FieldType.string, values: rows.map((r) => r[2]) },
      { name: 'state', type: FieldType.string, values: rows.map((r) => r[3]) },
      { name: 'stateCode', type: FieldType.number, values: rows.map((r) => r[4]) },
      { name: 'reason', type: FieldType.string, values: rows.map((r) => r[5]) },
    ],
  });
}

function props(series: Array<ReturnType<typeof createDataFrame>>, layout: RestartPanelOptions['layout'] = 'full') {
  const timeRange = getDefaultTimeRange();
  return {
    id: 1,
    data: { series, state: LoadingState.Done, timeRange },
    timeRange,
    timeZone: 'utc',
    options: { layout },
    fieldConfig: { defaults: {}, overrides: [] },
    transparent: false,
    width: 600,
    height: 300,
    title: 'CDP',
    renderCounter: 0,
    eventBus: {} as PanelProps['eventBus'],
    onOptionsChange: jest.fn(),
    onFieldConfigChange: jest.fn(),
    onChangeTimeRange: jest.fn(),
    replaceVariables: (s: string) => s,
  } as unknown as PanelProps<RestartPanelOptions>;
}

describe('RestartPanel', () => {
  it('lists every agent and process with its state and reason', () => {
    render(
      <RestartPanel
        {...props([
          statusFrame([
            ['db-1', 'sql-ha', 'cdp', 'FAILED', 5, 'silent for 4m10s, budget 3m'],
            ['files', '', 'cdp', 'OK', 0, ''],
          ]),
        ])}
      />
    );
    const failed = screen.getByTestId(testIds.panel.row('db-1', 'cdp'));
    expect(failed).toHaveTextContent('FAILED');
    expect(failed).toHaveTextContent('silent for 4m10s, budget 3m');
    expect(failed).toHaveTextContent('cluster sql-ha');
    expect(screen.getByTestId(testIds.panel.row('files', 'cdp'))).toHaveTextContent('OK');
  });

  it('hides the cluster in the compact layout', () => {
    render(<RestartPanel {...props([statusFrame([['db-1', 'sql-ha', 'cdp', 'OK', 0, '']])], 'compact')} />);
    expect(screen.getByTestId(testIds.panel.row('db-1', 'cdp'))).not.toHaveTextContent('sql-ha');
  });

  it('says so when there are no agents', () => {
    render(<RestartPanel {...props([statusFrame([])])} />);
    expect(screen.getByTestId(testIds.panel.empty)).toHaveTextContent('No agents');
  });

  it('names what is missing when the query is not a status table', () => {
    const other = createDataFrame({ name: 'cpu', fields: [{ name: 'value', type: FieldType.number, values: [1] }] });
    render(<RestartPanel {...props([other])} />);
    expect(screen.getByText(/frame "cpu" has no agent and state field/)).toBeInTheDocument();
  });
});
