// The app's pages and the restart panel in Chromium, through the test host, against the real
// backend polling real vigil-agents: what a Grafana user sees.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser } from 'playwright-core';

import { ARTIFACTS, ROOT, launchBrowser, openHarness, screenshot, startHost, type Host } from './support';

const READ_TOKEN = 'app-test-read-token-0123456789';
const CONTROL_TOKEN = 'app-test-control-token-0123456789';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

interface Agent {
  name: string;
  port: number;
  cluster?: string;
  child?: ChildProcess;
  log: string;
}

// One vigil-agent supervising a stand-in CDP process, as scripts/demo.sh starts them.
function writeAgentConfig(dir: string, agent: Agent, node?: { name: string; role: 'active' | 'passive' }) {
  const home = path.join(dir, agent.name);
  mkdirSync(home, { recursive: true });
  const lines = [
    `listen: "127.0.0.1:${agent.port}"`,
    `stateDir: "${home}/state"`,
    `auth: { readToken: "${READ_TOKEN}", controlToken: "${CONTROL_TOKEN}" }`,
  ];
  if (node) {
    writeFileSync(path.join(home, 'role'), `${node.role}\n`);
    lines.push(`cluster: { name: ${agent.cluster}, node: ${node.name}, role: { file: "${home}/role" } }`);
  }
  lines.push(
    'processes:',
    '  - name: cdp',
    '    kind: command',
    '    command: ["sleep", "infinity"]',
    '    runOn: active',
    '    stopTimeout: 2s'
  );
  const file = path.join(home, 'agent.yaml');
  writeFileSync(file, lines.join('\n') + '\n');
  return file;
}

