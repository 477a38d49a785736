// Shared by the browser tests: starts the test host (which starts the built backend plugin the way
// Grafana does) and Debian's Chromium through playwright-core. Never downloads a browser.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { after, before } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';

export const ROOT = path.resolve(__dirname, '..', '..');
export const ARTIFACTS = path.join(ROOT, 'artifacts', 'browser');

export interface Host {
  url: string;
  stop: () => Promise<void>;
  output: () => string;
}

export async function startHost(options: { provisioning: string; env?: Record<string, string> }): Promise<Host> {
  const bin = process.env.VIGIL_TESTHOST ?? path.join(ROOT, 'bin', 'test', 'vigil-testhost');
  const plugin =
    process.env.VIGIL_PLUGIN_BINARY ??
    path.join(ROOT, 'dist', 'datasource', `gpx_vigil_linux_${process.arch === 'arm64' ? 'arm64' : 'amd64'}`);
  const child: ChildProcess = spawn(
    bin,
    [
      '--plugin',
      plugin,
      '--provisioning',
      options.provisioning,
      '--dist',
      path.join(ROOT, 'dist'),
      '--harness',
      path.join(ROOT, 'test', 'harness', 'dist'),
      '--listen',
      '127.0.0.1:0',
    ],
    { env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] }
  );
  let log = '';
  child.stderr!.on('data', (d) => (log += d));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`test host did not start within 20 s:\n${log}`)), 20_000);
    child.once('exit', (code) => reject(new Error(`test host exited with ${code}:\n${log}`)));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const m = /^listening on (http:\/\/\S+)$/.exec(line);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
  });
  return {
    url,
    output: () => log,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) {
          return resolve();
        }
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
}

// Opens a harness page and waits until the plugin component has mounted (or failed, with why).
export async function openHarness(
  browser: Browser,
  host: Host,
  query: string
): Promise<{ page: Page; errors: string[] }> {
  const page = await browser.newPage({ viewport: { width: 1100, height: 700 } });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  await page.goto(`${host.url}/?${query}`);
  const status = page.getByTestId('harness-status');
  await status.filter({ hasNotText: 'loading' }).waitFor({ timeout: 30_000 });
  const text = (await status.textContent()) ?? '';
  if (text !== 'ready') {
    throw new Error(
      `harness page did not become ready: ${text}\nbrowser errors: ${errors.join('\n')}\nhost log:\n${host.output()}`
    );
  }
  return { page, errors };
}

export async function screenshot(page: Page, name: string) {
  mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/** The provisioned demo datasource, with tokens that must never reach the browser. */
export const DEMO_PROVISIONING = path.join(ROOT, 'provisioning', 'datasources', 'vigil-cdp.yaml');
export const DEMO_TOKENS = {
  VIGIL_READ_TOKEN: 'browser-test-read-token',
  VIGIL_CONTROL_TOKEN: 'browser-test-control-token',
};

/**
 * Starts the test host and Chromium before the suite's tests and stops them after; the returned
 * object holds both once started.
 */
export function useHarness(options: { provisioning?: string; env?: Record<string, string> } = {}) {
  const ctx = {} as { host: Host; browser: Browser };
  before(async () => {
    ctx.host = await startHost({
      provisioning: options.provisioning ?? DEMO_PROVISIONING,
      env: options.env ?? DEMO_TOKENS,
    });
    ctx.browser = await launchBrowser();
  });
  after(async () => {
    await ctx.browser?.close();
    await ctx.host?.stop();
  });
  return ctx;
}
