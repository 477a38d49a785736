// The status answer against the OpenAPI document in the package: every field it declares
// required is present with its declared type, on a standalone agent and in a cluster.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import {
  baseConfig,
  childProcessConfig,
  control,
  read,
  startAgent,
  stopAfterTests,
  tempDir,
  writeConfig,
} from './helpers';

type Schema = {
  $ref?: string;
  type?: string;
  nullable?: boolean;
  required?: string[];
  properties?: Record<string, Schema>;
  items?: Schema;
  enum?: unknown[];
  minimum?: number;
  maximum?: number;
};
const doc = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'openapi.json'), 'utf8')) as {
  components: { schemas: Record<string, Schema> };
};

function resolve(s: Schema): Schema {
  return s.$ref ? (doc.components.schemas[s.$ref.split('/').pop() as string] as Schema) : s;
}

/** A small checker for the subset of JSON Schema the document uses. */
function check(value: unknown, schema: Schema, where: string): void {
  const s = resolve(schema);
  if (value === null) {
    assert.ok(s.nullable, `${where}: null but not nullable`);
    return;
  }
  if (s.enum) {
    assert.ok(s.enum.includes(value), `${where}: ${JSON.stringify(value)} not in ${JSON.stringify(s.enum)}`);
  }
  switch (s.type) {
    case 'object': {
      assert.equal(typeof value, 'object', where);
      for (const k of s.required ?? []) {
        assert.ok(k in (value as object), `${where}.${k}: required`);
      }
      for (const [k, sub] of Object.entries(s.properties ?? {})) {
        const v = (value as Record<string, unknown>)[k];
        if (v !== undefined) {
          check(v, sub, `${where}.${k}`);
        }
      }
      break;
    }
    case 'array':
      assert.ok(Array.isArray(value), where);
      (value as unknown[]).forEach((v, i) => check(v, s.items as Schema, `${where}[${i}]`));
      break;
    case 'integer':
      assert.ok(Number.isInteger(value), `${where}: not an integer`);
      inRange(value as number, s, where);
      break;
    case 'number':
      assert.equal(typeof value, 'number', where);
      inRange(value as number, s, where);
      break;
    case 'string':
      assert.equal(typeof value, 'string', where);
      break;
    case 'boolean':
      assert.equal(typeof value, 'boolean', where);
      break;
    default:
  }
}

/** The monitor refuses an answer with a number outside these bounds: a healthy agent never sends one. */
function inRange(value: number, s: Schema, where: string): void {
  if (s.minimum !== undefined) {
    assert.ok(value >= s.minimum, `${where}: ${value} is below the minimum ${s.minimum}`);
  }
  if (s.maximum !== undefined) {
    assert.ok(value <= s.maximum, `${where}: ${value} is above the maximum ${s.maximum}`);
  }
}

const { agents, markedDir } = stopAfterTests();

test('status, events and restart answers match the OpenAPI document', async () => {
  const { dir, marker } = markedDir();
  fs.writeFileSync(path.join(dir, 'role'), 'active');
  const file = writeConfig(
    dir,
    baseConfig(dir, {
      cluster: { name: 'sql-ha', node: 'node-a', role: { file: path.join(dir, 'role') } },
      processes: [
        childProcessConfig(marker),
        childProcessConfig(`${marker}-b`, { name: 'second', startOnBoot: false }),
      ],
    })
  );
  const agent = await startAgent(file);
  agents.push(agent);
  const r = await control(`${agent.baseUrl}/v1/processes/cdp/restart`, { requestedBy: 'contract' });
  check(r.json, { $ref: '#/components/schemas/StartResult' }, 'restart');
  const s = await control(`${agent.baseUrl}/v1/processes/cdp/stop`, { requestedBy: 'contract' });
  check(s.json, { $ref: '#/components/schemas/StopResult' }, 'stop');
  await control(`${agent.baseUrl}/v1/processes/cdp/restart`, {});
  const status = (await read(`${agent.baseUrl}/v1/status`)).json;
  check(status, { $ref: '#/components/schemas/Status' }, 'status');
  assert.equal(status.processes[0].lastExit.signal, 'SIGTERM');
  check(status.processes[1], { $ref: '#/components/schemas/Process' }, 'process');
  const events = (await read(`${agent.baseUrl}/v1/events`)).json;
  check(events, { $ref: '#/components/schemas/Events' }, 'events');
  const err = await read(`${agent.baseUrl}/v1/processes/none`);
  check(err.json, { $ref: '#/components/schemas/Error' }, 'error');
  await agent.stop('SIGTERM');
});

test('one agent per stateDir: a second one exits 1 and touches nothing', async () => {
  const { dir, marker } = markedDir();
  const file = writeConfig(dir, baseConfig(dir, { processes: [childProcessConfig(marker)] }));
  const first = await startAgent(file);
  agents.push(first);
  const before = (await read(`${first.baseUrl}/v1/events`)).json.events.length;
  const second = await startAgent(file).then(
    () => assert.fail('the second agent started'),
    (e: Error) => e
  );
  assert.match(second.message, /another vigil-agent \(pid \d+\) is using stateDir/);
  assert.equal((await read(`${first.baseUrl}/v1/events`)).json.events.length, before);
  assert.equal((await first.stop('SIGTERM')).code, 0);
});

test('SIGHUP re-reads token files', async () => {
  const dir = tempDir();
  const tokenFile = path.join(dir, 'read-token');
  fs.writeFileSync(tokenFile, 'first-read-token-0123456789\n');
  const file = writeConfig(
    dir,
    baseConfig(dir, {
      auth: { readTokenFile: tokenFile, controlToken: 'control-token-0123456789abcdef' },
      processes: [{ name: 'cdp', kind: 'command', command: ['sleep', '1000'], startOnBoot: false }],
    })
  );
  const agent = await startAgent(file);
  agents.push(agent);
  const { request, waitFor } = await import('./helpers');
  const as = (token: string) => request(`${agent.baseUrl}/v1/status`, { token });
  assert.equal((await as('first-read-token-0123456789')).status, 200);
  fs.writeFileSync(tokenFile, 'second-read-token-0123456789\n');
  agent.child.kill('SIGHUP');
  await waitFor('the new token', async () => (await as('second-read-token-0123456789')).status === 200);
  assert.equal((await as('first-read-token-0123456789')).status, 401);
  assert.ok(!agent.stderr().includes('read-token-0123456789'));
  await agent.stop('SIGTERM');
});

test('a port already in use: exit 1 before any process is touched', async () => {
  const net = await import('node:net');
  const blocker = net.createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  const port = (blocker.address() as import('node:net').AddressInfo).port;
  try {
    const { dir, marker } = markedDir();
    const file = writeConfig(dir, {
      ...baseConfig(dir, { processes: [childProcessConfig(marker)] }),
      listen: `127.0.0.1:${port}`,
    });
    const { runCliToEnd, processesWithMarker } = await import('./helpers');
    const r = await runCliToEnd(['run', '--config', file]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /"msg":"agent failed to start".*EADDRINUSE/);
    assert.deepEqual(processesWithMarker(marker), []);
  } finally {
    blocker.close();
  }
});
