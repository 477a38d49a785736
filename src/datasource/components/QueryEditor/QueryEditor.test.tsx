import React, { useState } from 'react';
import { CoreApp } from '@grafana/data';
import { act, fireEvent, render, screen, waitFor, within } from '@testing-library/react';

import { QueryEditor } from './QueryEditor';
import type { DataSource } from '../../datasource';
import type { VigilQuery } from '../../types';
import { testIds } from '../testIds';

jest.mock('@grafana/runtime', () => ({
  ...jest.requireActual('@grafana/runtime'),
  getTemplateSrv: () => ({
    getVariables: () => [{ name: 'agent' }, { name: 'cluster' }],
    replace: (s: string) => s,
  }),
}));

// The comboboxes size themselves to their text; jsdom has no canvas to measure it with.
beforeAll(() => {
  HTMLCanvasElement.prototype.getContext = (() => ({
    measureText: (text: string) => ({ width: text.length * 8 }),
  })) as unknown as typeof HTMLCanvasElement.prototype.getContext;
});

// Grafana's multi-value combobox renders its options in a virtual list that needs a real layout
// (the browser test covers it); here a stand-in lists every option as a button, so the editor's
// wiring of options and values is what is tested.
jest.mock('@grafana/ui', () => {
  const actual = jest.requireActual('@grafana/ui');
  const ReactActual = jest.requireActual('react');
  return {
    ...actual,
    MultiCombobox: (props: {
      'data-testid': string;
      value: string[];
      options: Array<{ label: string; value: string }>;
      onChange: (options: Array<{ value: string }>) => void;
    }) =>
      ReactActual.createElement(
        'div',
        { 'data-testid': props['data-testid'] },
        props.options.map((o) =>
          ReactActual.createElement(
            'button',
            {
              key: o.value,
              role: 'option',
              onClick: () => props.onChange([...props.value.map((value) => ({ value })), { value: o.value }]),
            },
            o.label
          )
        )
      ),
  };
});

const answers = {
  demo: {
    agents: [
      { name: 'demo-standalone', url: 'http://127.0.0.1:7071', cluster: '' },
      { name: 'demo-node-a', url: 'http://127.0.0.1:7072', cluster: 'demo-ha' },
    ],
  },
  wrongShape: { items: ['demo-node-a'] },
};

function fakeDatasource(getResource: () => Promise<unknown>) {
  return { getResource: jest.fn(getResource) } as unknown as DataSource;
}

function Harness({
  ds,
  initial,
  onChange,
  app,
}: {
  ds: DataSource;
  initial: VigilQuery;
  onChange: jest.Mock;
  app?: CoreApp;
}) {
  const [query, setQuery] = useState(initial);
  return (
    <QueryEditor
      app={app}
      datasource={ds}
      query={query}
      onChange={(q) => {
        onChange(q);
        setQuery(q);
      }}
      onRunQuery={jest.fn()}
    />
  );
}

async function renderEditor(
  initial: VigilQuery,
  getResource = () => Promise.resolve<unknown>(answers.demo),
  app?: CoreApp
) {
  const onChange = jest.fn();
  const ds = fakeDatasource(getResource);
  render(<Harness ds={ds} initial={initial} onChange={onChange} app={app} />);
  await waitFor(() => expect(ds.getResource).toHaveBeenCalledWith('agents'));
  await act(() => Promise.resolve());
  return { onChange, last: () => onChange.mock.calls.at(-1)[0] as VigilQuery };
}

