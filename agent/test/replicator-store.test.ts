// The store's parts on their own: journal framing and torn tails, restore from records,
// retention pruning at the window's edge, the lease rules.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { JournalWriter, checkRecord, decode, frame, readJournal, recordSchema, type JournalRecord, type NewRecord } from '../src/replicator/journal';
import { RestoreError, parseTime, restore, versions } from '../src/replicator/restore';
import { StoreLayout, acquireLease, compact, prepareStore, releaseLease, renewLease } from '../src/replicator/store';
import { tempDir } from './helpers';
import { snapshot } from './replicator-helpers';
import { hashBuffer } from '../src/replicator/digest';

const rec = (q: number, at: number, p: string): JournalRecord => ({ q, at, op: 'dir', p, m: 0o755, mt: at });

test('a journal reads back every complete record and drops a torn or damaged tail', () => {
  const records = [rec(1, 1000, 'a'), rec(2, 2000, 'b'), rec(3, 3000, 'c')];
  const whole = Buffer.concat(records.map(frame));
  assert.deepEqual(decode(whole).records, records);
  assert.equal(decode(whole).damage, undefined);
  const lastStart = whole.length - frame(records[2] as JournalRecord).length;
  // Cut anywhere inside the last record: the first two survive, the rest is reported, never misread.
  for (let cut = lastStart + 1; cut < whole.length; cut++) {
    const r = decode(whole.subarray(0, cut));
    assert.deepEqual(r.records, records.slice(0, 2), `cut at ${cut}`);
    assert.equal(r.goodBytes, lastStart);
    assert.match(r.damage ?? '', /incomplete/);
  }
  // A flipped bit in the payload fails the checksum.
  const flipped = Buffer.from(whole);
  flipped[whole.length - 3] = (flipped[whole.length - 3] as number) ^ 0x20;
  const r = decode(flipped);
  assert.deepEqual(r.records, records.slice(0, 2));
  assert.match(r.damage ?? '', /checksum mismatch/);
  // Zeros after a crash (a preallocated tail) are not a record either.
  const zeros = decode(Buffer.concat([whole, Buffer.alloc(64)]));
  assert.deepEqual(zeros.records, records);
  assert.match(zeros.damage ?? '', /impossible frame length 0/);
});

test('opening the journal for writing cuts a torn tail off and appends after the last good record', async () => {
  const dir = tempDir('vigil-journal-');
  const file = path.join(dir, 'journal.log');
  const first = JournalWriter.open(file).writer;
  await first.append([{ at: 1000, op: 'dir', p: 'a', m: 0o755, mt: 1 } as NewRecord, { at: 1001, op: 'dir', p: 'b', m: 0o755, mt: 1 } as NewRecord]);
  first.close();
  const good = fs.statSync(file).size;
  fs.appendFileSync(file, frame(rec(3, 1002, 'torn')).subarray(0, 11));
  const { writer, read } = JournalWriter.open(file);
  assert.equal(read.records.length, 2);
  assert.match(read.damage ?? '', /incomplete/);
  assert.equal(fs.statSync(file).size, good, 'the torn tail is cut off');
  const [c] = await writer.append([{ at: 1003, op: 'del', p: 'a' } as NewRecord]);
  writer.close();
  assert.equal(c?.q, 3, 'sequence numbers continue after the last good record');
  const back = readJournal(file);
  assert.equal(back.damage, undefined);
  assert.deepEqual(
    back.records.map((r) => [r.q, r.op]),
    [
      [1, 'dir'],
      [2, 'dir'],
      [3, 'del'],
    ],
  );
});

/** A store written by hand: each step puts contents at a given time. */
async function storeWith(steps: { at: number; files: Record<string, string | null> }[]) {
  const root = tempDir('vigil-store-');
  const layout = new StoreLayout(root);
  prepareStore(layout);
  const { writer } = JournalWriter.open(layout.journal);
  const dirs = new Set<string>();
  for (const step of steps) {
    const records: NewRecord[] = [];
    for (const [p, content] of Object.entries(step.files)) {
      // As the replicator does: a directory is recorded before anything in it.
      const parent = path.dirname(p);
      if (parent !== '.' && !dirs.has(parent)) {
        dirs.add(parent);
        records.push({ at: step.at, op: 'dir', p: parent, m: 0o755, mt: step.at } as NewRecord);
      }
      if (content === null) {
        records.push({ at: step.at, op: 'del', p } as NewRecord);
        continue;
      }
      const h = hashBuffer(layout.hash, content);
      fs.mkdirSync(path.dirname(layout.object(h)), { recursive: true });
      fs.writeFileSync(layout.object(h), content);
      records.push({ at: step.at, op: 'file', p, h, s: content.length, m: 0o640, mt: step.at, ct: step.at, ino: 1 } as NewRecord);
    }
    await writer.append(records);
  }
  writer.close();
  return { root, layout };
}

