import React from 'react';
import { screen, waitFor, within } from '@testing-library/react';

import Fleet, { countByState } from './Fleet';
import { testIds } from '../../components/testIds';
import {
  eventsFrame,
  fakeVigilInstance,
  statusFrame,
  useDatasources,
  vigilSettings,
} from '../../components/testing/fakes';
import { statusRows } from '../../panels/restart/rows';
import { renderInRouter } from '../../components/testing/render';

const fleet = statusFrame([
  { agent: 'db-1', cluster: 'sql-ha', process: 'cdp', state: 'FAILED', stateCode: 5, reason: 'silent for 4m' },
  { agent: 'db-2', cluster: 'sql-ha', process: 'cdp', state: 'STANDBY', stateCode: 1 },
  { agent: 'files', process: 'cdp', state: 'OK', stateCode: 0 },
  { agent: 'files', process: 'index', state: 'DEGRADED', stateCode: 4, reason: 'lags 95 s' },
]);

describe('Fleet page', () => {
  it('counts each agent once under its worst state', () => {
    expect(countByState(statusRows([fleet]).rows)).toMatchObject({
      FAILED: 1,
      STANDBY: 1,
      DEGRADED: 1,
      OK: 0,
    });
  });

  it('shows counts, the fleet table with a link per agent, and recent events', async () => {
    useDatasources([vigilSettings('vigil-cdp')], {
      'vigil-cdp': fakeVigilInstance({
        status: [fleet],
        events: [
          eventsFrame([
            { time: 1_700_000_000_000, agent: 'db-1', process: 'cdp', kind: 'failed', text: 'budget 3m spent' },
          ]),
        ],
      }),
    });
    renderInRouter(<Fleet settings={{}} />);
    expect(await screen.findByTestId(testIds.fleet.count('FAILED'))).toHaveTextContent('1');
    expect(screen.getByTestId(testIds.fleet.count('OK'))).toHaveTextContent('0');
    const table = screen.getByTestId(testIds.fleet.table);
    expect(within(table).getByText('silent for 4m')).toBeInTheDocument();
    expect(within(screen.getByTestId(testIds.fleet.agentLink('db-1'))).getByRole('link')).toHaveAttribute(
      'href',
      '/a/vigil-cdp-app/agent/db-1?ds=vigil-cdp'
    );
    await waitFor(() => expect(screen.getByTestId(testIds.fleet.events)).toHaveTextContent('budget 3m spent'));
  });

  it('keeps the page when one query fails, and names the error', async () => {
    useDatasources([vigilSettings('vigil-cdp')], {
      'vigil-cdp': fakeVigilInstance({ status: [fleet], events: new Error('history store unavailable') }),
    });
    renderInRouter(<Fleet settings={{}} />);
    expect(await screen.findByText('history store unavailable')).toBeInTheDocument();
    expect(screen.getByTestId(testIds.fleet.table)).toBeInTheDocument();
  });

  it('reports a status answer it cannot read', async () => {
    useDatasources([vigilSettings('vigil-cdp')], {
      'vigil-cdp': fakeVigilInstance({ status: [eventsFrame([])] }),
    });
    renderInRouter(<Fleet settings={{}} />);
    expect(await screen.findByText(/has no state field/)).toBeInTheDocument();
  });

  it('uses the datasource chosen in the app settings', async () => {
    const other = fakeVigilInstance({
      status: [statusFrame([{ agent: 'x', process: 'p', state: 'OK', stateCode: 0 }])],
    });
    useDatasources([vigilSettings('vigil-cdp'), vigilSettings('other')], {
      'vigil-cdp': fakeVigilInstance({ status: [fleet] }),
      other,
    });
    renderInRouter(<Fleet settings={{ datasourceUid: 'other' }} />);
    expect(await screen.findByTestId(testIds.fleet.agentLink('x'))).toBeInTheDocument();
  });

  it('explains what to do without a Vigil datasource', () => {
    useDatasources([]);
    renderInRouter(<Fleet settings={{}} />);
    expect(screen.getByText('No Vigil CDP datasource yet')).toBeInTheDocument();
  });
});
