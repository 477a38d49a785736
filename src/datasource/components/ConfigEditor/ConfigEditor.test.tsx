import React, { useState } from 'react';
import { fireEvent, render, screen, within } from '@testing-library/react';
import type { DataSourceSettings } from '@grafana/data';

import { ConfigEditor } from './ConfigEditor';
import type { SharedOptions } from './replicas';
import type { VigilOptions, VigilSecureOptions } from '../../types';
import { testIds } from '../testIds';

const ids = testIds.configEditor;

function settings(jsonData: VigilOptions | SharedOptions, secureJsonFields: Record<string, boolean> = {}) {
  return {
    id: 1,
    uid: 'vigil',
    orgId: 1,
    name: 'Vigil CDP',
    type: 'vigil-cdp-datasource',
    jsonData,
    secureJsonFields,
    readOnly: false,
  } as unknown as DataSourceSettings<VigilOptions, VigilSecureOptions>;
}

// Named fleets the tests start from.
const fleets = {
  empty: (): VigilOptions => ({ agents: [] }),
  demo: (): VigilOptions => ({
    pollInterval: '10s',
    agents: [
      { name: 'standalone', url: 'http://127.0.0.1:7071' },
      { name: 'node-a', url: 'http://127.0.0.1:7072', cluster: 'sql-ha' },
    ],
  }),
};

// Holds the options like Grafana's datasource settings page does, so typing is seen as it happens.
function Harness({
  initial,
  onChange,
}: {
  initial: DataSourceSettings<VigilOptions, VigilSecureOptions>;
  onChange: jest.Mock;
}) {
  const [options, setOptions] = useState(initial);
  return (
    <ConfigEditor
      options={options}
      onOptionsChange={(o) => {
        onChange(o);
        setOptions(o);
      }}
    />
  );
}

function renderEditor(jsonData: VigilOptions | SharedOptions, secureJsonFields: Record<string, boolean> = {}) {
  const onChange = jest.fn();
  render(<Harness initial={settings(jsonData, secureJsonFields)} onChange={onChange} />);
  const last = () => onChange.mock.calls.at(-1)[0] as DataSourceSettings<SharedOptions, VigilSecureOptions>;
  return { onChange, last };
}

const type = (testId: string, value: string) => fireEvent.change(screen.getByTestId(testId), { target: { value } });

