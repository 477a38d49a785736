import React from 'react';
import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';

import Agent, { budgetLines, diagnosisSteps } from './Agent';
import { testIds } from '../../shared/testIds';
import {
  fakeVigilInstance,
  httpError,
  useBackend,
  useDatasources,
  useRole,
  vigilSettings,
} from '../../shared/testing/fakes';
import { goldenAnswer, goldenFrames } from '../../shared/testing/goldens';
import { renderInRouter } from '../testing/render';

// The backend's real answers: the status query and GET agents/standalone after alice restarted its
// process "cdp" (pkg/plugin TestQueryGolden, TestResourceAnswersGolden).
const status = goldenFrames('pkg/plugin/testdata/query-status')[0];
const detail = goldenAnswer('pkg/plugin/testdata/resource-agent-detail');

describe('Agent page', () => {
  beforeEach(() => {
    useRole('Editor');
    useDatasources([vigilSettings('vigil-cdp')], { 'vigil-cdp': fakeVigilInstance({ status: [status] }) });
  });

  it('adds the budget up from its parts', () => {
    expect(budgetLines(detail.budget as never).map((l) => [l.part, l.seconds, l.source])).toEqual([
      ['Response time (RTT p99 or configured)', 1, ''],
      ['Processing', 1, 'configured'],
      ['Allowance: restart', 180, 'configured'],
      ['Allowance: network interruption', 30, 'configured'],
      ['Allowance: app error recovery', 60, 'configured'],
      ['Total (allowances combined by max)', 182, 'configured'],
    ]);
  });

  it('shows status, processes with restart, budget, RTT, lag and events', async () => {
    const backend = useBackend();
    backend.get.mockResolvedValue(detail);
    backend.post.mockResolvedValue(goldenAnswer('pkg/plugin/testdata/resource-restart'));
    renderInRouter(<Agent agent="standalone" settings={{}} />);
    const budget = await screen.findByTestId(testIds.agent.budget);
    await waitFor(() => expect(budget).toHaveTextContent('Allowance: restart'));
    expect(budget).toHaveTextContent('configured');
    expect(screen.getByText('RTT 3 ms')).toBeInTheDocument();
    // The detail has no lag yet; the status query's row has one.
    expect(screen.getByText('protection lag 5 s')).toBeInTheDocument();
    expect(screen.getByTestId(testIds.agent.events)).toHaveTextContent('standalone/cdp: restart ok (by alice)');
    const processes = screen.getByTestId(testIds.agent.processes);
    expect(processes).toHaveTextContent('restarted by alice (generation 5); awaiting confirmation');
    // The last action column shows what the backend's agent view sends.
    expect(processes).toHaveTextContent(/Last action/);
    expect(processes).toHaveTextContent(/restart ok by alice, /);
    await userEvent.click(within(processes).getByTestId(testIds.restart.button('standalone', 'cdp')));
    expect(screen.getByRole('dialog')).toHaveTextContent('current generation 5');
    await userEvent.click(screen.getByRole('button', { name: /^Restart$/ }));
    expect(await screen.findByText('Restarted: generation 5, pid 4343')).toBeInTheDocument();
  });

  it('shows where the path to a FAILED agent breaks, a step a line', async () => {
    const diagnosis =
      'dns ok (10.9.2.2); tcp failed (connect: network is unreachable); http not tried; ' +
      'ping failed (no reply (network unreachable from 10.9.1.2)); path failed (ends at hop 1: 1: 10.9.1.2 100µs (network unreachable))';
    expect(diagnosisSteps(diagnosis)).toEqual([
      'dns ok (10.9.2.2)',
      'tcp failed (connect: network is unreachable)',
      'http not tried',
      'ping failed (no reply (network unreachable from 10.9.1.2))',
      'path failed (ends at hop 1: 1: 10.9.1.2 100µs (network unreachable))',
    ]);
    const backend = useBackend();
    backend.get.mockResolvedValue({ ...detail, state: 'FAILED', stateCode: 5, diagnosis });
    renderInRouter(<Agent agent="standalone" settings={{}} />);
    const shown = await screen.findByTestId(testIds.agent.diagnosis);
    expect(
      within(shown)
        .getAllByRole('listitem')
        .map((li) => li.textContent)
    ).toEqual(diagnosisSteps(diagnosis));
  });

  it('shows no diagnosis for an agent that answers', async () => {
    const backend = useBackend();
    backend.get.mockResolvedValue(detail);
    renderInRouter(<Agent agent="standalone" settings={{}} />);
    await screen.findByTestId(testIds.agent.budget);
    expect(screen.queryByTestId(testIds.agent.diagnosis)).not.toBeInTheDocument();
  });

  it('falls back to the status query when the agent details cannot be read', async () => {
    const backend = useBackend();
    backend.get.mockRejectedValue(httpError(404, 'not_found', 'no resource "agents/node-a"'));
    renderInRouter(<Agent agent="node-a" settings={{}} />);
    expect(await screen.findByText(/Not found|no resource/)).toBeInTheDocument();
    await waitFor(() =>
      expect(screen.getByTestId(testIds.agent.processes)).toHaveTextContent('no answer for 24 s, budget 62 s')
    );
    expect(screen.getByTestId(testIds.agent.processes)).not.toHaveTextContent('standalone');
  });

  it('shows a Viewer no active Restart button', async () => {
    useRole('Viewer');
    useBackend().get.mockResolvedValue(detail);
    renderInRouter(<Agent agent="standalone" settings={{}} />);
    await waitFor(() => expect(screen.getByTestId(testIds.restart.button('standalone', 'cdp'))).toBeDisabled());
  });

  it('says when polling now fails', async () => {
    const backend = useBackend();
    backend.get.mockResolvedValue(detail);
    backend.post.mockRejectedValue(httpError(502, 'agent_unreachable', 'connection refused'));
    renderInRouter(<Agent agent="standalone" settings={{}} />);
    await userEvent.click(screen.getByRole('button', { name: /Poll now/ }));
    expect(await screen.findByText('Poll failed: connection refused')).toBeInTheDocument();
  });
});
