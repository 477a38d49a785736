// The store under failure: kill -9 during random changes (again and again), a full disk, a
// lease holder frozen past its staleness that wakes up and writes on. Nothing acknowledged is
// lost, nothing unwritten is recorded, and the replicator always starts again.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { restoreAsync } from '../src/replicator/restore';
import { forEachRecord, resolveChain } from '../src/replicator/segments';
import {
  baseConfig,
  control,
  killMarked,
  read,
  startAgent,
  waitFor,
  writeConfig,
  type RunningAgent,
  tempDirsRemovedAfter,
} from './helpers';
import { diffMeta, metaSnapshot, xattr } from './metadata-helpers';
import {
  badObjects,
  diffTrees,
  journal,
  killReplicators,
  replicatorDirs,
  snapshot,
  startReplicator,
  waitMirror,
  waitState,
} from './replicator-helpers';

const tempDir = tempDirsRemovedAfter();

after(killReplicators);

/** A small deterministic generator (xorshift32), so that a failing run can be repeated with its seed. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 2 ** 32;
  };
}

/**
 * One random change under `root`: create, rewrite, append, delete, rename, chmod, mkdir, rmdir,
 * symlink; and with `meta` (as root), a new owner or extended attribute of a file or directory.
 */
function randomChange(root: string, rand: () => number, n: number, meta = false): void {
  const pick = <T>(xs: T[]) => xs[Math.floor(rand() * xs.length)] as T;
  const all = (fs.readdirSync(root, { recursive: true }) as string[]).map((p) => path.join(root, p));
  const files = all.filter((p) => fs.lstatSync(p).isFile());
  const dirs = [root, ...all.filter((p) => fs.lstatSync(p).isDirectory())];
  const content = () => {
    const size = rand() < 0.1 ? 100_000 + Math.floor(rand() * 900_000) : Math.floor(rand() * 5000);
    return Buffer.alloc(size, `change ${n} `);
  };
  const r = rand();
  try {
    if (meta && rand() < 0.2) {
      const p = pick([...files, ...dirs.slice(1)]);
      if (p === undefined) {
        return;
      }
      if (rand() < 0.5) {
        fs.chownSync(p, pick([0, 65534, 4242]), pick([0, 65534, 4343]));
      } else {
        xattr.setAttributeSync(p, `user.k${Math.floor(rand() * 3)}`, `change ${n}`);
      }
      return;
    }
    if (r < 0.3 || files.length < 5) {
      fs.writeFileSync(path.join(pick(dirs), `f${n}.txt`), content());
    } else if (r < 0.5) {
      fs.writeFileSync(pick(files), content());
    } else if (r < 0.6) {
      fs.appendFileSync(pick(files), ` appended ${n}`);
    } else if (r < 0.7) {
      fs.rmSync(pick(files));
    } else if (r < 0.78) {
      fs.renameSync(pick(files), path.join(pick(dirs), `moved${n}.txt`));
    } else if (r < 0.84) {
      fs.chmodSync(pick(files), rand() < 0.5 ? 0o600 : 0o644);
    } else if (r < 0.92 && dirs.length < 12) {
      fs.mkdirSync(path.join(pick(dirs), `d${n}`));
    } else if (r < 0.95 && dirs.length > 1) {
      fs.rmSync(pick(dirs.slice(1)), { recursive: true });
    } else if (r < 0.98 && dirs.length > 2) {
      const from = pick(dirs.slice(1));
      const to = path.join(pick(dirs.filter((x) => x !== from && !x.startsWith(from + path.sep))), `r${n}`);
      fs.renameSync(from, to);
    } else {
      fs.symlinkSync(`f${n - 1}.txt`, path.join(pick(dirs), `l${n}`));
    }
  } catch (e) {
    // A race with another random change (a renamed directory, say) is part of the game.
    if (
      !['ENOENT', 'ENOTDIR', 'EINVAL', 'EEXIST', 'ENOTEMPTY'].includes((e as NodeJS.ErrnoException).code ?? '') &&
      !/os error 2\)/.test(String(e))
    ) {
      throw e;
    }
  }
}

const LOOPS = Number(process.env.VIGIL_KILL_LOOPS ?? 6);

