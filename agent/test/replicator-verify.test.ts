// `vigil-agent verify` on real stores written by the real replicator: clean, each kind of
// damage reported with where it is, --repair, a live store, and the scheduled verify in /v1/status.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { forEachRecord, resolveChain } from '../src/replicator/segments';
import {
  baseConfig,
  killMarked,
  read,
  runCliToEnd,
  startAgent,
  tempDirsRemovedAfter,
  waitFor,
  writeConfig,
  type RunningAgent,
} from './helpers';
import {
  killReplicators,
  replicatorDirs,
  startReplicator,
  storeHash,
  waitMirror,
  waitState,
} from './replicator-helpers';

after(killReplicators);
const tempDir = tempDirsRemovedAfter();

const verify = async (...args: string[]) => {
  const r = await runCliToEnd(['verify', ...args]);
  return { ...r, json: args.includes('--json') && r.stdout.trim().startsWith('{') ? JSON.parse(r.stdout) : undefined };
};

/** A store with `files` captured, the replicator stopped cleanly (no lease left). */
async function capturedStore(files: Record<string, string | Buffer>) {
  const d = replicatorDirs('vigil-verify-');
  for (const [p, c] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(d.source, p)), { recursive: true });
    fs.writeFileSync(path.join(d.source, p), c);
  }
  const r = startReplicator(d.source, d.store, d.status);
  await waitState(r);
  await waitMirror(d.source, d.store);
  assert.equal((await r.stop()).code, 0);
  assert.equal(fs.existsSync(path.join(d.store, 'lease.json')), false);
  return d;
}

const obj = (store: string, content: string | Buffer) => {
  const h = storeHash(store, content);
  return { h, file: path.join(store, 'objects', h.slice(0, 2), h), rel: `objects/${h.slice(0, 2)}/${h}` };
};

/** Where the journal keeps the record of `p` (its last one). */
function recordOf(store: string, p: string): { q: number; segment: string; offset: number; file: string } {
  let out: { q: number; segment: string; offset: number; file: string } | undefined;
  forEachRecord(resolveChain(store), -Infinity, (r, seg, offset) => {
    if (r.op === 'file' && r.p === p) {
      out = { q: r.q, segment: seg.name, offset, file: seg.file };
    }
  });
  assert.ok(out, `no record of ${p}`);
  return out;
}

const big = (tag: string) => Buffer.alloc(200 * 1024, tag); // above the inline limit: no copy in the journal

test('a clean store verifies clean: exit 0, no problems', async () => {
  const d = await capturedStore({ 'a.txt': 'alpha', 'dir/b.txt': 'beta', 'dir/big.bin': big('x') });
  fs.symlinkSync('a.txt', path.join(d.source, 'unused-link')); // the source is not read by verify
  const r = await verify('--store', d.store, '--json');
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.equal(r.json.ok, true);
  assert.deepEqual(r.json.problems, []);
  assert.equal(r.json.checked.objects, 3);
  assert.ok(r.json.checked.records >= 5);
  const human = await verify('--store', d.store);
  assert.equal(human.code, 0);
  assert.match(human.stdout, /no problems/);
});

