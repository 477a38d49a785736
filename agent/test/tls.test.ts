import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { baseConfig, READ_TOKEN, request, startAgent, tempDir, writeConfig } from './helpers';

test('with tls the agent answers over HTTPS', async () => {
  const dir = tempDir();
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      '1',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
    ],
    { stdio: 'ignore' }
  );
  const file = writeConfig(
    dir,
    baseConfig(dir, {
      tls: { certFile: cert, keyFile: key },
      processes: [{ name: 'cdp', kind: 'command', command: ['sleep', '1000'], startOnBoot: false }],
    })
  );
  const agent = await startAgent(file);
  try {
    assert.match(agent.baseUrl, /^https:/);
    const ca = fs.readFileSync(cert);
    const health = await request(`${agent.baseUrl}/healthz`, { ca });
    assert.equal(health.status, 200);
    const status = await request(`${agent.baseUrl}/v1/status`, { ca, token: READ_TOKEN });
    assert.equal(status.status, 200);
    assert.equal(status.json.processes[0].state, 'stopped');
    // Plain HTTP on the TLS port gets no API answer.
    await assert.rejects(request(`http://127.0.0.1:${agent.port}/healthz`));
  } finally {
    assert.equal((await agent.stop('SIGTERM')).code, 0);
  }
});
