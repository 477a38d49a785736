import React from 'react';
import { render, screen } from '@testing-library/react';

import { MonitorStatus } from './MonitorStatus';
import { testIds } from '../../shared/testIds';
import { httpError, useBackend } from '../../shared/testing/fakes';

const base = {
  running: true,
  startedAt: '2026-03-01T12:00:00Z',
  lastRequestAt: '2026-03-01T12:05:00Z',
  lastAlertQueryAt: null,
  idleStopSeconds: 900,
  history: { path: '/var/lib/grafana/vigil-cdp/org1-id3-vigil-cdp', source: 'GF_PATHS_DATA', durable: true },
  now: '2026-03-01T12:05:40Z',
};

describe('MonitorStatus', () => {
  it('says the alert rules keep the monitor running, and where the history is', async () => {
    const backend = useBackend();
    backend.get.mockResolvedValue({
      ...base,
      keptAliveByAlerts: true,
      lastAlertQueryAt: '2026-03-01T12:05:00Z',
      summary: 'the monitor is running (since 5m40s ago); kept alive by alert rules: last evaluation 40s ago',
    });
    render(<MonitorStatus uid="vigil-cdp" isAdmin />);
    expect(
      await screen.findByText(
        'The monitor is running (since 5m40s ago); kept alive by alert rules: last evaluation 40s ago.'
      )
    ).toBeInTheDocument();
    expect(screen.getByText(/History: \/var\/lib\/grafana\/vigil-cdp\/org1-id3-vigil-cdp/)).toBeInTheDocument();
    expect(screen.queryByText('Nothing keeps the monitor running')).not.toBeInTheDocument();
    expect(backend.get).toHaveBeenCalledWith(
      '/api/datasources/uid/vigil-cdp/resources/monitor',
      undefined,
      undefined,
      expect.anything()
    );
  });

  it('warns when nothing keeps the monitor running', async () => {
    useBackend().get.mockResolvedValue({
      ...base,
      running: false,
      keptAliveByAlerts: false,
      summary: 'the monitor is not running: no query has used this datasource since the plugin started',
      warning: 'nothing keeps the monitor running: no alert rule has queried this datasource since the plugin started',
    });
    render(<MonitorStatus uid="vigil-cdp" isAdmin />);
    expect(await screen.findByText('Nothing keeps the monitor running')).toBeInTheDocument();
    expect(screen.getByTestId(testIds.config.monitor)).toHaveTextContent(
      'Nothing keeps the monitor running: no alert rule has queried this datasource since the plugin started. Install the alert rules below'
    );
  });

  it('shows the shared history and the replicas, and the agents nobody polls', async () => {
    useBackend().get.mockResolvedValue({
      ...base,
      keptAliveByAlerts: true,
      summary: 'the monitor is running (since 5m40s ago)',
      postgres: {
        writable: false,
        since: '2026-03-01T12:04:00Z',
        lastError: 'connection refused',
        spoolBytes: 2048,
        spoolRecords: 3,
        dropped: 0,
      },
      cluster: {
        self: 'grafana-1',
        addr: '10.0.0.11:7946',
        members: ['grafana-1', 'grafana-2'],
        owned: 2,
        agents: 5,
        unpolled: ['db9'],
        checkedAt: '2026-03-01T12:05:30Z',
      },
    });
    render(<MonitorStatus uid="vigil-cdp" isAdmin />);
    expect(await screen.findByText('The shared history is not written to PostgreSQL')).toBeInTheDocument();
    const box = screen.getByTestId(testIds.config.monitor);
    expect(box).toHaveTextContent('3 records (2048 bytes) wait in the local buffer');
    expect(box).toHaveTextContent(
      'Cluster: this replica is grafana-1 at 10.0.0.11:7946; 2 members: grafana-1, grafana-2. This replica polls 2 of 5 agents.'
    );
    expect(box).toHaveTextContent('Not polled by any replica for two intervals: db9.');
  });

  it('names a failed read', async () => {
    useBackend().get.mockRejectedValue(httpError(500, 'x', 'boom'));
    render(<MonitorStatus uid="vigil-cdp" isAdmin />);
    expect(await screen.findByText("Could not read the monitor's status")).toBeInTheDocument();
  });

  it('asks nothing for a non-admin', () => {
    const backend = useBackend();
    render(<MonitorStatus uid="vigil-cdp" isAdmin={false} />);
    expect(screen.getByTestId(testIds.config.monitor)).toHaveTextContent('shown to admins');
    expect(backend.get).not.toHaveBeenCalled();
  });
});
