import React from 'react';
import { render, screen, waitFor } from '@testing-library/react';
import userEvent from '@testing-library/user-event';

import { RestartAction } from './RestartAction';
import { restartPermission } from '../roles';
import { httpError, useBackend, type FakeBackend } from '../testing/fakes';
import { agentDetailAnswer, restartAnswer } from '../testing/goldens';
import { testIds } from '../testIds';

const allowed = restartPermission('Editor', 'Editor');
const URL = '/api/datasources/uid/vigil-cdp/resources/agents/db-1/processes/cdp/restart';

function setup(props: Partial<React.ComponentProps<typeof RestartAction>> = {}) {
  render(
    <RestartAction
      datasourceUid="vigil-cdp"
      agent="db-1"
      process="cdp"
      generation={7}
      permission={allowed}
      reasonRequired={false}
      {...props}
    />
  );
  return {
    button: () => screen.getByTestId(testIds.restart.button('db-1', 'cdp')),
    result: () => screen.getByTestId(testIds.restart.result('db-1', 'cdp')),
  };
}

async function restart(reason?: string) {
  await userEvent.click(screen.getByTestId(testIds.restart.button('db-1', 'cdp')));
  if (reason) {
    await userEvent.type(screen.getByTestId(testIds.restart.reason), reason);
  }
  await userEvent.click(screen.getByRole('button', { name: /^Restart$/ }));
}