test(`kill -9 during random changes, ${LOOPS} times: every acknowledged state restores exactly (owners, modes, mtimes and attributes too, as root), every object hashes to its name`, async () => {
  // As root, owners and extended attributes change too, and every restore must have them.
  const meta = process.getuid?.() === 0;
  const seed = Number(process.env.VIGIL_KILL_SEED ?? Math.floor(Math.random() * 2 ** 31));
  const rand = rng(seed);
  let n = 0;
  const d = replicatorDirs('vigil-kill-');
  for (let i = 0; i < 20; i++) {
    randomChange(d.source, rand, n++, meta);
  }
  const args = ['--rescan-every', '1h', '--checkpoint-every', '200ms'];
  let r = startReplicator(d.source, d.store, d.status, args);
  const points: Array<{ at: number; tree: ReturnType<typeof snapshot>; meta?: ReturnType<typeof metaSnapshot> }> = [];
  let kills = 0;
  for (let loop = 0; loop < LOOPS; loop++) {
    await waitState(r, 'watching', 30_000);
    await waitMirror(d.source, d.store, 30_000);
    // Everything is acknowledged: this moment must restore exactly, whatever happens next.
    points.push({ at: Date.now(), tree: snapshot(d.source), ...(meta ? { meta: metaSnapshot(d.source) } : {}) });
    await new Promise((resolve) => setTimeout(resolve, 3));
    const killAt = Date.now() + 20 + rand() * 300;
    const until = killAt + rand() * 200;
    let killed = false;
    while (Date.now() < until || !killed) {
      randomChange(d.source, rand, n++, meta);
      if (!killed && Date.now() >= killAt) {
        process.kill(r.pid, 'SIGKILL');
        killed = true;
        kills++;
      }
      await new Promise((resolve) => setTimeout(resolve, rand() * 4));
    }
    await r.exited;
    r = startReplicator(d.source, d.store, d.status, args);
  }
  await waitState(r, 'watching', 30_000);
  await waitMirror(d.source, d.store, 30_000);
  points.push({ at: Date.now(), tree: snapshot(d.source), ...(meta ? { meta: metaSnapshot(d.source) } : {}) });
  await r.stop();

  const context = `seed ${seed} (VIGIL_KILL_SEED), ${kills} kills, ${n} changes`;
  assert.deepEqual(badObjects(d.store), [], `objects whose content does not hash to their name; ${context}`);
  const chain = resolveChain(d.store);
  assert.deepEqual(chain.problems, [], context);
  const damage = forEachRecord(chain, -Infinity, () => undefined).filter((x) => x.skipped.length > 0 || x.missing);
  assert.deepEqual(damage, [], `damage other than torn tails; ${context}`);
  const qs = journal(d.store).map((x) => x.q);
  assert.ok(
    qs.every((q, i) => i === 0 || q > (qs[i - 1] as number)),
    `sequence numbers increase; ${context}`
  );
  for (const [i, p] of points.entries()) {
    const to = path.join(tempDir('vigil-restored-'), 'out');
    const res = await restoreAsync({ store: d.store, at: p.at, to });
    assert.deepEqual(res.errors, [], `restore at point ${i}; ${context}`);
    assert.deepEqual(diffTrees(p.tree, snapshot(to)), [], `restore at point ${i} of ${points.length}; ${context}`);
    if (p.meta) {
      assert.deepEqual(res.metadata, [], `metadata of the restore at point ${i}; ${context}`);
      assert.deepEqual(
        diffMeta(p.meta, metaSnapshot(to)),
        [],
        `owners, modes, mtimes, attributes at point ${i} of ${points.length}; ${context}`
      );
    }
    fs.rmSync(path.dirname(to), { recursive: true, force: true });
  }
});

