// The agent supervising the replicator (kind: replicator): kill -9 during a burst of writes,
// more writes while it is down, the agent restarts it, and nothing acknowledged is lost.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { restore } from '../src/replicator/restore';
import {
  baseConfig,
  CONTROL_TOKEN,
  killMarked,
  read,
  request,
  startAgent,
  tempDir as newTempDir,
  waitFor,
  writeConfig,
  type RunningAgent,
} from './helpers';
import { diffTrees, journal, readStatus, snapshot, storeHash, waitMirror } from './replicator-helpers';

const agents: RunningAgent[] = [];
const dirs: string[] = [];
/** A temporary directory; what runs there (the replicators, in sessions of their own) is killed after the tests, and it is removed. */
const tempDir = (prefix?: string) => {
  const d = newTempDir(prefix);
  dirs.push(d);
  return d;
};
after(async () => {
  for (const a of agents) {
    await a.stop('SIGKILL');
  }
  // A replicator outlives its agent by design (the next agent adopts it): end it here.
  for (const d of dirs) {
    killMarked(d);
  }
  for (const d of dirs) {
    fs.rmSync(d, { recursive: true, force: true });
  }
});

async function cdp(agent: RunningAgent) {
  const r = await read(`${agent.baseUrl}/v1/status`);
  assert.equal(r.status, 200);
  return r.json.processes[0];
}

test('kill -9 during a burst: the agent restarts the replicator, the mirror equals the source, every acknowledged version is restorable', async () => {
  const dir = tempDir('vigil-agent-repl-');
  const source = path.join(dir, 'data');
  const store = path.join(dir, 'store');
  fs.mkdirSync(source);
  const written = new Map<string, Set<string>>();
  const put = (p: string, content: string) => {
    const abs = path.join(source, p);
    fs.mkdirSync(path.dirname(abs), { recursive: true });
    fs.writeFileSync(abs, content);
    if (!written.has(p)) {
      written.set(p, new Set());
    }
    written.get(p)?.add(content);
  };
  for (let i = 0; i < 20; i++) {
    put(`start/${i}.txt`, `initial ${i}`);
  }
  const file = writeConfig(
    dir,
    baseConfig(dir, {
      processes: [
        {
          name: 'cdp',
          kind: 'replicator',
          source,
          target: store,
          retention: '1h',
          autoRestart: true,
          stopTimeout: '5s',
        },
      ],
    })
  );
  const agent = await startAgent(file);
  agents.push(agent);
  const first = await waitFor('the replicator to catch up', async () => {
    const p = await cdp(agent);
    return p.state === 'running' && p.protection?.state === 'watching' && p.protection.pendingChanges === 0
      ? p
      : undefined;
  });
  assert.equal(first.kind, 'replicator');
  assert.equal(first.protection.lagSeconds, 0);
  assert.equal(first.protection.message, null);
  await waitMirror(source, store);
  const metrics = await read(`${agent.baseUrl}/metrics`);
  assert.match(metrics.text, /vigil_agent_process_protection_lag_seconds\{process="cdp",kind="replicator"\} 0/);

  // A burst of writes, with kill -9 in the middle of it.
  const statusFile = path.join(dir, 'state', 'replicator', 'cdp.json');
  let ackedSeq = 0;
  for (let i = 0; i < 300; i++) {
    put(`burst/${i % 10}/f${i}.txt`, `burst ${i}`);
    put('hot.txt', `hot ${i}`);
    if (i % 50 === 0 && i < 150) {
      // Let some of the burst be captured before the kill, so there are versions to lose.
      const mirrored = path.join(store, 'mirror', 'hot.txt');
      await waitFor(
        `hot ${i} to be captured`,
        () => fs.existsSync(mirrored) && fs.readFileSync(mirrored, 'utf8') === `hot ${i}`
      );
    }
    if (i === 150) {
      ackedSeq = readStatus(statusFile)?.journal.seq ?? 0;
      process.kill(first.pid, 'SIGKILL');
    }
  }
  assert.ok(ackedSeq > 0, 'some of the burst was acknowledged before the kill');
  // More while it is down (or just coming back): found by the catch-up or by the watch.
  for (let i = 0; i < 50; i++) {
    put(`while-down/${i}.txt`, `while down ${i}`);
  }
  fs.rmSync(path.join(source, 'start/0.txt'));
  written.delete('start/0.txt');
  fs.renameSync(path.join(source, 'start/1.txt'), path.join(source, 'start/one.txt'));
  written.set('start/one.txt', written.get('start/1.txt') as Set<string>);

  const restarted = await waitFor(
    'the agent to restart the replicator and it to catch up',
    async () => {
      const p = await cdp(agent);
      return p.generation === 2 &&
        p.state === 'running' &&
        p.protection?.state === 'watching' &&
        p.protection.pendingChanges === 0
        ? p
        : undefined;
    },
    30_000
  );
  assert.equal(restarted.lastExit.signal, 'SIGKILL');
  assert.equal(restarted.protection.lagSeconds, 0);
  await waitMirror(source, store, 30_000);
  const events = (await read(`${agent.baseUrl}/v1/events?since=0`)).json.events as Array<Record<string, unknown>>;
  assert.ok(events.some((e) => e.type === 'crashed' && e.signal === 'SIGKILL'));
  assert.ok(events.some((e) => e.type === 'start_done' && String(e.requestedBy).includes('autoRestart')));

  // Every record acknowledged before the kill is still there, and every file version in the
  // journal is content that was really written to that path (never a torn mix).
  const records = journal(store);
  const seqs = new Set(records.map((r) => r.q));
  for (let q = 1; q <= ackedSeq; q++) {
    assert.ok(seqs.has(q), `acknowledged record ${q} survived`);
  }
  const hot: Array<{ at: number; h: string }> = [];
  for (const r of records) {
    if (r.op !== 'file') {
      continue;
    }
    const content = fs.readFileSync(path.join(store, 'objects', r.h.slice(0, 2), r.h), 'utf8');
    assert.equal(storeHash(store, content), r.h, `object of ${r.p}`);
    const expected =
      written.get(r.p) ?? (r.p === 'start/0.txt' || r.p === 'start/1.txt' ? new Set([content]) : undefined);
    // writeFileSync truncates before it writes: the empty file in between is a real state too.
    assert.ok(
      expected?.has(content) || content === '',
      `${r.p}: version ${r.h} (${JSON.stringify(content)}) was written`
    );
    if (r.p === 'hot.txt') {
      hot.push({ at: r.at, h: r.h });
    }
  }
  assert.ok(hot.length >= 2, 'several versions of hot.txt');
  // Each version of hot.txt restores to exactly its content.
  for (const v of [hot[0], hot[Math.floor(hot.length / 2)], hot[hot.length - 1]]) {
    const to = path.join(tempDir('vigil-restored-'), 'out');
    restore({ store, at: v?.at as number, to, path: 'hot.txt' });
    assert.equal(storeHash(store, fs.readFileSync(path.join(to, 'hot.txt'))), v?.h);
  }
  const to = path.join(tempDir('vigil-restored-'), 'out');
  restore({ store, at: Date.now(), to });
  assert.deepEqual(diffTrees(snapshot(source), snapshot(to)), []);
});

