import React from 'react';
import { render, screen } from '@testing-library/react';
import { FieldType, LoadingState, createDataFrame, getDefaultTimeRange, type PanelProps } from '@grafana/data';

import userEvent from '@testing-library/user-event';

import { RestartPanel } from './RestartPanel';
import type { RestartPanelOptions } from '../../types';
import { testIds } from '../../testIds';
import { testIds as actionIds } from '../../../../shared/testIds';
import { useBackend, useDatasources, useRole, vigilSettings } from '../../../../shared/testing/fakes';
import { agentDetailAnswer, restartAnswer } from '../../../../shared/testing/goldens';

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

function props(
  series: Array<ReturnType<typeof createDataFrame>>,
  layout: RestartPanelOptions['layout'] = 'full',
  extra: { options?: Partial<RestartPanelOptions>; targetUid?: string } = {}
) {
  const timeRange = getDefaultTimeRange();
  const request = extra.targetUid
    ? { targets: [{ refId: 'A', datasource: { uid: extra.targetUid, type: 'vigil-cdp-datasource' } }] }
    : undefined;
  return {
    id: 1,
    data: { series, state: LoadingState.Done, timeRange, request },
    timeRange,
    timeZone: 'utc',
    options: { layout, ...extra.options },
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

function fullFrame() {
  return createDataFrame({
    name: 'status',
    fields: [
      { name: 'agent', type: FieldType.string, values: ['db-1'] },
      { name: 'cluster', type: FieldType.string, values: ['sql-ha'] },
      { name: 'role', type: FieldType.string, values: ['active'] },
      { name: 'process', type: FieldType.string, values: ['cdp'] },
      { name: 'state', type: FieldType.string, values: ['DEGRADED'] },
      { name: 'stateCode', type: FieldType.number, values: [4] },
      { name: 'reason', type: FieldType.string, values: ['protection lags 95 s behind, objective 60 s'] },
      { name: 'rtt', type: FieldType.number, values: [0.012] },
      { name: 'budget', type: FieldType.number, values: [45] },
      { name: 'protectionLag', type: FieldType.number, values: [95] },
      { name: 'lastRestart', type: FieldType.time, values: [Date.now() - 3 * 3600 * 1000] },
      { name: 'generation', type: FieldType.number, values: [7] },
    ],
  });
}

describe('RestartPanel', () => {
  beforeEach(() => {
    useRole('Editor');
    useDatasources([vigilSettings('vigil-cdp'), vigilSettings('other', { restartRole: 'Admin' })]);
  });

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

  it('shows the details chosen in the options', () => {
    render(
      <RestartPanel
        {...props([fullFrame()], 'full', { options: { columns: ['cluster', 'lag', 'rtt', 'budget', 'lastRestart'] } })}
      />
    );
    const row = screen.getByTestId(testIds.panel.row('db-1', 'cdp'));
    expect(row).toHaveTextContent('cluster sql-ha (active)');
    expect(row).toHaveTextContent('protection lag 1.58 mins');
    expect(row).toHaveTextContent('RTT 12 ms');
    expect(row).toHaveTextContent('budget 45 s');
    expect(row).toHaveTextContent('last restart 3 hours ago');
    expect(row).not.toHaveTextContent('protection lags 95 s behind');
  });

  it('restarts through the datasource of its query, with the generation of the row', async () => {
    const backend = useBackend();
    backend.post.mockResolvedValue(restartAnswer({ generation: 8, pid: 99 }));
    render(<RestartPanel {...props([fullFrame()], 'full', { targetUid: 'vigil-cdp' })} />);
    await userEvent.click(screen.getByTestId(actionIds.restart.button('db-1', 'cdp')));
    expect(screen.getByRole('dialog')).toHaveTextContent('current generation 7');
    await userEvent.click(screen.getByRole('button', { name: /^Restart$/ }));
    expect(await screen.findByText('Restarted: generation 8, pid 99')).toBeInTheDocument();
    expect(backend.post.mock.calls[0][0]).toBe(
      '/api/datasources/uid/vigil-cdp/resources/agents/db-1/processes/cdp/restart'
    );
  });

  it('shows the restarted process as the datasource reports it, and restarts it again at its new generation', async () => {
    const backend = useBackend();
    backend.post.mockImplementation(async (url: string) =>
      url.endsWith('/restart') ? restartAnswer({ generation: 8, pid: 99 }) : { agents: [] }
    );
    backend.get.mockResolvedValue(
      agentDetailAnswer({
        name: 'db-1',
        processes: [
          { name: 'cdp', generation: 8, state: 'OK', stateCode: 0, reason: 'running (pid 99, generation 8)' },
        ],
      })
    );
    const view = render(
      <RestartPanel {...props([fullFrame()], 'full', { targetUid: 'vigil-cdp', options: { columns: ['reason'] } })} />
    );
    const row = () => screen.getByTestId(testIds.panel.row('db-1', 'cdp'));
    await userEvent.click(screen.getByTestId(actionIds.restart.button('db-1', 'cdp')));
    await userEvent.click(screen.getByRole('button', { name: /^Restart$/ }));
    expect(await screen.findByText('running (pid 99, generation 8)')).toBeInTheDocument();
    expect(row()).toHaveTextContent('OK');
    expect(row()).not.toHaveTextContent('DEGRADED');
    // The engine was asked to poll the agent before its state was read.
    expect(backend.post.mock.calls.map((c) => c[0])).toEqual([
      '/api/datasources/uid/vigil-cdp/resources/agents/db-1/processes/cdp/restart',
      '/api/datasources/uid/vigil-cdp/resources/poll',
    ]);
    expect(backend.post.mock.calls[1][1]).toEqual({ agent: 'db-1' });
    expect(backend.get.mock.calls[0][0]).toBe('/api/datasources/uid/vigil-cdp/resources/agents/db-1');

    await userEvent.click(screen.getByTestId(actionIds.restart.button('db-1', 'cdp')));
    expect(screen.getByRole('dialog')).toHaveTextContent('current generation 8');
    await userEvent.click(screen.getByRole('button', { name: 'Cancel' }));

    // Newer data from the query wins over what the panel learned.
    const newer = fullFrame();
    newer.fields.find((f) => f.name === 'generation')!.values[0] = 9;
    newer.fields.find((f) => f.name === 'state')!.values[0] = 'FAILED';
    newer.fields.find((f) => f.name === 'stateCode')!.values[0] = 5;
    view.rerender(
      <RestartPanel {...props([newer], 'full', { targetUid: 'vigil-cdp', options: { columns: ['reason'] } })} />
    );
    expect(row()).toHaveTextContent('FAILED');
    await userEvent.click(screen.getByTestId(actionIds.restart.button('db-1', 'cdp')));
    expect(screen.getByRole('dialog')).toHaveTextContent('current generation 9');
  });

  it('keeps the new generation when the state cannot be read after a restart', async () => {
    const backend = useBackend();
    backend.post.mockImplementation(async (url: string) => {
      if (url.endsWith('/restart')) {
        return restartAnswer({ generation: 8, pid: 99 });
      }
      throw { status: 504, data: { error: { code: 'poll_timeout', message: 'the poll did not finish' } } };
    });
    render(<RestartPanel {...props([fullFrame()], 'full', { targetUid: 'vigil-cdp' })} />);
    await userEvent.click(screen.getByTestId(actionIds.restart.button('db-1', 'cdp')));
    await userEvent.click(screen.getByRole('button', { name: /^Restart$/ }));
    expect(await screen.findByText('Restarted: generation 8, pid 99')).toBeInTheDocument();
    expect(screen.getByTestId(testIds.panel.row('db-1', 'cdp'))).toHaveTextContent('DEGRADED');
    await userEvent.click(screen.getByTestId(actionIds.restart.button('db-1', 'cdp')));
    expect(screen.getByRole('dialog')).toHaveTextContent('current generation 8');
  });

  it('asks for a reason when the panel requires one', async () => {
    render(
      <RestartPanel {...props([fullFrame()], 'full', { targetUid: 'vigil-cdp', options: { reasonRequired: true } })} />
    );
    await userEvent.click(screen.getByTestId(actionIds.restart.button('db-1', 'cdp')));
    expect(screen.getByRole('button', { name: /^Restart$/ })).toBeDisabled();
  });

  it("disables Restart for a role below the datasource's minimum", () => {
    useRole('Editor');
    render(<RestartPanel {...props([fullFrame()], 'full', { targetUid: 'other' })} />);
    expect(screen.getByTestId(actionIds.restart.button('db-1', 'cdp'))).toBeDisabled();
  });

  it('disables Restart for a Viewer under the default minimum', () => {
    useRole('Viewer');
    render(<RestartPanel {...props([fullFrame()], 'full', { targetUid: 'vigil-cdp' })} />);
    expect(screen.getByTestId(actionIds.restart.button('db-1', 'cdp'))).toBeDisabled();
  });

  it('falls back to the only Vigil datasource when the query names none', () => {
    useDatasources([vigilSettings('vigil-cdp')]);
    render(<RestartPanel {...props([fullFrame()])} />);
    expect(screen.getByTestId(actionIds.restart.button('db-1', 'cdp'))).toBeEnabled();
  });

  it('does not guess between several Vigil datasources', () => {
    render(<RestartPanel {...props([fullFrame()])} />);
    expect(screen.getByTestId(actionIds.restart.button('db-1', 'cdp'))).toBeDisabled();
  });
});
