// What hostile requests add to the agent's log: N unauthenticated requests with long paths
// (and as many with long query strings and headers) against a real agent (src/cli.ts), and
// the bytes its stderr grew by.
//   node --import tsx bench/request-log.ts [--requests 2000] [--path-bytes 8192]
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { baseConfig, startAgent, tempDir, writeConfig } from '../test/helpers';
import { numberArg } from './common';

const REQUESTS = numberArg('requests', 2000);
const PATH_BYTES = numberArg('path-bytes', 8192);

function get(port: number, target: string, headers: Record<string, string>, agent: http.Agent): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: target, headers, agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

async function main(): Promise<void> {
  const dir = tempDir('vigil-agent-bench-');
  try {
    const file = writeConfig(
      dir,
      baseConfig(dir, { processes: [{ name: 'cdp', kind: 'command', command: ['sleep', '1000'], startOnBoot: false }] })
    );
    fs.chmodSync(file, 0o600);
    const agent = await startAgent(file);
    const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 8 });
    try {
      const long = 'a'.repeat(PATH_BYTES);
      type Kind = { name: string; target: string; headers: Record<string, string> };
      const longPaths: Kind[] = [{ name: '404 long path', target: `/${long}`, headers: {} }];
      const mixed: Kind[] = [
        ...longPaths,
        { name: '401 long query', target: `/v1/status?${long}`, headers: {} },
        { name: '401 long token', target: '/v1/status', headers: { authorization: `Bearer ${long}` } },
        { name: '404 escapes', target: `/%1b%5b2J%0a${'%e2%80%ae'.repeat(PATH_BYTES / 9)}`, headers: {} },
      ];
      for (const [phase, kinds] of [
        ['long paths', longPaths],
        ['long paths, queries, tokens, escapes', mixed],
      ] as const) {
        const before = Buffer.byteLength(agent.stderr());
        const linesBefore = agent.logLines().length;
        const statuses = new Map<string, number>();
        const started = Date.now();
        let next = 0;
        const worker = async () => {
          while (next < REQUESTS) {
            const k = kinds[next++ % kinds.length] as Kind;
            const s = await get(agent.port, k.target, k.headers, keepAlive);
            statuses.set(`${k.name}: ${s}`, (statuses.get(`${k.name}: ${s}`) ?? 0) + 1);
          }
        };
        await Promise.all(Array.from({ length: 8 }, worker));
        // The log is written asynchronously: let it drain.
        await new Promise((r) => setTimeout(r, 500));
        const added = Buffer.byteLength(agent.stderr()) - before;
        process.stdout.write(
          `${phase}: ${REQUESTS} unauthenticated requests (${PATH_BYTES} bytes each) in ${Date.now() - started} ms: ` +
            `the log grew by ${added} bytes, ${agent.logLines().length - linesBefore} lines (${(added / REQUESTS).toFixed(1)} bytes a request)\n`
        );
        for (const [k, n] of statuses) {
          process.stdout.write(`  ${k} x ${n}\n`);
        }
      }
      const tail = agent.stderr().trim().split('\n').slice(-3);
      process.stdout.write(`last lines:\n${tail.map((l) => `  ${l.slice(0, 400)}`).join('\n')}\n`);
    } finally {
      keepAlive.destroy();
      await agent.stop('SIGTERM');
    }
  } finally {
    fs.rmSync(path.resolve(dir), { recursive: true, force: true });
  }
}

void main();