test('a stopped replicator reports growing lag from its last safe point', async () => {
  const dir = tempDir('vigil-agent-repl-');
  const source = path.join(dir, 'data');
  fs.mkdirSync(source);
  fs.writeFileSync(path.join(source, 'a.txt'), 'a');
  const file = writeConfig(
    dir,
    baseConfig(dir, { processes: [{ name: 'cdp', kind: 'replicator', source, target: path.join(dir, 'store') }] })
  );
  const agent = await startAgent(file);
  agents.push(agent);
  await waitFor('watching', async () => (await cdp(agent)).protection?.state === 'watching');
  const stopped = await read(`${agent.baseUrl}/v1/processes/cdp`);
  assert.equal(stopped.status, 200);
  const { control } = await import('./helpers');
  const r = await control(`${agent.baseUrl}/v1/processes/cdp/stop`, { reason: 'test', requestedBy: 'test' });
  assert.equal(r.status, 202, r.text);
  const down = await waitFor('lag to grow while stopped', async () => {
    const p = await cdp(agent);
    return p.protection?.state === 'not_running' && p.protection.lagSeconds > 0.2 ? p : undefined;
  });
  assert.equal(down.protection.pendingChanges, null);
  assert.match(down.protection.message, /not running; changes since .* are not protected/);
  const debug = await request(`${agent.baseUrl}/debug`, { token: CONTROL_TOKEN });
  assert.equal(debug.status, 200);
  assert.match(debug.text, /"statusFile"/);
});

test('after the agent is killed, the replicator keeps protecting and the next agent adopts it', async () => {
  const dir = tempDir('vigil-agent-repl-');
  const source = path.join(dir, 'data');
  const store = path.join(dir, 'store');
  fs.mkdirSync(source);
  const file = writeConfig(
    dir,
    baseConfig(dir, { processes: [{ name: 'cdp', kind: 'replicator', source, target: store }] })
  );
  const first = await startAgent(file);
  agents.push(first);
  const before = await waitFor('watching', async () => {
    const p = await cdp(first);
    return p.protection?.state === 'watching' ? p : undefined;
  });
  await first.stop('SIGKILL');
  // Nobody supervises it now, and it still captures.
  fs.writeFileSync(path.join(source, 'while-the-agent-is-down.txt'), 'still protected');
  await waitMirror(source, store);
  const second = await startAgent(file);
  agents.push(second);
  const adopted = await cdp(second);
  assert.equal(adopted.pid, before.pid);
  assert.equal(adopted.generation, before.generation);
  assert.equal(adopted.state, 'running');
  assert.equal(adopted.protection.state, 'watching');
  const events = (await read(`${second.baseUrl}/v1/events?since=0`)).json.events as Array<Record<string, unknown>>;
  assert.ok(events.some((e) => e.type === 'adopted' && e.pid === before.pid));
  // Stopping the agent stops the replicator it adopted (and the lease is released).
  assert.deepEqual(await second.stop('SIGTERM'), { code: 0, signal: null });
  await waitFor('the replicator to be gone', () => {
    try {
      process.kill(before.pid, 0);
      return false;
    } catch {
      return true;
    }
  });
  assert.ok(!fs.existsSync(path.join(store, 'lease.json')));
});