test(`kill -9 of the replicator, its agent or both, ${LOOPS} times, with pruning: every acknowledged state inside the window restores exactly`, async () => {
  const seed = Number(process.env.VIGIL_KILL_SEED ?? Math.floor(Math.random() * 2 ** 31));
  const rand = rng(seed);
  let n = 0;
  const d = replicatorDirs('vigil-kill-agent-');
  for (let i = 0; i < 20; i++) {
    randomChange(d.source, rand, n++);
  }
  // A short retention: pruning runs every second or so, in the middle of it all.
  const config = writeConfig(
    d.root,
    baseConfig(d.root, {
      processes: [
        { name: 'cdp', kind: 'replicator', source: d.source, target: d.store, retention: '10s', stopTimeout: '5s' },
      ],
    })
  );
  const agents: RunningAgent[] = [];
  const newAgent = async () => {
    const a = await startAgent(config);
    agents.push(a);
    return a;
  };
  const cdp = async (a: RunningAgent) => (await read(`${a.baseUrl}/v1/status`)).json.processes[0];
  let agent = await newAgent();
  const points: Array<{ at: number; tree: ReturnType<typeof snapshot> }> = [];
  const kills: string[] = [];
  // A replicator killed is seen gone by its agent within a moment (an adopted one is polled):
  // until then the agent may still report it running. Wait for another pid.
  let killedPid = -1;
  const running = async () => {
    const x = await cdp(agent);
    if (x.state !== 'running') {
      await control(`${agent.baseUrl}/v1/processes/cdp/start`, { reason: 'kill loop' });
    }
    return x.state === 'running' &&
      x.pid !== killedPid &&
      x.protection?.state === 'watching' &&
      x.protection.pendingChanges === 0
      ? x
      : undefined;
  };
  try {
    for (let loop = 0; loop < LOOPS; loop++) {
      const p = await waitFor('the replicator to run and watch', running, 30_000, 100);
      await waitMirror(d.source, d.store, 30_000).catch(async (e: Error) => {
        const st = await cdp(agent);
        const logf = path.join(d.root, 'state', 'logs', 'cdp.log');
        throw new Error(
          `${e.message}\nkills ${kills.join(' ')}\n${JSON.stringify(st)}\n${fs.readFileSync(logf, 'utf8').split('\n').slice(-40).join('\n')}`
        );
      });
      points.push({ at: Date.now(), tree: snapshot(d.source) });
      await new Promise((resolve) => setTimeout(resolve, 3));
      const killAt = Date.now() + 20 + rand() * 300;
      const until = killAt + rand() * 200;
      const what = (['replicator', 'agent', 'both'] as const)[Math.floor(rand() * 3)] as
        'replicator' | 'agent' | 'both';
      let killed = false;
      while (Date.now() < until || !killed) {
        randomChange(d.source, rand, n++);
        if (!killed && Date.now() >= killAt) {
          if (what !== 'agent') {
            process.kill(p.pid, 'SIGKILL');
            killedPid = p.pid;
          }
          if (what !== 'replicator') {
            process.kill(agent.child.pid as number, 'SIGKILL');
          }
          kills.push(what);
          killed = true;
        }
        await new Promise((resolve) => setTimeout(resolve, rand() * 4));
      }
      if (what !== 'replicator') {
        await agent.exited;
        agent = await newAgent();
      }
    }
    await waitFor('the last catch-up', running, 30_000, 100);
    await waitMirror(d.source, d.store, 30_000).catch(async (e: Error) => {
      const st = await cdp(agent);
      const logf = path.join(d.root, 'state', 'logs', 'cdp.log');
      throw new Error(
        `${e.message}\nkills ${kills.join(' ')}\n${JSON.stringify(st)}\n${fs.readFileSync(logf, 'utf8').split('\n').slice(-25).join('\n')}`
      );
    });
    points.push({ at: Date.now(), tree: snapshot(d.source) });
  } finally {
    for (const a of agents) {
      await a.stop('SIGKILL');
    }
    killMarked(d.root);
  }
  const context = `seed ${seed} (VIGIL_KILL_SEED), kills ${kills.join(' ')}, ${n} changes`;
  assert.deepEqual(badObjects(d.store), [], `objects whose content does not hash to their name; ${context}`);
  const chain = resolveChain(d.store);
  assert.deepEqual(chain.problems, [], context);
  const damage = forEachRecord(chain, -Infinity, () => undefined).filter((x) => x.skipped.length > 0 || x.missing);
  assert.deepEqual(damage, [], `damage other than torn tails; ${context}`);
  let checked = 0;
  for (const [i, p] of points.entries()) {
    const to = path.join(tempDir('vigil-restored-'), 'out');
    const res = await restoreAsync({ store: d.store, at: p.at, to }).catch((e: Error) => e);
    try {
      // Older than the window kept: pruned, as it should be.
      if (res instanceof Error) {
        assert.match(res.message, /before the earliest restorable point .*pruned by retention/, context);
        continue;
      }
      assert.deepEqual(res.errors, [], `restore at point ${i}; ${context}`);
      assert.deepEqual(diffTrees(p.tree, snapshot(to)), [], `restore at point ${i} of ${points.length}; ${context}`);
      checked++;
    } finally {
      fs.rmSync(path.dirname(to), { recursive: true, force: true });
    }
  }
  assert.ok(checked >= 2, `points inside the window: ${checked}; ${context}`);
});