test('each kind of damage is reported with its path, object, segment and offset; exit 1', async () => {
  const d = await capturedStore({
    'gone.bin': big('g'),
    'bad.bin': big('b'),
    'garbled.txt': 'this record will be garbled',
    'after.txt': 'a record after the garbled one',
    'edited.txt': 'the mirror copy of this is edited',
    'removed.txt': 'the mirror copy of this is removed',
  });
  const gone = obj(d.store, big('g'));
  fs.rmSync(gone.file);
  const bad = obj(d.store, big('b'));
  fs.chmodSync(bad.file, 0o644);
  fs.writeFileSync(path.join(d.store, 'mirror', 'bad.bin.keep'), ''); // an extra mirror file too
  // Damage in place (the mirror holds a copy of its own).
  const fd = fs.openSync(bad.file, 'r+');
  fs.writeSync(fd, 'XXXX', 1000);
  fs.closeSync(fd);
  const strayContent = Buffer.from('nothing names me');
  const stray = obj(d.store, strayContent);
  fs.writeFileSync(stray.file, strayContent);
  const garbled = recordOf(d.store, 'garbled.txt');
  const seg = fs.openSync(garbled.file, 'r+');
  fs.writeSync(seg, 'ZZZZ', garbled.offset + 20);
  fs.closeSync(seg);
  const edited = path.join(d.store, 'mirror', 'edited.txt');
  fs.rmSync(edited);
  fs.writeFileSync(edited, 'edited by hand');
  fs.rmSync(path.join(d.store, 'mirror', 'removed.txt'));

  const r = await verify('--store', d.store, '--json');
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.equal(r.json.ok, false);
  const of = (kind: string) => r.json.problems.filter((p: { kind: string }) => p.kind === kind);
  const gp = recordOf(d.store, 'gone.bin');
  assert.deepEqual(
    of('missing-object').map((p: Record<string, unknown>) => [p.path, p.object, p.q, p.segment, p.offset]),
    [['gone.bin', gone.rel, gp.q, gp.segment, gp.offset]]
  );
  const [damaged] = of('damaged-object');
  assert.equal(damaged.path, 'bad.bin');
  assert.equal(damaged.object, bad.rel);
  assert.equal(damaged.expected, bad.h);
  assert.notEqual(damaged.found, bad.h);
  assert.deepEqual(
    of('journal-damage').map((p: Record<string, unknown>) => [p.segment, p.offset]),
    [[garbled.segment, garbled.offset]]
  );
  // garbled.txt's content is named by no readable record any more: a stray too (kept by --repair, see below).
  assert.deepEqual(
    of('stray-object')
      .map((p: { object: string }) => p.object)
      .sort(),
    [stray.rel, obj(d.store, 'this record will be garbled').rel].sort()
  );
  // bad.bin's mirror file is a copy of its own, not the damaged object: it still matches.
  assert.deepEqual(
    of('mirror-differs')
      .map((p: { path: string }) => p.path)
      .sort(),
    ['edited.txt']
  );
  // garbled.txt's record is unreadable, so the journal's tree does not have it: its mirror file is extra.
  assert.deepEqual(
    of('mirror-extra')
      .map((p: { path: string }) => p.path)
      .sort(),
    ['bad.bin.keep', 'garbled.txt']
  );
  assert.deepEqual(
    of('mirror-missing').map((p: { path: string }) => p.path),
    ['removed.txt']
  );
  // The record after the damage was kept.
  assert.equal(fs.readFileSync(path.join(d.store, 'mirror', 'after.txt'), 'utf8'), 'a record after the garbled one');

  const human = await verify('--store', d.store);
  assert.equal(human.code, 1);
  assert.match(
    human.stdout,
    new RegExp(
      `missing object: gone\\.bin \\(q ${gp.q}, journal ${gp.segment} at byte ${gp.offset}\\): its content ${gone.rel} is not in the store`
    )
  );
  assert.match(
    human.stdout,
    new RegExp(`journal ${garbled.segment}: \\d+ undecodable bytes at byte ${garbled.offset} \\(checksum mismatch\\)`)
  );
  assert.match(human.stdout, /mirror: mirror\/removed\.txt is missing/);
  assert.match(human.stdout, /(\d+) problem\(s\)$/m);

  // --repair keeps the strays while the journal is damaged: one may be an unreadable record's content.
  const rep = await verify('--store', d.store, '--repair', '--json');
  assert.equal(rep.code, 1);
  for (const p of rep.json.problems.filter((x: { kind: string }) => x.kind === 'stray-object')) {
    assert.equal(p.repair.done, false);
    assert.match(p.repair.how, /kept: the journal is damaged/);
    assert.ok(fs.existsSync(path.join(d.store, p.object)));
  }
  const jd = rep.json.problems.find((x: { kind: string }) => x.kind === 'journal-damage');
  assert.equal(jd.repair.done, false);
  assert.match(jd.repair.how, /never deleted or rewritten/);
});

