import React from 'react';
import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';

import Agent, { budgetLines } from './Agent';
import { testIds } from '../../components/testIds';
import {
  fakeVigilInstance,
  httpError,
  statusFrame,
  useBackend,
  useDatasources,
  useRole,
  vigilSettings,
} from '../../components/testing/fakes';
import { renderInRouter } from '../../components/testing/render';

const status = statusFrame([
  {
    agent: 'db-1',
    cluster: 'sql-ha',
    process: 'cdp',
    state: 'GRACE',
    stateCode: 3,
    reason: 'awaiting failover: 12 s of 45 s',
  },
  { agent: 'db-2', process: 'cdp', state: 'OK', stateCode: 0 },
]);

const detail = {
  name: 'db-1',
  cluster: 'sql-ha',
  role: 'active',
  state: 'GRACE',
  stateCode: 3,
  reason: 'awaiting failover: 12 s of 45 s',
  rttSeconds: 0.02,
  lagSeconds: 4,
  budget: {
    totalSeconds: 62,
    responseTimeSeconds: 1,
    processingSeconds: 1,
    combine: 'max',
    mode: 'configured',
    allowances: [
      { name: 'failover', seconds: 60, source: 'measured' },
      { name: 'networkInterruption', seconds: 30, source: 'configured' },
    ],
  },
  processes: [{ name: 'cdp', state: 'GRACE', stateCode: 3, generation: 4, restarts: 2, lagSeconds: 4 }],
  events: [
    { time: '2026-11-26T04:00:00Z', kind: 'restart', process: 'cdp', text: 'restarted by alice', user: 'alice' },
  ],
};

describe('Agent page', () => {
  beforeEach(() => {
    useRole('Editor');
    useDatasources([vigilSettings('vigil-cdp')], { 'vigil-cdp': fakeVigilInstance({ status: [status] }) });
  });

  it('adds the budget up from its parts', () => {
    expect(budgetLines(detail.budget as never).map((l) => [l.part, l.seconds, l.source])).toEqual([
      ['Response time (RTT p99 or configured)', 1, ''],
      ['Processing', 1, 'configured'],
      ['Allowance: failover', 60, 'measured'],
      ['Allowance: network interruption', 30, 'configured'],
      ['Total (allowances combined by max)', 62, 'configured'],
    ]);
  });

  it('shows status, processes with restart, budget, RTT, lag and events', async () => {
    const backend = useBackend();
    backend.get.mockResolvedValue(detail);
    backend.post.mockResolvedValue({ generation: 5, pid: 77 });
    renderInRouter(<Agent agent="db-1" settings={{}} />);
    const budget = await screen.findByTestId(testIds.agent.budget);
    await waitFor(() => expect(budget).toHaveTextContent('Allowance: failover'));
    expect(budget).toHaveTextContent('measured');
    expect(screen.getByText('RTT 20 ms')).toBeInTheDocument();
    expect(screen.getByText('protection lag 4 s')).toBeInTheDocument();
    expect(screen.getByTestId(testIds.agent.events)).toHaveTextContent('restarted by alice');
    const processes = screen.getByTestId(testIds.agent.processes);
    expect(processes).toHaveTextContent('awaiting failover');
    await userEvent.click(within(processes).getByTestId(testIds.restart.button('db-1', 'cdp')));
    expect(screen.getByRole('dialog')).toHaveTextContent('current generation 4');
    await userEvent.click(screen.getByRole('button', { name: /^Restart$/ }));
    expect(await screen.findByText('Restarted: generation 5, pid 77')).toBeInTheDocument();
  });

  it('falls back to the status query when the agent details cannot be read', async () => {
    const backend = useBackend();
    backend.get.mockRejectedValue(httpError(404, 'not_found', 'no resource "agents/db-1"'));
    renderInRouter(<Agent agent="db-1" settings={{}} />);
    expect(await screen.findByText(/Not found|no resource/)).toBeInTheDocument();
    await waitFor(() => expect(screen.getByTestId(testIds.agent.processes)).toHaveTextContent('awaiting failover'));
    expect(screen.getByTestId(testIds.agent.processes)).not.toHaveTextContent('db-2');
  });

  it('shows a Viewer no active Restart button', async () => {
    useRole('Viewer');
    useBackend().get.mockResolvedValue(detail);
    renderInRouter(<Agent agent="db-1" settings={{}} />);
    await waitFor(() => expect(screen.getByTestId(testIds.restart.button('db-1', 'cdp'))).toBeDisabled());
  });

  it('says when polling now fails', async () => {
    const backend = useBackend();
    backend.get.mockResolvedValue(detail);
    backend.post.mockRejectedValue(httpError(502, 'agent_unreachable', 'connection refused'));
    renderInRouter(<Agent agent="db-1" settings={{}} />);
    await userEvent.click(screen.getByRole('button', { name: /Poll now/ }));
    expect(await screen.findByText('Poll failed: connection refused')).toBeInTheDocument();
  });
});