describe('RestartAction', () => {
  let backend: FakeBackend;
  beforeEach(() => {
    backend = useBackend();
  });

  it('names agent, process and generation in the confirmation, then shows the new generation', async () => {
    backend.post.mockResolvedValue({ generation: 8, pid: 4242, startedAt: '2026-11-26T05:00:00Z' });
    const { result } = setup();
    await userEvent.click(screen.getByTestId(testIds.restart.button('db-1', 'cdp')));
    const dialog = screen.getByRole('dialog');
    expect(dialog).toHaveTextContent('Restart cdp on db-1?');
    expect(dialog).toHaveTextContent('Agent db-1, process cdp, current generation 7.');
    await userEvent.type(screen.getByTestId(testIds.restart.reason), 'stuck after failover');
    await userEvent.click(screen.getByRole('button', { name: /^Restart$/ }));
    await waitFor(() => expect(result()).toHaveTextContent('Restarted: generation 8, pid 4242'));
    expect(backend.post).toHaveBeenCalledWith(
      URL,
      { reason: 'stuck after failover', ifGeneration: 7 },
      expect.objectContaining({ showErrorAlert: false })
    );
  });

  it('shows progress while the restart is under way', async () => {
    let finish: (v: unknown) => void = () => {};
    backend.post.mockReturnValue(new Promise((resolve) => (finish = resolve)));
    const { button, result } = setup();
    await restart();
    expect(button()).toBeDisabled();
    expect(button()).toHaveTextContent('Restarting…');
    expect(result()).toHaveTextContent('Restarting cdp on db-1…');
    finish(restartAnswer({ generation: 8, pid: null }));
    await waitFor(() => expect(result()).toHaveTextContent('Restarted: generation 8'));
    expect(button()).toBeEnabled();
  });

  it('cannot be confirmed without a reason when one is required', async () => {
    backend.post.mockResolvedValue(restartAnswer({ generation: 8 }));
    setup({ reasonRequired: true });
    await userEvent.click(screen.getByTestId(testIds.restart.button('db-1', 'cdp')));
    expect(screen.getByRole('dialog')).toHaveTextContent(/Reason\s*\*/);
    expect(screen.getByRole('button', { name: /^Restart$/ })).toBeDisabled();
    await userEvent.type(screen.getByTestId(testIds.restart.reason), 'x');
    expect(screen.getByRole('button', { name: /^Restart$/ })).toBeEnabled();
  });

  it('sends nothing when the confirmation is dismissed', async () => {
    setup();
    await userEvent.click(screen.getByTestId(testIds.restart.button('db-1', 'cdp')));
    await userEvent.click(screen.getByRole('button', { name: 'Cancel' }));
    expect(backend.post).not.toHaveBeenCalled();
    expect(screen.queryByRole('dialog')).not.toBeInTheDocument();
  });

  it.each([
    [
      'a role below the minimum',
      httpError(403, 'forbidden', 'restart needs Editor; user bob is Viewer'),
      'Not allowed for your role (restarting needs Editor or above): restart needs Editor; user bob is Viewer',
    ],
    [
      'someone else restarting first',
      httpError(409, 'stale_generation', 'process cdp is at generation 9, not 7', { generation: 9 }),
      'Someone else restarted it first (it is now at generation 9). Check its state before restarting again.',
    ],
    [
      'an unreachable agent (502)',
      httpError(502, 'agent_unreachable', 'dial tcp 10.0.0.5:7071: connection refused'),
      'Agent unreachable, nothing was restarted: dial tcp 10.0.0.5:7071: connection refused',
    ],
    [
      'an agent timing out (504)',
      httpError(504, 'agent_timeout', 'no answer within 5s'),
      'Agent unreachable, nothing was restarted: no answer within 5s',
    ],
    [
      'an unknown process',
      httpError(404, 'not_found', 'agent db-1 has no process cdp'),
      'Not found: agent db-1 has no process cdp',
    ],
    [
      'a refused request',
      httpError(400, 'invalid_request', 'reason is required'),
      'refused as invalid: reason is required',
    ],
    ['a plain server error', { status: 500, data: 'boom' }, 'Restart failed: boom'],
    ['a network failure', { status: 0, data: { message: 'Failed to fetch' } }, 'Agent unreachable'],
  ])('puts %s in words', async (_, failure, words) => {
    backend.post.mockRejectedValue(failure);
    const { result } = setup();
    await restart();
    await waitFor(() => expect(result()).toHaveTextContent(words));
  });

  it('reports an answer it cannot read instead of a generation', async () => {
    backend.post.mockResolvedValue({ ok: true });
    const { result } = setup();
    await restart();
    await waitFor(() => expect(result()).toHaveTextContent(/unexpected shape \(generation:/));
  });

  it('reads the current generation from the agent when the row has none', async () => {
    backend.get.mockResolvedValue(agentDetailAnswer({ name: 'db-1', processes: [{ name: 'cdp', generation: 12 }] }));
    backend.post.mockResolvedValue(restartAnswer({ generation: 13 }));
    const { result } = setup({ generation: undefined });
    await userEvent.click(screen.getByTestId(testIds.restart.button('db-1', 'cdp')));
    expect(await screen.findByRole('dialog')).toHaveTextContent('current generation 12');
    expect(backend.get).toHaveBeenCalledWith(
      '/api/datasources/uid/vigil-cdp/resources/agents/db-1',
      undefined,
      undefined,
      expect.anything()
    );
    await userEvent.click(screen.getByRole('button', { name: /^Restart$/ }));
    await waitFor(() => expect(result()).toHaveTextContent('Restarted: generation 13'));
    expect(backend.post).toHaveBeenCalledWith(URL, { reason: '', ifGeneration: 12 }, expect.anything());
  });

  it('says so when the agent does not report the process', async () => {
    backend.get.mockResolvedValue(agentDetailAnswer({ name: 'db-1', processes: [] }));
    const { result } = setup({ generation: undefined });
    await userEvent.click(screen.getByTestId(testIds.restart.button('db-1', 'cdp')));
    await waitFor(() => expect(result()).toHaveTextContent('Not found: agent db-1 reports no process named cdp'));
    expect(screen.queryByRole('dialog')).not.toBeInTheDocument();
  });

  it('disables the button with the reason for a role below the minimum', async () => {
    const { button } = setup({ permission: restartPermission('Viewer', 'Editor') });
    expect(button()).toBeDisabled();
    await userEvent.hover(button().parentElement!);
    expect(await screen.findByText(/needs the Editor role or above.*your role is Viewer/)).toBeInTheDocument();
  });

  it('disables the button when the datasource is unknown', async () => {
    const { button } = setup({ datasourceUid: undefined });
    expect(button()).toBeDisabled();
    await userEvent.hover(button().parentElement!);
    expect(await screen.findByText(/cannot tell which Vigil datasource/)).toBeInTheDocument();
  });
});
