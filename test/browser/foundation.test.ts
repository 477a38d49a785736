// The foundation's browser check: the built plugins load in Chromium as Grafana would load them,
// query the real backend through the test host, and render what it answers.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { ARTIFACTS, openHarness, screenshot, useHarness } from './support';

describe('built plugins in Chromium', () => {
  const h = useHarness();

  it('renders the restart panel from the datasource status query', async () => {
    const { page, errors } = await openHarness(
      h.browser,
      h.host,
      'view=panel&plugin=vigil-restart-panel&ds=vigil-cdp&role=Editor'
    );
    const row = page.getByTestId('vigil-restart-row-demo-node-a-');
    await row.waitFor();
    assert.match((await row.textContent()) ?? '', /UNKNOWN/);
    assert.match((await row.textContent()) ?? '', /cluster demo-ha/);
    assert.equal(await page.getByTestId(/^vigil-restart-row-/).count(), 3);
    await screenshot(page, 'foundation-restart-panel');
    await page
      .getByTestId('vigil-restart-panel')
      .screenshot({ path: `${ARTIFACTS}/foundation-restart-panel-only.png` });
    assert.deepEqual(errors, []);
  });

  it('renders the app root page', async () => {
    const { page } = await openHarness(h.browser, h.host, 'view=app&role=Viewer');
    await page.getByTestId('vigil-app-root').waitFor();
    assert.ok(await page.getByText('5 FAILED').isVisible());
    await screenshot(page, 'foundation-app-root');
  });

  it('shows stored tokens only as configured in the datasource editor', async () => {
    const { page } = await openHarness(h.browser, h.host, 'view=config&ds=vigil-cdp&role=Admin');
    await page.getByTestId('vigil-config-editor').waitFor();
    assert.equal(await page.getByTestId('vigil-config-agent-1-name').inputValue(), 'demo-node-a');
    const html = await page.content();
    assert.ok(!html.includes('browser-test-read-token'), 'the read token reached the browser');
    assert.ok(!html.includes('browser-test-control-token'), 'the control token reached the browser');
    await screenshot(page, 'foundation-config-editor');
  });
});