test('a truncated last record is reported with its segment and offset when no writer holds the store', async () => {
  const d = await capturedStore({ 'a.txt': 'alpha', 'b.txt': 'beta' });
  const last = resolveChain(d.store).segments.at(-1) as { file: string; name: string };
  const size = fs.statSync(last.file).size;
  fs.truncateSync(last.file, size - 3);
  const r = await verify('--store', d.store, '--json');
  assert.equal(r.code, 1);
  const [tail] = r.json.problems.filter((p: { kind: string }) => p.kind === 'journal-tail');
  assert.equal(tail.segment, last.name);
  assert.ok(typeof tail.offset === 'number' && tail.offset < size, JSON.stringify(tail));
});

test('--repair rewrites a missing object from the source and the mirror from the objects, and says what it could not repair', async () => {
  const d = await capturedStore({
    'keep.bin': big('k'),
    'changed.bin': big('c'),
    'm/one.txt': 'one',
    'm/two.txt': 'two',
  });
  const keep = obj(d.store, big('k'));
  const changed = obj(d.store, big('c'));
  fs.rmSync(keep.file);
  fs.rmSync(changed.file);
  // Its only other copies are gone too: the mirror's and the source's (rewritten since).
  fs.rmSync(path.join(d.store, 'mirror', 'changed.bin'));
  fs.rmSync(path.join(d.store, 'mirror', 'keep.bin'));
  fs.writeFileSync(path.join(d.source, 'changed.bin'), big('C'));
  fs.rmSync(path.join(d.store, 'mirror', 'm'), { recursive: true });
  fs.writeFileSync(path.join(d.store, 'mirror', 'extra.txt'), 'not in the journal');

  const before = await verify('--store', d.store, '--json');
  assert.equal(before.code, 1);
  const r = await verify('--store', d.store, '--repair', '--source', d.source, '--json');
  assert.equal(r.code, 1, r.stdout + r.stderr); // one problem could not be repaired
  const byPath = (kind: string, p: string) =>
    r.json.problems.find((x: { kind: string; path: string }) => x.kind === kind && x.path === p);
  assert.equal(byPath('missing-object', 'keep.bin').repair.done, true);
  assert.match(byPath('missing-object', 'keep.bin').repair.how, /from .*keep\.bin, which still has that content/);
  assert.equal(byPath('missing-object', 'changed.bin').repair.done, false);
  assert.match(byPath('missing-object', 'changed.bin').repair.how, /changed\.bin \(other content now\)/);
  assert.equal(byPath('mirror-missing', 'm').repair.done, true);
  assert.equal(byPath('mirror-extra', 'extra.txt').repair.done, true);
  assert.equal(byPath('mirror-missing', 'keep.bin').repair.done, true);
  assert.equal(byPath('mirror-missing', 'changed.bin').repair.done, false);
  assert.equal(fs.existsSync(path.join(d.store, 'lease.json')), false, 'the lease taken for the repair is released');

  assert.equal(storeHash(d.store, fs.readFileSync(keep.file)), keep.h);
  assert.equal(fs.readFileSync(path.join(d.store, 'mirror', 'm', 'two.txt'), 'utf8'), 'two');
  // What the repair wrote is owner-only, and the mirror holds copies, never the objects.
  assert.equal(fs.statSync(keep.file).mode & 0o777, 0o400);
  const rewritten = fs.statSync(path.join(d.store, 'mirror', 'keep.bin'));
  assert.equal(rewritten.mode & 0o077, 0, 'the rewritten mirror file is readable by others');
  assert.equal(rewritten.nlink, 1, 'the rewritten mirror file is a hard link to its object');
  assert.notEqual(rewritten.ino, fs.statSync(keep.file).ino);
  assert.equal(
    fs.statSync(path.join(d.store, 'mirror', 'm')).mode & 0o077,
    0,
    'a directory the repair made is searchable by others'
  );
  assert.equal(fs.existsSync(path.join(d.store, 'mirror', 'extra.txt')), false);
  const human = await verify('--store', d.store);
  assert.equal(human.code, 1);
  const lines = human.stdout.trim().split('\n');
  assert.equal(lines.length, 3, human.stdout); // the lost object, its mirror file, the summary
  assert.match(human.stdout, /missing object: changed\.bin/);
  assert.match(human.stdout, /mirror\/changed\.bin is missing/);
  // The source's new content is for the replicator to capture; the old version stays lost, named.
});