function restoredFiles(store: string, at: number, sub?: string): Record<string, string> {
  const to = path.join(tempDir('vigil-restore-'), 'out');
  restore({ store, at, to, path: sub });
  const out: Record<string, string> = {};
  for (const [p, n] of snapshot(to)) if (n.type === 'file') out[p] = fs.readFileSync(path.join(to, p), 'utf8');
  return out;
}

test('restore rebuilds the tree as of any moment, with modes and times', async () => {
  const { root } = await storeWith([
    { at: 10_000, files: { 'a.txt': 'a1', 'd/b.txt': 'b1' } },
    { at: 20_000, files: { 'a.txt': 'a2' } },
    { at: 30_000, files: { 'd/b.txt': null, 'c.txt': 'c1' } },
  ]);
  assert.deepEqual(restoredFiles(root, 10_000), { 'a.txt': 'a1', 'd/b.txt': 'b1' });
  assert.deepEqual(restoredFiles(root, 19_999), { 'a.txt': 'a1', 'd/b.txt': 'b1' });
  assert.deepEqual(restoredFiles(root, 20_000), { 'a.txt': 'a2', 'd/b.txt': 'b1' });
  assert.deepEqual(restoredFiles(root, 99_000), { 'a.txt': 'a2', 'c.txt': 'c1' });
  assert.deepEqual(restoredFiles(root, 25_000, 'd'), { 'd/b.txt': 'b1' });
  assert.throws(() => restoredFiles(root, 9_999), (e: Error) => e instanceof RestoreError && /before the earliest restorable point/.test(e.message));
  assert.throws(() => restoredFiles(root, 99_000, 'd/b.txt'), /did not exist/);
  const to = path.join(tempDir('vigil-restore-'), 'out');
  restore({ store: root, at: 10_000, to });
  assert.equal(fs.statSync(path.join(to, 'a.txt')).mode & 0o777, 0o640);
  assert.equal(fs.statSync(path.join(to, 'a.txt')).mtimeMs, 10_000);
  assert.throws(() => restore({ store: root, at: 10_000, to }), /not empty/);
  assert.throws(() => restore({ store: tempDir(), at: 10_000, to: tempDir() }), /not a Vigil replicator store/);

  const v = versions(root, 'd/b.txt');
  assert.deepEqual(
    v.versions.map((x) => [x.at, x.change, x.size]),
    [
      [new Date(10_000).toISOString(), 'created', 2],
      [new Date(30_000).toISOString(), 'deleted', null],
    ],
  );
  assert.deepEqual(
    versions(root, 'a.txt').versions.map((x) => x.change),
    ['created', 'modified'],
  );
});

test('retention pruning at the window edge keeps every restore inside the window and frees the rest', async () => {
  const { root, layout } = await storeWith([
    { at: 10_000, files: { 'a.txt': 'a1', 'b.txt': 'b1', 'gone.txt': 'g1' } },
    { at: 20_000, files: { 'a.txt': 'a2', 'gone.txt': null } },
    { at: 30_000, files: { 'a.txt': 'a3' } },
    { at: 40_000, files: { 'b.txt': 'b2' } },
  ]);
  const expect = (at: number) => restoredFiles(root, at);
  const before = [20_000, 25_000, 30_000, 40_000].map(expect);
  // The window starts at 25 s: the state then (a2, b1) must stay restorable, a1 and g1 are not needed.
  const out = compact(layout, readJournal(layout.journal).records, 25_000);
  assert.equal(out.result.objectsRemoved, 2, 'a1 and g1 are freed');
  assert.ok(!fs.existsSync(layout.object(hashBuffer(layout.hash, 'a1'))));
  assert.ok(!fs.existsSync(layout.object(hashBuffer(layout.hash, 'g1'))));
  assert.ok(fs.existsSync(layout.object(hashBuffer(layout.hash, 'a2'))), 'the version in force at the window edge stays');
  assert.ok(fs.existsSync(layout.object(hashBuffer(layout.hash, 'b1'))), 'an old but current version stays');
  const read = readJournal(layout.journal);
  assert.equal(read.damage, undefined);
  assert.equal(read.records[0]?.op, 'base');
  // Restores at and after the edge are unchanged; 20 s was inside the old window only.
  assert.deepEqual([25_000, 30_000, 40_000].map(expect), before.slice(1));
  assert.throws(() => expect(24_999), /before the earliest restorable point .*pruned by retention/);
  // Versions keep their original times; nothing older than the edge's version is listed.
  assert.deepEqual(
    versions(root, 'a.txt').versions.map((x) => [x.at, x.change]),
    [
      [new Date(20_000).toISOString(), 'created'],
      [new Date(30_000).toISOString(), 'modified'],
    ],
  );
  // Pruning again at the same edge changes nothing.
  const again = compact(layout, readJournal(layout.journal).records, 25_000);
  assert.equal(again.result.objectsRemoved, 0);
  assert.deepEqual([25_000, 30_000, 40_000].map(expect), before.slice(1));
});

