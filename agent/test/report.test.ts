// Push mode's pieces: the signing rule (the same vectors as the Go side, pkg/report), the
// report keys' checks, and which transport a report takes (proxy from the environment or the
// configuration, CONNECT for https). The whole path (a real agent reporting to vigil watch
// through a forward proxy) is pkg/cli's TestPushAgentThroughAProxy.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { test } from 'node:test';
import { HttpProxyAgent } from 'http-proxy-agent';
import { HttpsProxyAgent } from 'https-proxy-agent';
import { buildConfig, ConfigError } from '../src/config';
import type { AgentEvent } from '../src/events';
import { createLogger } from '../src/log';
import { Reporter, sign, transportFor, type MonitorAction } from '../src/report';
import { AGENT_DIR, baseConfig, tempDirsRemovedAfter, waitFor } from './helpers';

const tempDir = tempDirsRemovedAfter();

test('signs as the monitor checks: the vectors of pkg/report', () => {
  const file = path.join(AGENT_DIR, '..', 'pkg', 'report', 'testdata', 'vectors.json');
  const vectors = JSON.parse(fs.readFileSync(file, 'utf8')) as Array<{ token: string; text: string; mac: string }>;
  assert.ok(vectors.length >= 3);
  for (const v of vectors) {
    assert.equal(sign(v.token, v.text), v.mac, `${v.token} / ${v.text}`);
  }
});

test('report keys: what is wrong and where', () => {
  const dir = tempDir();
  const cfg = (report: Record<string, unknown>) =>
    buildConfig(
      baseConfig(dir, { report, processes: [{ name: 'cdp', kind: 'command', command: ['/bin/true'] }] }),
      'agent.yaml'
    );
  const problems = (report: Record<string, unknown>): string[] => {
    try {
      cfg(report);
    } catch (e) {
      return (e as ConfigError).problems;
    }
    return [];
  };
  const ok = cfg({
    to: 'https://monitor.example.net/v1/reports',
    token: 'report-token-0123456789',
    name: 'db1',
  }).report;
  assert.equal(ok?.everyMs, 10_000);
  assert.equal(ok?.backlog, 100);
  assert.equal(ok?.name, 'db1');
  assert.deepEqual(problems({ to: 'https://m/v1/reports' }), ['report.token: required (give token or tokenFile)']);
  assert.deepEqual(problems({ to: 'https://m/', token: 'short' }), [
    'report.token: must be at least 16 characters (the monitor refuses shorter ones)',
  ]);
  assert.deepEqual(problems({ to: 'ftp://m/', token: 'report-token-0123456789' }), [
    'report.to: "ftp://m/" is not an absolute http or https URL',
  ]);
  assert.deepEqual(problems({ to: 'https://u:p@m/', token: 'report-token-0123456789' }), [
    'report.to: must not carry a user name or password: give bearerToken',
  ]);
  const tokenFile = path.join(dir, 'report-token');
  fs.writeFileSync(tokenFile, 'from-a-file-0123456789\n', { mode: 0o600 });
  assert.deepEqual(problems({ to: 'https://m/', token: 'report-token-0123456789', tokenFile }), [
    'report.tokenFile: give token or tokenFile, not both',
  ]);
  assert.equal(cfg({ to: 'https://m/', tokenFile }).report?.token, 'from-a-file-0123456789');
  assert.deepEqual(problems({ to: 'https://m/', token: 'report-token-0123456789', every: '100ms' }), [
    'report.every: must be at least 1s',
  ]);
});

