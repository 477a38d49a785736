// The agent killed (SIGKILL) at varied moments while it starts a process, most of them in the
// few milliseconds between the spawn and the record of the pid: the next agent on the same
// stateDir must end up with exactly one copy, running and supervised (never an orphan beside
// a second copy, which for the replicator means a second writer and waiting_for_lease forever).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, test, type TestContext } from 'node:test';
import {
  baseConfig,
  childProcessConfig,
  processesWithMarker,
  runCli,
  startAgent,
  statusOf,
  stopAfterTests,
  tempDir,
  waitFor,
  writeConfig,
  type RunningAgent,
} from './helpers';

const { agents, markedDir } = stopAfterTests();
const dirs: string[] = [];
after(() => {
  for (const d of dirs) {
    for (const pid of replicatorsFor(path.join(d, 'store'))) {
      killGroup(pid);
    }
    fs.rmSync(d, { recursive: true, force: true });
  }
});

/** When the first agent is killed. */
type Moment =
  | { child: number } // this many ms after the agent's first child appears in /proc (the spawn)
  | { afterSpawnMs: number } // this many ms after the agent itself was spawned
  | 'started'; // as soon as the agent logs the process's `started` event

const MOMENTS: Moment[] = [
  { afterSpawnMs: 300 },
  { child: 0 },
  { child: 0.3 },
  { child: 0.6 },
  { child: 1 },
  { child: 1.5 },
  { child: 2.5 },
  { child: 5 },
  'started',
];

function killGroup(pid: number): void {
  for (const target of [-pid, pid]) {
    try {
      process.kill(target, 'SIGKILL');
    } catch {
      // gone
    }
  }
}

/** Live replicator processes writing to `store`. */
function replicatorsFor(store: string): number[] {
  const out: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) {
      continue;
    }
    try {
      const argv = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (!argv.includes('replicate') || !argv.includes(store)) {
        continue;
      }
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
      if (state !== 'Z' && state !== 'X') {
        out.push(Number(entry));
      }
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** The processes the agent's main thread has started (a tsx loader's esbuild runs from another thread). */
function children(pid: number): number[] {
  try {
    return fs
      .readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(' ')
      .filter((x) => x !== '')
      .map(Number);
  } catch {
    return [];
  }
}

/** Starts an agent on `file` and kills it with SIGKILL at `moment`; resolves once it is gone. */
async function killDuringStart(file: string, moment: Moment): Promise<void> {
  const child = runCli(['run', '--config', file]);
  let err = '';
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  child.stdout?.resume();
  let exited = false;
  const gone = new Promise<void>((resolve) =>
    child.on('exit', () => {
      exited = true;
      resolve();
    })
  );
  const pid = child.pid as number;
  if (moment === 'started') {
    await waitFor('the started event', () => exited || err.includes('"type":"started"'), 20_000, 1);
  } else if ('afterSpawnMs' in moment) {
    await new Promise((r) => setTimeout(r, moment.afterSpawnMs));
  } else {
    // Busy-wait (no event loop turn) so that the kill can land within the spawn's few milliseconds.
    const deadline = Date.now() + 20_000;
    while (children(pid).length === 0 && Date.now() < deadline && fs.existsSync(`/proc/${pid}`)) {}
    const until = process.hrtime.bigint() + BigInt(Math.round(moment.child * 1e6));
    while (process.hrtime.bigint() < until) {}
  }
  child.kill('SIGKILL');
  await gone;
}

interface Trial {
  moment: string;
  copies: number[];
  problem?: string;
  /** What the second agent did, from its events: adopted (recorded or by marker), started, leftover_stopped. */
  outcome?: string;
}

function outcomeOf(agent: RunningAgent): string {
  return agent
    .logLines()
    .filter((l) => l.msg === 'event' && ['adopted', 'started', 'leftover_stopped', 'crashed'].includes(String(l.type)))
    .map((l) =>
      l.type === 'adopted' && String(l.reason).includes('VIGIL_GENERATION') ? 'adopted by marker' : String(l.type)
    )
    .join(', ');
}

/**
 * Runs one trial per moment: kill the first agent during its start, start a second one, and
 * check that within a few seconds exactly one copy runs and the agent reports it as running.
 */
async function trials(
  setup: () => { dir: string; file: string; copies: () => number[]; cleanup: () => void },
  ready: (p: any) => boolean
): Promise<Trial[]> {
  const results: Trial[] = [];
  for (const moment of MOMENTS) {
    const { file, copies, cleanup } = setup();
    let second: RunningAgent | undefined;
    const result: Trial = { moment: JSON.stringify(moment), copies: [] };
    try {
      await killDuringStart(file, moment);
      second = await startAgent(file);
      agents.push(second);
      const agent = second;
      await waitFor(
        'exactly one copy, running and supervised',
        async () => {
          const p = (await statusOf(agent)).processes[0];
          result.copies = copies();
          result.problem = `copies ${JSON.stringify(result.copies)}, status ${p.state} pid ${p.pid} ${p.protection?.state ?? ''}`;
          return result.copies.length === 1 && p.pid === result.copies[0] && ready(p);
        },
        8000,
        50
      );
      result.problem = undefined;
      result.outcome = outcomeOf(agent);
    } catch (e) {
      result.problem ??= String(e);
    } finally {
      await second?.stop('SIGTERM');
      cleanup();
    }
    results.push(result);
  }
  return results;
}

function assertAllGood(t: TestContext, results: Trial[]): void {
  for (const r of results) {
    t.diagnostic(`${r.moment}: ${r.problem ?? r.outcome}`);
  }
  const bad = results.filter((r) => r.problem !== undefined);
  assert.deepEqual(
    bad.map((r) => `${r.moment}: ${r.problem}`),
    [],
    `${bad.length} of ${results.length} trials did not end with exactly one supervised copy`
  );
}

test('killed while starting the replicator: the next agent adopts or ends what the first one started', async (t) => {
  assertAllGood(
    t,
    await trials(
      () => {
        const dir = tempDir('vigil-agent-startkill-');
        dirs.push(dir);
        const source = path.join(dir, 'data');
        const store = path.join(dir, 'store');
        fs.mkdirSync(source);
        fs.writeFileSync(path.join(source, 'a.txt'), 'a');
        const file = writeConfig(
          dir,
          baseConfig(dir, {
            processes: [{ name: 'cdp', kind: 'replicator', source, target: store, stopTimeout: '5s' }],
          })
        );
        return {
          dir,
          file,
          copies: () => replicatorsFor(store),
          cleanup: () => {
            for (const pid of replicatorsFor(store)) {
              killGroup(pid);
            }
            fs.rmSync(dir, { recursive: true, force: true });
          },
        };
      },
      (p) => p.state === 'running' && (p.protection?.state === 'watching' || p.protection?.state === 'catching_up')
    )
  );
});

test('killed while starting a command: the next agent adopts or ends what the first one started', async (t) => {
  assertAllGood(
    t,
    await trials(
      () => {
        const { dir, marker } = markedDir();
        dirs.push(dir);
        const file = writeConfig(dir, baseConfig(dir, { processes: [childProcessConfig(marker)] }));
        return {
          dir,
          file,
          copies: () => processesWithMarker(marker),
          cleanup: () => {
            for (const pid of processesWithMarker(marker)) {
              killGroup(pid);
            }
            fs.rmSync(dir, { recursive: true, force: true });
          },
        };
      },
      (p) => p.state === 'running'
    )
  );
});
