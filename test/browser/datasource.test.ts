// The datasource's editors in Chromium, as Grafana loads them, against the real backend behind the
// test host: the settings page (fleet, budget, tokens) and the query editor (agents from GET agents).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { openHarness, screenshot, useHarness } from './support';

describe('datasource editors in Chromium', () => {
  const h = useHarness();

  it('shows the provisioned fleet and its worst-case budget, live', async () => {
    const { page, errors } = await openHarness(h.browser, h.host, 'view=config&ds=vigil-cdp&role=Admin');
    await page.getByTestId('vigil-config-editor').waitFor();
    assert.equal(await page.getByTestId('vigil-config-agent-2-name').inputValue(), 'demo-node-b');
    assert.match(
      (await page.getByTestId('vigil-config-budget-clustered').textContent()) ?? '',
      /Agents in a cluster \(2\): .*max\(failover 60 s, restart 180 s, network interruption 30 s, app error recovery 60 s\) = 182 s/
    );
    assert.match(
      (await page.getByTestId('vigil-config-budget-standalone').textContent()) ?? '',
      /Standalone agents \(1\): .* = 182 s/
    );

    await page.getByTestId('vigil-config-budget-failover').fill('5m');
    await page.getByRole('radio', { name: 'sum' }).click({ force: true });
    assert.match((await page.getByTestId('vigil-config-budget-clustered').textContent()) ?? '', /= 572 s/);
    assert.match((await page.getByTestId('vigil-config-budget-standalone').textContent()) ?? '', /= 272 s/);
    const stored = JSON.parse((await page.getByTestId('harness-options').textContent()) ?? '{}');
    assert.deepEqual(stored.jsonData.defaults, { budget: { failover: '5m', combine: 'sum' } });
    await screenshot(page, 'datasource-config-budget');
    assert.deepEqual(errors, []);
  });

  it('flags an invalid URL and a duplicate name as they are typed, naming the field', async () => {
    const { page } = await openHarness(h.browser, h.host, 'view=config&ds=vigil-cdp&role=Admin');
    await page.getByTestId('vigil-config-add-agent').click();
    await page.getByTestId('vigil-config-agent-3-name').fill('demo-node-a');
    await page.getByTestId('vigil-config-agent-3-url').fill('10.0.0.9:7070');
    const problems = page.getByTestId('vigil-config-problems');
    await problems.getByText('agents[3].url: must be an absolute http or https URL').waitFor();
    await problems.getByText('agents[3].name: "demo-node-a" is already used by agents[1]').waitFor();
    await screenshot(page, 'datasource-config-invalid');
    await page.getByTestId('vigil-config-agent-3-url').fill('http://10.0.0.9:7070');
    await page.getByTestId('vigil-config-agent-3-name').fill('dr-1');
    await problems.waitFor({ state: 'detached' });
  });

  it('keeps a per-agent token out of jsonData and never shows stored ones', async () => {
    const { page } = await openHarness(h.browser, h.host, 'view=config&ds=vigil-cdp&role=Admin');
    await page.getByText('Own settings and tokens of demo-node-a').click();
    await page.getByTestId('vigil-config-agent-1-budget-failover').fill('10m');
    assert.match((await page.getByTestId('vigil-config-agent-1-budget-total').textContent()) ?? '', /= 602 s/);
    await page.getByTestId('vigil-config-agent-1-read-token').fill('node-a-typed-secret');
    const stored = JSON.parse((await page.getByTestId('harness-options').textContent()) ?? '{}');
    assert.equal(stored.secureJsonData['agent.demo-node-a.readToken'], 'node-a-typed-secret');
    assert.ok(!JSON.stringify(stored.jsonData).includes('node-a-typed-secret'));
    const html = await page.content();
    assert.ok(!html.includes('browser-test-read-token'), 'the stored read token reached the browser');
    await screenshot(page, 'datasource-config-agent-override');
  });

  it('offers the agents the backend serves in the query editor', async () => {
    const { page, errors } = await openHarness(h.browser, h.host, 'view=query&ds=vigil-cdp&role=Editor');
    await page.getByTestId('vigil-query-editor').waitFor();
    await page.getByRole('radio', { name: 'metrics' }).click({ force: true });
    await page.getByTestId('vigil-query-agents').click();
    const options = page.getByRole('option');
    await options.first().waitFor();
    const names = await options.allTextContents();
    for (const name of ['demo-standalone', 'demo-node-a', 'demo-node-b']) {
      assert.ok(
        names.some((n) => n.includes(name)),
        `${name} missing from ${names.join(', ')}`
      );
    }
    await page.getByRole('option', { name: /demo-node-a/ }).click();
    await page.keyboard.press('Escape');
    // The editor hands the query to its owner on change; wait for that render before reading it.
    await page.getByTestId('harness-query').filter({ hasText: '"agents":["demo-node-a"]' }).waitFor({ timeout: 5_000 });
    const query = JSON.parse((await page.getByTestId('harness-query').textContent()) ?? '{}');
    assert.equal(query.queryType, 'metrics');
    assert.deepEqual(query.agents, ['demo-node-a']);
    await screenshot(page, 'datasource-query-editor');
    // The harness serves no Roboto Mono webfont (/public/fonts/roboto/…), which Grafana's theme
    // asks for here; a missing font is no plugin error.
    assert.deepEqual(
      errors.filter((e) => !e.startsWith('Failed to load resource: the server responded with a status of 404')),
      []
    );
  });
});