describe('QueryEditor', () => {
  it('switches the query type', async () => {
    const { last } = await renderEditor({ refId: 'A', queryType: 'status', agents: [] });
    fireEvent.click(screen.getByRole('radio', { name: 'timeline' }));
    expect(last()).toEqual({ refId: 'A', queryType: 'timeline', agents: [] });
  });

  it('offers the agents the backend answers and the dashboard variables', async () => {
    await renderEditor({ refId: 'A', queryType: 'status', agents: [] });
    // The answer lands after a few turns of the event loop; a loaded machine takes more of them.
    await waitFor(() =>
      expect(
        within(screen.getByTestId(testIds.queryEditor.agents))
          .getAllByRole('option')
          .map((o) => o.textContent)
      ).toEqual(['demo-standalone', 'demo-node-a', '$agent', '$cluster'])
    );
  });

  it('selects an agent and a template variable', async () => {
    const { last } = await renderEditor({ refId: 'A', queryType: 'status', agents: ['demo-node-a'] });
    fireEvent.click(within(screen.getByTestId(testIds.queryEditor.agents)).getByRole('option', { name: '$agent' }));
    expect(last().agents).toEqual(['demo-node-a', '$agent']);
  });

  it('flags an agent the datasource does not have', async () => {
    await renderEditor({ refId: 'A', queryType: 'status', agents: ['gone-node', '$agent'] });
    expect(await screen.findByText('agents: gone-node not configured in this datasource')).toBeInTheDocument();
  });

  it('says why the agent list is missing when the backend answers in another shape', async () => {
    await renderEditor({ refId: 'A', queryType: 'status', agents: [] }, () => Promise.resolve(answers.wrongShape));
    expect(await screen.findByTestId(testIds.queryEditor.agentsProblem)).toHaveTextContent(
      /answered GET agents in an unexpected shape \(agents: /
    );
  });

  it('says why the agent list is missing when the backend fails', async () => {
    await renderEditor({ refId: 'A', queryType: 'status', agents: [] }, () =>
      Promise.reject({ status: 500, data: { error: { code: 'invalid_settings', message: 'fix its settings' } } })
    );
    expect(await screen.findByTestId(testIds.queryEditor.agentsProblem)).toHaveTextContent(
      'GET agents failed: HTTP 500: fix its settings'
    );
  });

  it('filters by state names', async () => {
    const { last } = await renderEditor({ refId: 'A', queryType: 'status', agents: [] });
    fireEvent.click(within(screen.getByTestId(testIds.queryEditor.states)).getByRole('option', { name: 'FAILED (5)' }));
    expect(last().states).toEqual(['FAILED']);
  });

  it('selects metrics for a metrics query, and offers none for other types', async () => {
    const { last } = await renderEditor({ refId: 'A', queryType: 'metrics', agents: [] });
    const metrics = screen.getByTestId(testIds.queryEditor.metrics);
    fireEvent.click(within(metrics).getByRole('option', { name: 'stateCode' }));
    fireEvent.click(
      within(screen.getByTestId(testIds.queryEditor.metrics)).getByRole('option', { name: 'engineStalenessSeconds' })
    );
    expect(last().metrics).toEqual(['stateCode', 'engineStalenessSeconds']);
    fireEvent.click(screen.getByRole('radio', { name: 'status' }));
    expect(screen.queryByTestId(testIds.queryEditor.metrics)).not.toBeInTheDocument();
  });

  describe("in Grafana's alert rule editor", () => {
    const inAlerting = (initial: VigilQuery, app = CoreApp.UnifiedAlerting) =>
      renderEditor(initial, () => Promise.resolve<unknown>(answers.demo), app);

    it('starts a new query as the agent state metric, and stores it', async () => {
      const { onChange } = await inAlerting({ refId: 'A' });
      expect(onChange).toHaveBeenCalledTimes(1);
      expect(onChange).toHaveBeenCalledWith({ refId: 'A', queryType: 'metrics', metrics: ['stateCode'], agents: [] });
      expect(screen.getByRole('radio', { name: 'metrics' })).toBeChecked();
      expect(
        within(screen.getByTestId(testIds.queryEditor.metrics)).getByRole('option', { name: 'stateCode' })
      ).toBeInTheDocument();
    });

    it('does so in Grafana Cloud alerting too, keeping filters already set', async () => {
      const { onChange } = await inAlerting({ refId: 'B', agents: ['demo-node-a'] }, CoreApp.CloudAlerting);
      expect(onChange).toHaveBeenCalledWith({
        refId: 'B',
        queryType: 'metrics',
        metrics: ['stateCode'],
        agents: ['demo-node-a'],
      });
    });

    it('stores the defaults Grafana shows over an empty model, so that the rule runs what is shown', async () => {
      const { onChange } = await inAlerting({ refId: 'A', queryType: 'metrics', metrics: ['stateCode'], agents: [] });
      expect(onChange).toHaveBeenCalledWith({ refId: 'A', queryType: 'metrics', metrics: ['stateCode'], agents: [] });
    });

    it('leaves a saved query as it is', async () => {
      const { onChange } = await inAlerting({ refId: 'A', queryType: 'status', agents: ['demo-node-a'] });
      expect(onChange).not.toHaveBeenCalled();
      expect(screen.getByRole('radio', { name: 'status' })).toBeChecked();
    });

    it('does not change a new query on a dashboard', async () => {
      const { onChange } = await renderEditor(
        { refId: 'A' },
        () => Promise.resolve<unknown>(answers.demo),
        CoreApp.PanelEditor
      );
      expect(onChange).not.toHaveBeenCalled();
      expect(screen.getByRole('radio', { name: 'status' })).toBeChecked();
    });
  });
});
