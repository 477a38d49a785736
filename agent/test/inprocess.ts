// An agent inside the test process: the real Agent and createHandler behind a real HTTP server
// on loopback, with the log captured and the handler's options (a fake clock) given.
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { Agent } from '../src/agent';
import { buildConfig } from '../src/config';
import { createLogger, type Level } from '../src/log';
import { answerClientErrors, createHandler, type HandlerOptions } from '../src/server';
import { CONTROL_TOKEN, READ_TOKEN, tempDir } from './helpers';

export interface InProcessAgent {
  agent: Agent;
  baseUrl: string;
  port: number;
  /** The log lines written so far, parsed. */
  lines: () => Array<Record<string, unknown>>;
  /** The raw log text written so far. */
  text: () => string;
  close: () => Promise<void>;
}

export async function startInProcess(
  opts: { level?: Level; handler?: HandlerOptions; config?: Record<string, unknown> } = {}
): Promise<InProcessAgent> {
  const dir = tempDir('vigil-agent-inprocess-');
  const raw: string[] = [];
  const log = createLogger({ level: opts.level ?? 'debug', write: (l) => raw.push(l) });
  log.addSecrets([READ_TOKEN, CONTROL_TOKEN]);
  const config = buildConfig(
    {
      listen: '127.0.0.1:0',
      stateDir: path.join(dir, 'state'),
      auth: { readToken: READ_TOKEN, controlToken: CONTROL_TOKEN },
      processes: [
        { name: 'cdp', kind: 'command', command: ['/bin/sleep', '1000'], startOnBoot: false, stopTimeout: '1s' },
      ],
      ...opts.config,
    },
    path.join(dir, 'agent.yaml')
  );
  const agent = new Agent(config, log);
  const server = http.createServer(createHandler(agent, opts.handler));
  answerClientErrors(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    agent,
    port,
    baseUrl: `http://127.0.0.1:${port}`,
    text: () => raw.join(''),
    lines: () => raw.map((l) => JSON.parse(l) as Record<string, unknown>),
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await agent.shutdown('test done');
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
