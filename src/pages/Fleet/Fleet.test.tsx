import React from 'react';
import { screen, waitFor, within } from '@testing-library/react';

import Fleet, { countByState } from './Fleet';
import { testIds } from '../../shared/testIds';
import { fakeVigilInstance, useDatasources, vigilSettings } from '../../shared/testing/fakes';
import { goldenFrames } from '../../shared/testing/goldens';
import { statusRows } from '../../shared/rows';
import { renderInRouter } from '../testing/render';

// The backend's frames (pkg/frames TestStatusFrame, TestEventsFrame): agents whose processes are in
// several states, every state once, and the events table.
const fleet = goldenFrames('pkg/frames/testdata/status-processes')[0];
const everyState = goldenFrames('pkg/frames/testdata/status-every-state')[0];
const events = goldenFrames('pkg/frames/testdata/events')[0];

describe('Fleet page', () => {
  it('counts each agent once under its worst state', () => {
    // pkg/state's one order: FAILED with UNKNOWN is FAILED, DEGRADED with UNKNOWN is UNKNOWN.
    expect(countByState(statusRows([fleet]).rows)).toEqual({
      OK: 1,
      STANDBY: 1,
      RESTARTING: 0,
      GRACE: 0,
      DEGRADED: 0,
      FAILED: 1,
      UNKNOWN: 1,
    });
  });

  it('shows counts, the fleet table with a link per agent, and recent events', async () => {
    useDatasources([vigilSettings('vigil-cdp')], {
      'vigil-cdp': fakeVigilInstance({ status: [everyState], events: [events] }),
    });
    renderInRouter(<Fleet settings={{}} />);
    expect(await screen.findByTestId(testIds.fleet.count('FAILED'))).toHaveTextContent('1');
    expect(screen.getByTestId(testIds.fleet.count('OK'))).toHaveTextContent('1');
    const table = screen.getByTestId(testIds.fleet.table);
    expect(within(table).getByText('no answer for 120 s, budget 45 s')).toBeInTheDocument();
    expect(within(screen.getByTestId(testIds.fleet.agentLink('silent'))).getByRole('link')).toHaveAttribute(
      'href',
      '/a/vigil-cdp-app/agent/silent?ds=vigil-cdp'
    );
    await waitFor(() => expect(screen.getByTestId(testIds.fleet.events)).toHaveTextContent('node-a: OK → FAILED'));
  });

  it('keeps the page when one query fails, and names the error', async () => {
    useDatasources([vigilSettings('vigil-cdp')], {
      'vigil-cdp': fakeVigilInstance({ status: [everyState], events: new Error('history store unavailable') }),
    });
    renderInRouter(<Fleet settings={{}} />);
    expect(await screen.findByText('history store unavailable')).toBeInTheDocument();
    expect(screen.getByTestId(testIds.fleet.table)).toBeInTheDocument();
  });

  it('reports a status answer it cannot read', async () => {
    useDatasources([vigilSettings('vigil-cdp')], {
      'vigil-cdp': fakeVigilInstance({ status: [events] }),
    });
    renderInRouter(<Fleet settings={{}} />);
    expect(await screen.findByText(/has no state field/)).toBeInTheDocument();
  });

  it('uses the datasource chosen in the app settings', async () => {
    const other = fakeVigilInstance({ status: [fleet] });
    useDatasources([vigilSettings('vigil-cdp'), vigilSettings('other')], {
      'vigil-cdp': fakeVigilInstance({ status: [everyState] }),
      other,
    });
    renderInRouter(<Fleet settings={{ datasourceUid: 'other' }} />);
    expect(await screen.findByTestId(testIds.fleet.agentLink('web'))).toBeInTheDocument();
  });

  it('explains what to do without a Vigil datasource', () => {
    useDatasources([]);
    renderInRouter(<Fleet settings={{}} />);
    expect(screen.getByText('No Vigil CDP datasource yet')).toBeInTheDocument();
  });
});