test('the lease: free, held by a live process, stale after its process died, renewed, released', () => {
  const root = tempDir('vigil-lease-');
  const layout = new StoreLayout(root);
  prepareStore(layout);
  const alive = new Set<number>([process.pid]);
  const base = { process: 'cdp', staleAfterMs: 30_000, isAlive: (pid: number) => alive.has(pid), startTicks: 'x' };
  const a = acquireLease(layout, { ...base, node: 'node-a' });
  assert.equal(a.held, true);
  // Another node sees a live, renewed lease: it must not write, and it is told who holds it.
  const b = acquireLease(layout, { ...base, node: 'node-b' });
  assert.equal(b.held, false);
  assert.match(b.held ? '' : b.reason, new RegExp(`leased to node node-a, process cdp \\(pid ${process.pid}\\)`));
  // Not renewed for longer than staleAfter: the other node may take it.
  const later = Date.now() + 31_000;
  const c = acquireLease(layout, { ...base, node: 'node-b', now: later });
  assert.equal(c.held, true);
  assert.equal(c.held && c.lease.node, 'node-b');
  // The old holder finds the lease is not its own any more.
  assert.equal(renewLease(layout, (a as { lease: import('../src/replicator/store').Lease }).lease), false);
  // On its own node, a holder whose pid is gone is stale at once.
  fs.writeFileSync(layout.lease, JSON.stringify({ node: 'node-c', process: 'cdp', pid: 999_999, pidStartTicks: 'y', acquiredAt: new Date().toISOString(), renewedAt: new Date().toISOString() }));
  const d = acquireLease(layout, { ...base, node: 'node-c' });
  assert.equal(d.held, true);
  if (d.held) {
    assert.equal(renewLease(layout, d.lease), true);
    releaseLease(layout, d.lease);
  }
  assert.ok(!fs.existsSync(layout.lease));
});

test('times for --at', () => {
  assert.equal(parseTime('now', 5000), 5000);
  assert.equal(parseTime('-2s', 5000), 3000);
  assert.equal(parseTime('2026-11-26T04:20:00Z'), Date.parse('2026-11-26T04:20:00Z'));
  assert.equal(parseTime('1700000000000'), 1_700_000_000_000);
  assert.equal(parseTime('yesterday'), undefined);
});

test('the hand-written record check agrees with the schema', () => {
  const h = 'a'.repeat(64);
  const valid: unknown[] = [
    { q: 1, at: 1, op: 'file', p: 'a', h, s: 0, m: 0o644, mt: 1.5, ct: 1.5, ino: 7 },
    { q: 1, at: 1, op: 'file', p: 'a', h, s: 3, m: 0o644, mt: 1, ct: 1, ino: 7, d: 'YWJj' },
    { q: 2, at: 1, op: 'dir', p: 'd', m: 0o755, mt: 1 },
    { q: 3, at: 1, op: 'link', p: 'l', l: 'a', mt: 1, ct: 1, ino: 8 },
    { q: 4, at: 1, op: 'del', p: 'a' },
    { q: 0, at: 1, op: 'base', from: 1 },
    { q: 5, at: 1, op: 'sync', upTo: 4 },
  ];
  const invalid: unknown[] = [
    null,
    [],
    { q: 1.5, at: 1, op: 'del', p: 'a' },
    { q: 1, at: 1, op: 'del', p: '' },
    { q: 1, at: 1, op: 'rename', p: 'a' },
    { q: 1, at: 1, op: 'file', p: 'a', h: 'xyz', s: 0, m: 0o644, mt: 1, ct: 1, ino: 7 },
    { q: 1, at: 1, op: 'file', p: 'a', h, s: -1, m: 0o644, mt: 1, ct: 1, ino: 7 },
    { q: 1, at: 1, op: 'file', p: 'a', h, s: 0, m: 0o10000, mt: 1, ct: 1, ino: 7 },
    { q: 1, at: 1, op: 'file', p: 'a', h, s: 0, m: 0o644, mt: 1, ct: 1, ino: 7, d: 5 },
    { q: 1, at: 1, op: 'sync', upTo: 'x' },
    { q: 1, at: '1', op: 'base', from: 1 },
  ];
  for (const r of valid) {
    assert.equal(checkRecord(r), undefined, JSON.stringify(r));
    assert.ok(recordSchema.safeParse(r).success, JSON.stringify(r));
  }
  for (const r of invalid) {
    assert.notEqual(checkRecord(r), undefined, JSON.stringify(r));
    assert.ok(!recordSchema.safeParse(r).success, JSON.stringify(r));
  }
});
