// Benchmark of the built agent (dist/cli.js): /v1/status throughput and latency with 20
// concurrent keep-alive clients, the agent's RSS, and its idle CPU.
//   npm run bench -w agent [-- --seconds 10 --idle-seconds 60 --clients 20 --agent-node-options '...']
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { stringify } from 'yaml';
import { numberArg, percentile, processMemory } from './common';

const SECONDS = numberArg('seconds', 10);
const IDLE_SECONDS = numberArg('idle-seconds', 60);
const CLIENTS = numberArg('clients', 20);
const WARMUP_MS = 2000;
const TOKEN = 'bench-read-token-0123456789abcdef';
// Node.js options for the agent only (for example --max-semi-space-size=1 to trade a little
// throughput for a smaller RSS); the load generator keeps its defaults.
const AGENT_NODE_OPTIONS = (() => {
  const i = process.argv.indexOf('--agent-node-options');
  return i < 0 ? '' : (process.argv[i + 1] ?? '');
})();

/** CPU time used by the process, in seconds: nanoseconds from schedstat, else clock ticks from stat. */
function cpuSeconds(pid: number, ticksPerSecond: number): number {
  try {
    const ns = Number(fs.readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[0]);
    if (Number.isFinite(ns)) {
      return ns / 1e9;
    }
  } catch {
    // no schedstat on this kernel
  }
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / ticksPerSecond;
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vigil-agent-bench-'));
  const configFile = path.join(dir, 'agent.yaml');
  fs.writeFileSync(
    configFile,
    stringify({
      listen: '127.0.0.1:0',
      stateDir: path.join(dir, 'state'),
      auth: { readToken: TOKEN, controlToken: 'bench-control-token-0123456789abcdef' },
      processes: [{ name: 'cdp', kind: 'command', command: ['sleep', '100000'] }],
    })
  );
  const cli = path.join(__dirname, '..', 'dist', 'cli.js');
  const agent = spawn(process.execPath, [cli, 'run', '--config', configFile], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, NODE_OPTIONS: AGENT_NODE_OPTIONS },
  });
  let stderr = '';
  agent.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const port = await new Promise<number>((resolve, reject) => {
    const t = setInterval(() => {
      const m = /"msg":"listening","address":"[^"]*:(\d+)"/.exec(stderr);
      if (m) {
        clearInterval(t);
        resolve(Number(m[1]));
      } else if (agent.exitCode !== null) {
        clearInterval(t);
        reject(new Error(`agent exited: ${stderr}`));
      }
    }, 20);
  });
  const pid = agent.pid as number;
  const keepAlive = new http.Agent({ keepAlive: true, maxSockets: CLIENTS });
  const get = () =>
    new Promise<number>((resolve, reject) => {
      const t0 = process.hrtime.bigint();
      const req = http.get(
        {
          host: '127.0.0.1',
          port,
          path: '/v1/status',
          agent: keepAlive,
          headers: { authorization: `Bearer ${TOKEN}` },
        },
        (res) => {
          res.resume();
          res.on('end', () => {
            if (res.statusCode !== 200) {
              reject(new Error(`status ${res.statusCode}`));
            } else {
              resolve(Number(process.hrtime.bigint() - t0) / 1e6);
            }
          });
        }
      );
      req.on('error', reject);
    });

  const run = async (ms: number, record: number[] | null) => {
    const until = Date.now() + ms;
    let count = 0;
    await Promise.all(
      Array.from({ length: CLIENTS }, async () => {
        while (Date.now() < until) {
          const lat = await get();
          count++;
          record?.push(lat);
        }
      })
    );
    return count;
  };

  await run(WARMUP_MS, null);
  const latencies: number[] = [];
  const t0 = process.hrtime.bigint();
  const count = await run(SECONDS * 1000, latencies);
  const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
  const underLoad = processMemory(pid);
  keepAlive.destroy();
  latencies.sort((a, b) => a - b);

  // Idle: no requests at all, the supervised process running.
  const ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
  const idleStart = cpuSeconds(pid, ticksPerSecond);
  const idleT0 = Date.now();
  await new Promise((r) => setTimeout(r, IDLE_SECONDS * 1000));
  const idleSeconds = (Date.now() - idleT0) / 1000;
  const idleCpu = ((cpuSeconds(pid, ticksPerSecond) - idleStart) / idleSeconds) * 100;
  const idle = processMemory(pid);

  agent.kill('SIGTERM');
  const code = await new Promise<number | null>((resolve) => agent.on('exit', (c) => resolve(c)));

  const f = (n: number, d = 2) => n.toFixed(d);
  const lines = [
    `- machine: ${os.cpus().length} × ${os.cpus()[0]?.model.trim() ?? 'cpu'}, ${f(os.totalmem() / 2 ** 30, 0)} GiB, Node.js ${process.version}`,
    `- /v1/status, ${CLIENTS} concurrent keep-alive clients, ${f(elapsed, 1)} s after a ${WARMUP_MS / 1000} s warm-up: **${f(count / elapsed, 0)} requests/s**, p50 **${f(percentile(latencies, 50))} ms**, p90 ${f(percentile(latencies, 90))} ms, p99 **${f(percentile(latencies, 99))} ms**, max ${f(latencies[latencies.length - 1] ?? NaN)} ms`,
    `- RSS: **${f(underLoad.rssMiB, 1)} MiB** right after the load (peak ${f(underLoad.peakMiB, 1)} MiB), ${f(idle.rssMiB, 1)} MiB after the idle period`,
    `- idle CPU over ${f(idleSeconds, 0)} s (one supervised process, no requests): **${f(idleCpu, 3)} %** of one core`,
    `- agent exit code after SIGTERM: ${code}${AGENT_NODE_OPTIONS ? `; agent NODE_OPTIONS=${AGENT_NODE_OPTIONS}` : ''}`,
  ];
  process.stdout.write(lines.join('\n') + '\n');
  fs.rmSync(dir, { recursive: true, force: true });
}

main().catch((e: unknown) => {
  process.stderr.write(`bench failed: ${String(e)}\n`);
  process.exit(1);
});