describe('ConfigEditor', () => {
  it('adds an agent and flags an invalid URL as it is typed, naming the field', () => {
    const { last } = renderEditor(fleets.empty());
    expect(screen.getAllByText('agents: at least one agent is required').length).toBeGreaterThan(0);
    fireEvent.click(screen.getByTestId(ids.addAgent));
    type(ids.agentName(0), 'db-1');
    type(ids.agentUrl(0), 'db-1:7070');
    expect(screen.getAllByText('agents[0].url: must be an absolute http or https URL').length).toBeGreaterThan(0);
    type(ids.agentUrl(0), 'http://db-1:7070');
    expect(screen.queryByText(/agents\[0\]\.url/)).not.toBeInTheDocument();
    expect(screen.queryByTestId(ids.problems)).not.toBeInTheDocument();
    expect(last().jsonData.agents).toEqual([{ name: 'db-1', url: 'http://db-1:7070' }]);
  });

  it('flags a duplicate agent name on the second agent', () => {
    renderEditor(fleets.demo());
    fireEvent.click(screen.getByTestId(ids.addAgent));
    type(ids.agentName(2), 'node-a');
    type(ids.agentUrl(2), 'http://127.0.0.1:7073');
    expect(
      within(screen.getByTestId(ids.problems)).getByText('agents[2].name: "node-a" is already used by agents[1]')
    ).toBeInTheDocument();
  });

  it('flags a poll interval under one second', () => {
    renderEditor({ ...fleets.demo(), pollInterval: '500ms' });
    expect(screen.getAllByText('pollInterval: 500ms is below the minimum of 1s').length).toBeGreaterThan(0);
  });

  it('shows the default worst-case budget for clustered and standalone agents', () => {
    renderEditor(fleets.demo());
    expect(screen.getByTestId(ids.budgetClustered)).toHaveTextContent(
      'Agents in a cluster (1): 1 s response + 1 s processing + max(failover 60 s, restart 180 s, network interruption 30 s, app error recovery 60 s) = 182 s (3 min 2 s)'
    );
    expect(screen.getByTestId(ids.budgetStandalone)).toHaveTextContent(
      'Standalone agents (1): 1 s response + 1 s processing + max(restart 180 s, network interruption 30 s, app error recovery 60 s) = 182 s (3 min 2 s)'
    );
  });

  it('recomputes the budget live as factors and combine change', () => {
    const { last } = renderEditor(fleets.demo());
    type(ids.budgetFactor('failover'), '5m');
    expect(screen.getByTestId(ids.budgetClustered)).toHaveTextContent(/= 302 s/);
    expect(screen.getByTestId(ids.budgetStandalone)).toHaveTextContent(/= 182 s/);
    fireEvent.click(screen.getByRole('radio', { name: 'sum' }));
    // 1 + 1 + 300 + 180 + 30 + 60 and, without failover, 1 + 1 + 180 + 30 + 60
    expect(screen.getByTestId(ids.budgetClustered)).toHaveTextContent(/= 572 s/);
    expect(screen.getByTestId(ids.budgetStandalone)).toHaveTextContent(/= 272 s/);
    expect(last().jsonData.defaults).toEqual({ budget: { failover: '5m', combine: 'sum' } });
  });

  it('flags a budget factor that is no duration and withholds the total', () => {
    renderEditor(fleets.demo());
    type(ids.budgetFactor('restart'), 'three minutes');
    expect(
      screen.getAllByText('defaults.budget.restart: "three minutes" is not a duration (examples: 10s, 1m30s, 0)').length
    ).toBeGreaterThan(0);
    expect(screen.queryByTestId(ids.budgetClustered)).not.toBeInTheDocument();
    expect(screen.getByText('Fix the budget factors flagged below to see the budget.')).toBeInTheDocument();
  });

  it('keeps a per-agent override on that agent and shows its own budget', () => {
    const { last } = renderEditor(fleets.demo());
    fireEvent.click(screen.getByText('Own settings and tokens of node-a'));
    type(ids.agentBudgetFactor(1, 'failover'), '10m');
    expect(screen.getByTestId(ids.agentBudget(1))).toHaveTextContent(/= 602 s/);
    expect(screen.getByText(/node-a \(own settings\):/)).toHaveTextContent(/= 602 s/);
    // The fleet-wide budget is unchanged.
    expect(screen.getByTestId(ids.budgetClustered)).toHaveTextContent(/= 182 s/);
    expect(last().jsonData.agents?.[1]).toEqual({
      name: 'node-a',
      url: 'http://127.0.0.1:7072',
      cluster: 'sql-ha',
      budget: { failover: '10m' },
    });
    expect(last().jsonData.defaults).toBeUndefined();
  });

  it('flags a negative per-agent allowance with the agent path', () => {
    renderEditor({ ...fleets.demo(), agents: [{ name: 'a', url: 'http://a:1', budget: { restart: '-1s' } }] });
    expect(screen.getAllByText('agents[0].budget.restart: -1s must not be negative').length).toBeGreaterThan(0);
  });

  it('shows the measured settings only in measured mode and checks them', () => {
    const { last } = renderEditor(fleets.demo());
    expect(screen.queryByTestId(ids.measured('percentile'))).not.toBeInTheDocument();
    fireEvent.click(screen.getByRole('radio', { name: 'measured' }));
    type(ids.measured('percentile'), '150');
    expect(
      screen.getAllByText('defaults.measured.percentile: 150 must be above 0 and at most 100').length
    ).toBeGreaterThan(0);
    type(ids.measured('percentile'), '99');
    type(ids.measured('minSamples'), '3');
    expect(last().jsonData.defaults).toEqual({
      budget: { mode: 'measured' },
      measured: { percentile: 99, minSamples: 3 },
    });
  });

  it('stores the auto-restart policy, RPO, restart role and history path under the fleet keys', () => {
    const { last } = renderEditor(fleets.demo());
    fireEvent.click(screen.getByTestId(ids.autoRestart('enabled')));
    type(ids.autoRestart('maxRestarts'), '5');
    type(ids.autoRestart('backoffInitial'), '10m');
    expect(
      screen.getAllByText('defaults.autoRestart.backoffInitial: 10m0s is above autoRestart.backoffMax 5m0s').length
    ).toBeGreaterThan(0);
    type(ids.autoRestart('backoffInitial'), '10s');
    type(ids.rpo, '2m');
    fireEvent.click(screen.getByRole('radio', { name: 'Admin' }));
    type(ids.historyPath, '/var/lib/grafana/vigil');
    type(ids.idleStop, '500ms');
    expect(screen.getAllByText('idleStop: "500ms" is below the minimum of 1s').length).toBeGreaterThan(0);
    type(ids.idleStop, '1h');
    expect(last().jsonData).toMatchObject({
      defaults: { autoRestart: { enabled: false, maxRestarts: 5, backoffInitial: '10s' }, rpo: '2m' },
      restartRole: 'Admin',
      historyPath: '/var/lib/grafana/vigil',
      idleStop: '1h',
    });
  });

  it('defaults the restart role to Editor', () => {
    renderEditor(fleets.demo());
    expect(screen.getByRole('radio', { name: 'Editor' })).toBeChecked();
  });

  it('never shows a configured token, only that it is set', () => {
    renderEditor(fleets.demo(), { readToken: true, 'agent.node-a.controlToken': true });
    fireEvent.click(screen.getByText('Own settings and tokens of node-a'));
    const configured = screen.getAllByDisplayValue('configured');
    expect(configured).toHaveLength(2);
    configured.forEach((input) => expect(input).toBeDisabled());
  });

  it('sends new tokens only in secureJsonData, per agent under agent.<name>.<kind>', () => {
    const { last } = renderEditor(fleets.demo());
    type(ids.controlToken, 's3cret-control-token');
    fireEvent.click(screen.getByText('Own settings and tokens of node-a'));
    type(ids.agentReadToken(1), 's3cret-node-a-read');
    expect(last().secureJsonData).toEqual({
      controlToken: 's3cret-control-token',
      'agent.node-a.readToken': 's3cret-node-a-read',
    });
    expect(JSON.stringify(last().jsonData)).not.toContain('s3cret');
  });

  it('moves an unsaved per-agent token along when the agent is renamed, and clears a stored one', () => {
    const { last } = renderEditor(fleets.demo(), { 'agent.node-a.controlToken': true });
    fireEvent.click(screen.getByText('Own settings and tokens of node-a'));
    type(ids.agentReadToken(1), 's3cret-typed');
    type(ids.agentName(1), 'node-b');
    expect(last().secureJsonData).toEqual({
      'agent.node-b.readToken': 's3cret-typed',
      'agent.node-a.controlToken': '',
    });
    expect(last().secureJsonFields).toMatchObject({ 'agent.node-a.controlToken': false });
  });

  it('makes an agent report by itself: no URL, how often, and its own report token', () => {
    const { last } = renderEditor(fleets.demo());
    fireEvent.click(screen.getByText('Own settings and tokens of standalone'));
    fireEvent.click(screen.getByLabelText('Reports by itself'));
    type(ids.agentUrl(0), '');
    expect(screen.queryByTestId(ids.agentReadToken(0))).not.toBeInTheDocument();
    type(ids.agentReportEvery(0), '500ms');
    expect(screen.getAllByText('agents[0].reportEvery: 500ms is below the minimum of 1s').length).toBeGreaterThan(0);
    type(ids.agentReportEvery(0), '30s');
    type(ids.agentReportToken(0), 's3cret-report-token-0123');
    expect(last().jsonData.agents?.[0]).toEqual({ name: 'standalone', url: '', transport: 'push', reportEvery: '30s' });
    expect(last().secureJsonData).toEqual({ 'agent.standalone.reportToken': 's3cret-report-token-0123' });
    expect(screen.queryByText(/agents\[0\]\.url/)).not.toBeInTheDocument();
    fireEvent.click(screen.getByLabelText('Polled'));
    expect(last().jsonData.agents?.[0]).toEqual({ name: 'standalone', url: '' });
    expect(screen.getAllByText(/agents\[0\]\.url: is required/).length).toBeGreaterThan(0);
  });

  it('removes an agent with its stored tokens', () => {
    const { last } = renderEditor(fleets.demo(), { 'agent.standalone.readToken': true });
    fireEvent.click(screen.getByTestId(ids.agentRemove(0)));
    expect(last().jsonData.agents?.map((a) => a.name)).toEqual(['node-a']);
    expect(last().secureJsonFields).toMatchObject({ 'agent.standalone.readToken': false });
  });

  describe('shared history and replicas (docs/ha.md)', () => {
    const PG = 'postgres://vigil@db.example:5432/vigil';
    const shared = (): SharedOptions => ({ ...fleets.demo(), history: { postgres: PG } });
    const divided = (): SharedOptions => ({ ...shared(), cluster: { join: ['g1:7946'], profile: 'local' } });
    const problems = () => screen.queryByTestId(ids.problems)?.textContent ?? '';

    it('writes the connection to jsonData.history.postgres', () => {
      const { last } = renderEditor(fleets.demo());
      type(ids.historyPostgres, PG);
      expect(last().jsonData.history).toEqual({ postgres: PG });
      expect(screen.queryByTestId(ids.problems)).not.toBeInTheDocument();
      expect(screen.queryByTestId(ids.historyPasswordInConnection)).not.toBeInTheDocument();
    });

    it('flags a connection that is neither a URL nor key=value, as the backend does', () => {
      renderEditor(fleets.demo());
      type(ids.historyPostgres, 'db.example');
      expect(problems()).toContain(
        'history.postgres: is not a PostgreSQL connection string: write postgres://user@host:5432/database or host=... dbname=...'
      );
      type(ids.historyPostgres, 'host=db.example dbname=vigil');
      expect(screen.queryByTestId(ids.problems)).not.toBeInTheDocument();
    });

    it('removes history when the connection is cleared, leaving no empty key', () => {
      const { last } = renderEditor(shared());
      type(ids.historyPostgres, '   ');
      expect(last().jsonData).not.toHaveProperty('history');
      type(ids.historyPostgres, '');
      expect(last().jsonData).not.toHaveProperty('history');
      expect(last().jsonData).toEqual(fleets.demo());
    });

    it('sends the password in secureJsonData only, and never shows a stored one', () => {
      const { last } = renderEditor(shared());
      type(ids.historyPassword, 's3cret-pg-password');
      expect(last().secureJsonData).toEqual({ 'history.password': 's3cret-pg-password' });
      expect(JSON.stringify(last().jsonData)).not.toContain('s3cret');
      expect(last().jsonData.history).toEqual({ postgres: PG });
    });

    it('resets a stored password to an empty secret', () => {
      const { last } = renderEditor(shared(), { 'history.password': true });
      expect(screen.getByTestId(ids.historyPassword)).toHaveValue('configured');
      fireEvent.click(screen.getByRole('button', { name: 'Reset' }));
      expect(last().secureJsonFields).toMatchObject({ 'history.password': false });
      expect(last().secureJsonData).toEqual({ 'history.password': '' });
    });

    it('warns of a password inside the connection string without repeating it', () => {
      renderEditor(fleets.demo());
      type(ids.historyPostgres, 'postgres://vigil:s3cret-in-url@db.example:5432/vigil');
      const warning = screen.getByTestId(ids.historyPasswordInConnection);
      expect(warning).toHaveTextContent('enter it in the Password field');
      expect(warning).not.toHaveTextContent('s3cret');
      expect(problems()).not.toContain('s3cret');
      type(ids.historyPostgres, 'host=db.example dbname=vigil password=s3cret-kv');
      expect(screen.getByTestId(ids.historyPasswordInConnection)).not.toHaveTextContent('s3cret');
      type(ids.historyPostgres, PG);
      expect(screen.queryByTestId(ids.historyPasswordInConnection)).not.toBeInTheDocument();
    });

    it('offers the division only with a connection', () => {
      renderEditor(fleets.demo());
      expect(screen.getByTestId(ids.clusterDivide)).toBeDisabled();
      type(ids.historyPostgres, PG);
      expect(screen.getByTestId(ids.clusterDivide)).toBeEnabled();
    });

    it('adds cluster when switched on and removes it when switched off, keeping what was set', () => {
      const { last } = renderEditor(shared());
      expect(screen.queryByTestId(ids.clusterJoin)).not.toBeInTheDocument();
      fireEvent.click(screen.getByTestId(ids.clusterDivide));
      expect(last().jsonData.cluster).toEqual({});
      expect(screen.getByRole('radio', { name: 'lan' })).toBeChecked();
      type(ids.clusterJoin, 'g1:7946');
      fireEvent.click(screen.getByRole('radio', { name: 'local' }));
      expect(last().jsonData.cluster).toEqual({ join: ['g1:7946'], profile: 'local' });
      fireEvent.click(screen.getByTestId(ids.clusterDivide));
      expect(last().jsonData).not.toHaveProperty('cluster');
      expect(screen.queryByTestId(ids.clusterJoin)).not.toBeInTheDocument();
      fireEvent.click(screen.getByTestId(ids.clusterDivide));
      expect(last().jsonData.cluster).toEqual({ join: ['g1:7946'], profile: 'local' });
      expect(screen.getByTestId(ids.clusterJoin)).toHaveValue('g1:7946');
    });

    it('keeps a division whose connection was cleared switchable off, and says what it needs', () => {
      const { last } = renderEditor(divided());
      type(ids.historyPostgres, '');
      expect(problems()).toContain(
        'cluster: dividing the agents among monitors needs a shared history: set history.postgres too'
      );
      expect(screen.getByTestId(ids.clusterDivide)).toBeEnabled();
      fireEvent.click(screen.getByTestId(ids.clusterDivide));
      expect(last().jsonData).toEqual(fleets.demo());
      expect(screen.getByTestId(ids.clusterDivide)).toBeDisabled();
    });

    it('reads the members to join separated by commas or spaces', () => {
      const { last } = renderEditor({ ...shared(), cluster: {} });
      type(ids.clusterJoin, 'grafana-1.example:7946,  grafana-2.example:7946 10.0.0.13:7946, [fd00::4]:7946,');
      expect(last().jsonData.cluster).toEqual({
        join: ['grafana-1.example:7946', 'grafana-2.example:7946', '10.0.0.13:7946', '[fd00::4]:7946'],
      });
      // What is being typed stays as typed.
      expect(screen.getByTestId(ids.clusterJoin)).toHaveValue(
        'grafana-1.example:7946,  grafana-2.example:7946 10.0.0.13:7946, [fd00::4]:7946,'
      );
      expect(screen.queryByTestId(ids.problems)).not.toBeInTheDocument();
      type(ids.clusterJoin, '');
      expect(last().jsonData.cluster).toEqual({});
    });

    it('names each member that is not host:port with a port from 1 to 65535', () => {
      renderEditor({ ...shared(), cluster: {} });
      type(ids.clusterJoin, 'g1:7946 g2 g3:0 g4:70000 fd00::5:7946 :7946');
      const text = problems();
      expect(text).not.toContain('cluster.join[0]');
      expect(text).toContain('cluster.join[1]: must be host:port: "g2" has no port');
      expect(text).toContain('cluster.join[2]: must be host:port: "g3:0": the port must be a number from 1 to 65535');
      expect(text).toContain(
        'cluster.join[3]: must be host:port: "g4:70000": the port must be a number from 1 to 65535'
      );
      expect(text).toContain('cluster.join[4]: must be host:port: "fd00::5:7946" has too many colons');
      expect(text).toContain('cluster.join[5]: must be host:port: ":7946" has no host');
      expect(screen.getAllByText('cluster.join[1]: must be host:port: "g2" has no port')).toHaveLength(2);
    });

    it('flags a gossip key that is not 16, 24 or 32 bytes of base64, without repeating it', () => {
      const { last } = renderEditor({ ...shared(), cluster: {} });
      const message = 'cluster.secretKey: must be 16, 24 or 32 bytes in base64 (openssl rand -base64 32)';
      type(ids.clusterSecretKey, 'c2hvcnQ=');
      expect(screen.getAllByText(message).length).toBeGreaterThan(0);
      type(ids.clusterSecretKey, 'not base64 at all!');
      expect(screen.getAllByText(message).length).toBeGreaterThan(0);
      expect(problems()).not.toContain('base64 at all');
      type(ids.clusterSecretKey, 'MDEyMzQ1Njc4OWFiY2RlZg==');
      expect(screen.queryByText(message)).not.toBeInTheDocument();
      expect(last().secureJsonData).toEqual({ 'cluster.secretKey': 'MDEyMzQ1Njc4OWFiY2RlZg==' });
      expect(last().jsonData.cluster).toEqual({});
    });

    it('tells where each replica takes its own address from', () => {
      renderEditor(fleets.demo());
      expect(screen.getByText(/VIGIL_CLUSTER_ADVERTISE/)).toBeInTheDocument();
      expect(screen.getByRole('link', { name: /docs\/ha\.md/ })).toHaveAttribute(
        'href',
        'https://github.com/vigil-cdp/vigil/blob/main/docs/ha.md'
      );
    });
  });
});