test('a full store: the replicator stops at once with the reason, leaves no empty lease, and starts again once there is room', async (t) => {
  if (process.getuid?.() !== 0) {
    t.skip('needs root, to mount a small file system for the store');
    return;
  }
  const d = replicatorDirs('vigil-full-');
  const mnt = path.join(d.root, 'small');
  fs.mkdirSync(mnt);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', mnt]);
  t.after(() => execFileSync('umount', ['-l', mnt]));
  const store = path.join(mnt, 'store');
  fs.writeFileSync(path.join(d.source, 'a.txt'), 'before the disk filled up');
  let r = startReplicator(d.source, store, d.status);
  await waitState(r);
  await waitMirror(d.source, store);
  // Fill the file system, then change the source: the content cannot be stored.
  const filler = path.join(mnt, 'filler');
  const fd = fs.openSync(filler, 'w');
  try {
    for (;;) {
      fs.writeSync(fd, Buffer.alloc(256 * 1024));
    }
  } catch (e) {
    assert.equal((e as NodeJS.ErrnoException).code, 'ENOSPC');
  } finally {
    fs.closeSync(fd);
  }
  fs.writeFileSync(path.join(d.source, 'b.bin'), Buffer.alloc(1024 * 1024, 7));
  // Measured on the monotonic clock: the wall clock may be stepped while the test runs.
  const stoppedAt = performance.now();
  assert.deepEqual(await r.exited, { code: 1, signal: null });
  const took = Math.round(performance.now() - stoppedAt);
  assert.ok(took < 4000, `stopped at once (${took} ms)`);
  assert.match(r.log(), /ENOSPC/);
  // A start while it is still full fails at once too, and leaves no half-written lease.
  r = startReplicator(d.source, store, d.status);
  assert.deepEqual(await r.exited, { code: 1, signal: null });
  assert.match(r.log(), /ENOSPC/);
  const lease = path.join(store, 'lease.json');
  assert.ok(!fs.existsSync(lease) || fs.statSync(lease).size > 0, 'no empty lease.json');
  // What an earlier version left in this situation (an empty lease.json, after kill -9):
  // taken over once there is room again.
  fs.truncateSync(filler, 4 * 1024 * 1024);
  fs.writeFileSync(lease, '');
  fs.rmSync(filler);
  r = startReplicator(d.source, store, d.status);
  await waitState(r, 'watching', 15_000);
  await waitMirror(d.source, store);
  await r.stop();
});

test('a holder frozen past its lease: another takes over, and what the frozen one does on waking never reaches the journal', async () => {
  const d = replicatorDirs('vigil-frozen-');
  fs.writeFileSync(path.join(d.source, 'first.txt'), 'one');
  const stale = ['--lease-stale-after', '2s'];
  const a = startReplicator(d.source, d.store, d.status, ['--node', 'node-a', '--name', 'cdp', ...stale]);
  await waitState(a);
  await waitMirror(d.source, d.store);
  const b = startReplicator(d.source, d.store, path.join(d.root, 'status-b.json'), [
    '--node',
    'node-b',
    '--name',
    'cdp',
    ...stale,
  ]);
  await waitState(b, 'waiting_for_lease');
  // A pauses (a frozen VM, SIGSTOP) with a change pending; B takes the stale lease.
  process.kill(a.pid, 'SIGSTOP');
  fs.writeFileSync(path.join(d.source, 'while-frozen.txt'), 'two');
  await waitState(b, 'watching', 15_000);
  for (let i = 0; i < 20; i++) {
    fs.writeFileSync(path.join(d.source, `after-${i}.txt`), `three ${i}`);
  }
  await waitMirror(d.source, d.store);
  // A wakes up with its pending work: it must find out before it writes, and stop.
  process.kill(a.pid, 'SIGCONT');
  assert.deepEqual(await a.exited, { code: 1, signal: null });
  assert.match(a.log(), /lease on the store was taken by another replicator/);
  fs.writeFileSync(path.join(d.source, 'last.txt'), 'four');
  await waitMirror(d.source, d.store);
  await b.stop();
  const chain = resolveChain(d.store);
  assert.deepEqual(chain.problems, []);
  const damage = forEachRecord(chain, -Infinity, () => undefined).filter((x) => x.skipped.length > 0 || x.missing);
  assert.deepEqual(damage, []);
  const to = path.join(tempDir('vigil-restored-'), 'out');
  await restoreAsync({ store: d.store, at: Date.now(), to });
  assert.deepEqual(diffTrees(snapshot(d.source), snapshot(to)), []);
  // A new start reads everything back, with nothing to report.
  const c = startReplicator(d.source, d.store, d.status, ['--node', 'node-a', '--name', 'cdp']);
  const st = await waitState(c);
  assert.deepEqual(st.errors, []);
  assert.equal(st.catchUp.changed, 0, 'the journal already had every change');
  await c.stop();
});