test('--repair is refused while a replicator holds the store; a live store verifies clean while it captures', async () => {
  const d = replicatorDirs('vigil-verify-live-');
  for (let i = 0; i < 50; i++) {
    fs.writeFileSync(path.join(d.source, `f${i}.txt`), `v0 ${i}`);
  }
  const r = startReplicator(d.source, d.store, d.status);
  await waitState(r);
  let writing = true;
  const writer = (async () => {
    for (let n = 1; writing; n++) {
      fs.writeFileSync(path.join(d.source, `f${n % 50}.txt`), `v${n} ${'x'.repeat(n % 300)}`);
      if (n % 7 === 0) {
        fs.rmSync(path.join(d.source, `f${(n * 3) % 50}.txt`), { force: true });
      }
      await new Promise((res) => setTimeout(res, 2));
    }
  })();
  try {
    for (let i = 0; i < 3; i++) {
      const v = await verify('--store', d.store, '--json');
      assert.equal(v.code, 0, JSON.stringify(v.json?.problems ?? v.stderr, null, 1));
      assert.equal(v.json.live, true);
    }
    const rep = await verify('--store', d.store, '--repair');
    assert.equal(rep.code, 1);
    assert.match(rep.stderr, /cannot repair .*: the store is leased to node .* stop the replicator first/);
  } finally {
    writing = false;
    await writer;
  }
  assert.equal((await r.stop()).code, 0);
});

test('usage errors exit 2', async () => {
  assert.equal((await verify()).code, 2);
  assert.equal((await verify('--store', tempDir(), '--bogus')).code, 2);
  const notStore = await verify('--store', tempDir());
  assert.equal(notStore.code, 2);
  assert.match(notStore.stderr, /is not a Vigil replicator store/);
});

test('verifyEvery: the agent shows the scheduled verify in /v1/status and as metrics, and a damaged store turns it red', async () => {
  const dir = tempDir('vigil-verify-agent-');
  const agents: RunningAgent[] = [];
  try {
    const source = path.join(dir, 'data');
    const store = path.join(dir, 'store');
    fs.mkdirSync(source);
    fs.writeFileSync(path.join(source, 'doc.bin'), big('d'));
    fs.writeFileSync(path.join(source, 'note.txt'), 'note');
    const file = writeConfig(
      dir,
      baseConfig(dir, {
        processes: [{ name: 'cdp', kind: 'replicator', source, target: store, verifyEvery: '1s', stopTimeout: '5s' }],
      })
    );
    const agent = await startAgent(file);
    agents.push(agent);
    const cdp = async () => (await read(`${agent.baseUrl}/v1/status`)).json.processes[0];
    const green = await waitFor(
      'a first clean verify',
      async () => {
        const p = await cdp();
        return p.protection?.verify?.ok === true ? p.protection.verify : undefined;
      },
      30_000
    );
    assert.equal(green.problems, 0);
    assert.equal(green.firstProblem, null);
    const m = (await read(`${agent.baseUrl}/metrics`)).text;
    assert.match(m, /vigil_replicator_verify_problems\{process="cdp",kind="replicator"\} 0/);
    assert.match(m, /vigil_replicator_verify_last_timestamp_seconds\{process="cdp",kind="replicator"\} \d+/);

    const doc = obj(store, big('d'));
    fs.rmSync(doc.file);
    const red = await waitFor(
      'a verify that finds the lost object',
      async () => {
        const p = await cdp();
        return p.protection?.verify?.ok === false ? p.protection.verify : undefined;
      },
      30_000
    );
    assert.ok(red.problems >= 1);
    assert.match(
      red.firstProblem,
      new RegExp(`missing object: doc\\.bin \\(q \\d+, journal seg-\\S+ at byte \\d+\\): its content ${doc.rel}`)
    );
    const m2 = (await read(`${agent.baseUrl}/metrics`)).text;
    assert.match(m2, /vigil_replicator_verify_problems\{process="cdp",kind="replicator"\} [1-9]/);
  } finally {
    for (const a of agents) {
      await a.stop('SIGKILL');
    }
    killMarked(dir);
  }
});