async function waitHealthy(agent: Agent) {
  for (let i = 0; i < 100; i++) {
    try {
      const res = await fetch(`http://127.0.0.1:${agent.port}/healthz`);
      if (res.ok) {
        return;
      }
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`agent ${agent.name} did not start:\n${agent.log}`);
}

async function fetchStatus(agent: Agent): Promise<{ generation: number; pid: number }> {
  const res = await fetch(`http://127.0.0.1:${agent.port}/v1/status`, {
    headers: { Authorization: `Bearer ${READ_TOKEN}` },
  });
  const body = (await res.json()) as { processes: Array<{ name: string; generation: number; pid: number }> };
  const cdp = body.processes.find((p) => p.name === 'cdp');
  assert.ok(cdp, `no cdp process on ${agent.name}`);
  return cdp;
}

async function agentEvents(agent: Agent): Promise<Array<Record<string, unknown>>> {
  const res = await fetch(`http://127.0.0.1:${agent.port}/v1/events?since=0`, {
    headers: { Authorization: `Bearer ${READ_TOKEN}` },
  });
  return ((await res.json()) as { events: Array<Record<string, unknown>> }).events;
}

describe('Vigil app and restart panel in Chromium', () => {
  let host: Host;
  let browser: Browser;
  let dir: string;
  const agents: Agent[] = [];

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'vigil-app-test-'));
    agents.push(
      { name: 'standalone', port: await freePort(), log: '' },
      { name: 'node-a', port: await freePort(), cluster: 'ha', log: '' },
      { name: 'node-b', port: await freePort(), cluster: 'ha', log: '' }
    );
    const roles: Record<string, { name: string; role: 'active' | 'passive' } | undefined> = {
      'node-a': { name: 'a', role: 'active' },
      'node-b': { name: 'b', role: 'passive' },
    };
    for (const agent of agents) {
      const config = writeAgentConfig(dir, agent, roles[agent.name]);
      agent.child = spawn('node', [path.join(ROOT, 'agent', 'dist', 'cli.js'), 'run', '--config', config], {
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      agent.child.stderr!.on('data', (d) => (agent.log += d));
    }
    await Promise.all(agents.map(waitHealthy));

    const provisioning = path.join(dir, 'datasources.yaml');
    writeFileSync(
      provisioning,
      [
        'apiVersion: 1',
        'datasources:',
        '  - name: Vigil CDP',
        '    type: vigil-cdp-datasource',
        '    uid: vigil-cdp',
        '    access: proxy',
        '    jsonData:',
        '      pollInterval: 1s',
        '      agents:',
        ...agents.flatMap((a) => [
          `        - name: ${a.name}`,
          `          url: http://127.0.0.1:${a.port}`,
          ...(a.cluster ? [`          cluster: ${a.cluster}`] : []),
        ]),
        '    secureJsonData:',
        '      readToken: $VIGIL_READ_TOKEN',
        '      controlToken: $VIGIL_CONTROL_TOKEN',
      ].join('\n') + '\n'
    );
    host = await startHost({
      provisioning,
      env: { VIGIL_READ_TOKEN: READ_TOKEN, VIGIL_CONTROL_TOKEN: CONTROL_TOKEN },
    });
    browser = await launchBrowser();
    // The datasource's engine starts on its first request; poll once so every page sees answers.
    const res = await fetch(`${host.url}/api/datasources/uid/vigil-cdp/resources/poll`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-Grafana-Role': 'Viewer' },
      body: '{}',
    });
    assert.equal(res.status, 200, `POST poll: ${res.status} ${await res.text()}`);
  });

  after(async () => {
    await browser?.close();
    await host?.stop();
    await Promise.all(
      agents.map(
        (a) =>
          new Promise<void>((resolve) => {
            if (!a.child || a.child.exitCode !== null) {
              return resolve();
            }
            a.child.once('exit', () => resolve());
            a.child.kill('SIGTERM');
          })
      )
    );
    if (dir) {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('lists every agent in the restart panel and gives a Viewer no active Restart button', async () => {
    const { page, errors } = await openHarness(
      browser,
      host,
      'view=panel&plugin=vigil-restart-panel&ds=vigil-cdp&role=Viewer'
    );
    await page.getByTestId('vigil-restart-panel').waitFor();
    const rows = page.getByTestId(/^vigil-restart-row-/);
    assert.ok((await rows.count()) >= agents.length, `one row per agent at least, got ${await rows.count()}`);
    for (const agent of agents) {
      assert.ok((await page.getByTestId(new RegExp(`^vigil-restart-row-${agent.name}-`)).count()) > 0, agent.name);
    }
    const buttons = page.getByTestId(/^vigil-restart-button-/);
    await buttons.first().waitFor();
    assert.ok((await buttons.count()) >= 2, 'a Restart button per running or expected process');
    for (let i = 0; i < (await buttons.count()); i++) {
      assert.ok(await buttons.nth(i).isDisabled(), 'a Viewer has an active Restart button');
    }
    await screenshot(page, 'app-restart-panel-viewer');
    assert.deepEqual(errors, []);
  });

  it('restarts a process for an Editor: confirm, then the new generation', async () => {
    const { page, errors } = await openHarness(
      browser,
      host,
      'view=panel&plugin=vigil-restart-panel&ds=vigil-cdp&role=Editor&login=alice'
    );
    const button = page.getByTestId('vigil-restart-button-standalone-cdp');
    await button.waitFor();
    assert.ok(await button.isEnabled(), 'an Editor may restart');
    const before = await fetchStatus(agents[0]);
    await button.click();
    const dialog = page.getByRole('dialog');
    await dialog.getByText('current generation').waitFor();
    assert.match(
      (await dialog.textContent()) ?? '',
      new RegExp(`Agent standalone, process cdp, current generation ${before.generation}`)
    );
    await page.getByTestId('vigil-restart-reason').fill('browser test');
    await page.getByTestId('vigil-restart-panel').screenshot({ path: path.join(ARTIFACTS, 'app-restart-confirm.png') });
    await dialog.getByRole('button', { name: 'Restart' }).click();
    const result = page.getByTestId('vigil-restart-result-standalone-cdp');
    await result.getByText(/Restarted: generation/).waitFor({ timeout: 15_000 });
    const after = await fetchStatus(agents[0]);
    assert.equal(after.generation, before.generation + 1);
    assert.notEqual(after.pid, before.pid);
    assert.match(
      (await result.textContent()) ?? '',
      new RegExp(`Restarted: generation ${after.generation}, pid ${after.pid}`)
    );
    // The agent recorded who asked and why.
    const events = await agentEvents(agents[0]);
    assert.ok(
      events.some(
        (e) => e.type === 'restart_requested' && String(e.requestedBy).includes('alice') && e.reason === 'browser test'
      ),
      `no restart request by alice in the agent's events: ${JSON.stringify(events.slice(-5))}`
    );
    // The panel polled the agent through the datasource and shows the restarted process; a
    // second restart confirms against the new generation, not the one the query last showed.
    const row = page.getByTestId('vigil-restart-row-standalone-cdp');
    await row
      .getByText(new RegExp(`generation ${after.generation}`))
      .first()
      .waitFor({ timeout: 15_000 });
    await page.getByTestId('vigil-restart-panel').screenshot({ path: path.join(ARTIFACTS, 'app-restart-panel.png') });
    await button.click();
    await dialog.getByText(`current generation ${after.generation}`).waitFor();
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    assert.deepEqual(errors, []);
  });

  it("shows the Agent page's processes with their last action from the real agent view", async () => {
    // After the restart above: the backend's GET agents/standalone carries alice's restart.
    const { page, errors } = await openHarness(
      browser,
      host,
      'view=app&role=Viewer&path=/a/vigil-cdp-app/agent/standalone?ds=vigil-cdp'
    );
    const processes = page.getByTestId('vigil-agent-processes');
    await processes.getByText('Last action').waitFor();
    await processes.getByText(/restart ok by alice, /).waitFor({ timeout: 15_000 });
    assert.deepEqual(errors, []);
  });

  it('shows the Fleet page from the real status query', async () => {
    const { page, errors } = await openHarness(browser, host, 'view=app&role=Viewer');
    await page.getByTestId('vigil-fleet-page').waitFor();
    await page.getByTestId('vigil-fleet-table').waitFor();
    for (const agent of agents) {
      await page.getByTestId(`vigil-fleet-agent-${agent.name}`).first().waitFor();
    }
    const counted = await page.getByTestId(/^vigil-fleet-count-/).allTextContents();
    const total = counted.map((t) => Number.parseInt(t, 10)).reduce((a, b) => a + b, 0);
    assert.equal(total, agents.length, `every agent counted once: ${counted.join(' | ')}`);
    assert.equal(
      await page.getByTestId('vigil-fleet-agent-node-a').first().getByRole('link').getAttribute('href'),
      '/a/vigil-cdp-app/agent/node-a?ds=vigil-cdp'
    );
    await page.getByTestId('vigil-fleet-count-OK').waitFor();
    // The state timeline gets one field per agent and process from the backend's timeline query.
    const timeline = page.locator('[data-testid="harness-panel-renderer"][data-plugin-id="state-timeline"]');
    await timeline.getByTestId('harness-panel-frame').first().waitFor();
    const fields = (await timeline.getByTestId('harness-panel-frame').first().textContent()) ?? '';
    for (const agent of agents) {
      assert.ok(fields.includes(`${agent.name}/cdp`), `no timeline field for ${agent.name}/cdp in "${fields}"`);
    }
    await screenshot(page, 'app-fleet-page');
    await page.getByTestId('vigil-fleet-page').screenshot({ path: path.join(ARTIFACTS, 'app-fleet-page-only.png') });
    assert.deepEqual(errors, []);
  });
});