test('transport: CONNECT through the proxy for https, the proxy for http, NO_PROXY honoured', () => {
  const saved = { ...process.env };
  try {
    process.env.HTTPS_PROXY = 'http://proxy.example.net:3128';
    process.env.HTTP_PROXY = 'http://proxy.example.net:3128';
    process.env.NO_PROXY = '.internal.example.net';
    const viaProxy = transportFor({ to: 'https://monitor.example.net/v1/reports' });
    assert.ok(viaProxy.httpsAgent instanceof HttpsProxyAgent, 'an https target is tunnelled (CONNECT)');
    assert.equal((viaProxy.httpsAgent as HttpsProxyAgent<string>).proxy.host, 'proxy.example.net:3128');
    assert.ok(transportFor({ to: 'http://monitor.example.net/v1/reports' }).httpAgent instanceof HttpProxyAgent);
    const exempt = transportFor({ to: 'https://monitor.internal.example.net/v1/reports' });
    assert.ok(exempt.httpsAgent instanceof https.Agent && !(exempt.httpsAgent instanceof HttpsProxyAgent), 'NO_PROXY');
    const configured = transportFor({ to: 'https://monitor.internal.example.net/', proxy: 'http://other:8080' });
    assert.equal((configured.httpsAgent as HttpsProxyAgent<string>).proxy.host, 'other:8080', 'report.proxy wins');
    delete process.env.HTTPS_PROXY;
    delete process.env.HTTP_PROXY;
    assert.deepEqual(transportFor({ to: 'http://monitor.example.net/' }), {});
  } finally {
    process.env = saved;
  }
});

test('a monitor out of reach: changes wait in a bounded backlog, oldest first; an unsigned answer is not obeyed', async () => {
  const dir = tempDir();
  const token = 'report-token-0123456789';
  const received: Array<{ seq: number; reason: string; dropped: number }> = [];
  const acted: MonitorAction[] = [];
  let answerWith: 'signed' | 'forged' = 'forged';
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const env = JSON.parse(body) as { report: string; mac: string };
      assert.equal(env.mac, sign(token, env.report));
      const r = JSON.parse(env.report) as { seq: number; reason: string; dropped: number };
      received.push({ seq: r.seq, reason: r.reason, dropped: r.dropped });
      const answer = JSON.stringify({
        agent: 'nat',
        seq: r.seq,
        actions: [
          { action: 'restart', process: 'cdp', ifGeneration: 1, reason: 'test', requestedBy: 'vigil auto-restart' },
        ],
      });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          answer,
          mac: answerWith === 'signed' ? sign(token, answer) : sign('another-token-0123456789', answer),
        })
      );
    });
  });
  // A port nothing listens on yet: the monitor is down.
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((r) => server.close(() => r()));
  let listener: ((e: AgentEvent) => void) | undefined;
  const reporter = new Reporter(
    { to: `http://127.0.0.1:${port}/v1/reports`, name: 'nat', everyMs: 60_000, token, backlog: 2, timeoutMs: 2000 },
    {
      status: async () => ({}),
      onEvent: (l) => (listener = l),
      act: async (a) => {
        acted.push(a);
        return 'done';
      },
    },
    dir,
    createLogger({ level: 'error', write: () => undefined })
  );
  reporter.start();
  for (const type of ['crashed', 'started', 'exited']) {
    listener?.({ seq: 1, time: '', type, reason: '', process: 'cdp' });
    await new Promise((r) => setTimeout(r, 50));
  }
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  try {
    await waitFor('three reports', () => received.length >= 3 || undefined, 10_000);
    // The schedule's own report was lost with the monitor down; of three changes, the two newest
    // were kept and go first, in order; the next report tells of the one let go.
    assert.deepEqual(
      received.slice(0, 3).map((r) => [r.reason, r.dropped]),
      [
        ['change', 0],
        ['change', 0],
        ['schedule', 1],
      ]
    );
    assert.ok(received[0]!.seq < received[1]!.seq && received[1]!.seq < received[2]!.seq, 'in order');
    assert.equal(acted.length, 0, 'an answer not signed with the report token is not obeyed');
    answerWith = 'signed';
    reporter.trigger('change');
    await waitFor('the restart asked for', () => acted.length === 1 || undefined, 5000);
    assert.equal(acted[0]!.process, 'cdp');
    assert.equal(received[received.length - 1]!.dropped, 0, 'told once');
    assert.ok(Number(fs.readFileSync(path.join(dir, 'report-seq'), 'utf8')) >= received[received.length - 1]!.seq);
  } finally {
    reporter.stop();
    await new Promise<void>((r) => server.close(() => r()));
  }
});
