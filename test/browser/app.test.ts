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
    for (let i = 0; i < (await buttons.count()); i++) {
      assert.ok(await buttons.nth(i).isDisabled(), 'a Viewer has an active Restart button');
    }
    await screenshot(page, 'app-restart-panel-viewer');
    await page.getByTestId('vigil-restart-panel').screenshot({ path: path.join(ARTIFACTS, 'app-restart-panel.png') });
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
    await screenshot(page, 'app-fleet-page');
    // Until the backend serves the timeline and events queries (HTTP 400 now), those sections show
    // their error in place; the browser logs the failed requests, which are not page errors.
    assert.deepEqual(
      errors.filter((e) => !e.startsWith('Failed to load resource')),
      []
    );
  });
});
