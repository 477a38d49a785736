// The store's parts on their own: journal framing and torn tails, restore from records,
// retention pruning at the window's edge, the lease rules.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import {
  checkRecord,
  decode,
  frame,
  readFileFrames,
  readFrameAt,
  recordSchema,
  type JournalRecord,
  type NewRecord,
} from '../src/replicator/journal';
import { RestoreError, parseTime, restore, versions } from '../src/replicator/restore';
import { pruneJournal } from '../src/replicator/retention';
import {
  JournalWriter,
  LeaseLostError,
  allRecords,
  forEachRecord,
  indexOffsets,
  pathKey,
  readIndex,
  replay,
  resolveChain,
  sealSegment,
  type ChainSegment,
} from '../src/replicator/segments';
import { StoreLayout, acquireLease, prepareStore, releaseLease, renewLease } from '../src/replicator/store';
import { tempDirsRemovedAfter } from './helpers';
import { snapshot } from './replicator-helpers';
import { hashBuffer } from '../src/replicator/digest';

const tempDir = tempDirsRemovedAfter();

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

test('damage in the middle of a journal file is skipped, never the valid records after it', () => {
  const records = [rec(1, 1000, 'a'), rec(2, 2000, 'b'), rec(3, 3000, 'c'), rec(4, 4000, 'd')];
  const frames = records.map(frame);
  const whole = Buffer.concat(frames);
  // A bad sector over the second record: the third and fourth are still read.
  const damaged = Buffer.from(whole);
  const at = (frames[0] as Buffer).length;
  damaged.fill(0xee, at + 3, at + (frames[1] as Buffer).length - 2);
  const r = decode(damaged);
  assert.deepEqual(
    r.records.map((x) => x.q),
    [1, 3, 4]
  );
  assert.equal(r.damage, undefined);
  assert.equal(r.skipped.length, 1);
  assert.equal(r.skipped[0]?.at, at);
  // Garbage longer than a record (a stray write of 3 MiB): the same, and through the file reader too.
  const garbage = Buffer.alloc(3 << 20, 0x5a);
  const file = path.join(tempDir('vigil-journal-'), 'seg.log');
  fs.writeFileSync(file, Buffer.concat([frames[0] as Buffer, garbage, frames[2] as Buffer, frames[3] as Buffer]));
  const seen: number[] = [];
  const res = readFileFrames(file, (x) => void seen.push(x.q), { chunkBytes: 64 * 1024 });
  assert.deepEqual(seen, [1, 3, 4]);
  assert.equal(res.skipped[0]?.bytes, garbage.length);
});

test('a new writer continues after a torn tail without cutting it; a frozen former writer cannot reach readers', async () => {
  const root = tempDir('vigil-journal-');
  const layout = new StoreLayout(root);
  prepareStore(layout);
  let lost = false;
  const first = new JournalWriter(root, resolveChain(root), 0, 0, 1, () => {
    if (lost) {
      throw new LeaseLostError('lease lost');
    }
  });
  await first.append([
    { at: 1000, op: 'dir', p: 'a', m: 0o755, mt: 1 } as NewRecord,
    { at: 1001, op: 'dir', p: 'b', m: 0o755, mt: 1 } as NewRecord,
  ]);
  // A crash in the middle of an append leaves a torn frame at the end of the segment.
  fs.appendFileSync(first.segment.file, frame(rec(3, 1002, 'torn')).subarray(0, 11));
  const size = fs.statSync(first.segment.file).size;
  // The next writer (epoch 2) starts a segment of its own after the last good record.
  const second = new JournalWriter(root, resolveChain(root), 2, 1001, 2, () => undefined);
  assert.equal(fs.statSync(first.segment.file).size, size, 'nothing is cut off');
  const [c] = await second.append([{ at: 1003, op: 'del', p: 'a' } as NewRecord]);
  assert.equal(c?.q, 3, 'sequence numbers continue after the last good record');
  // The first writer wakes up (frozen while the second took over) and writes on into its own
  // segment, bypassing its lease check; then it even starts a new segment of its epoch.
  Object.assign(first, { check: () => undefined });
  await first.append([{ at: 1004, op: 'dir', p: 'stale-1', m: 0o755, mt: 1 } as NewRecord]);
  first.roll();
  await first.append([{ at: 1005, op: 'dir', p: 'stale-2', m: 0o755, mt: 1 } as NewRecord]);
  const [d] = await second.append([{ at: 1006, op: 'dir', p: 'e', m: 0o755, mt: 1 } as NewRecord]);
  assert.equal(d?.q, 4);
  const chain = resolveChain(root);
  assert.deepEqual(
    allRecords(chain).map((r) => [r.q, r.op, r.op === 'dir' || r.op === 'del' ? r.p : '']),
    [
      [1, 'dir', 'a'],
      [2, 'dir', 'b'],
      [3, 'del', 'a'],
      [4, 'dir', 'e'],
    ]
  );
  assert.equal(chain.ignored.length, 1, "the stale writer's new segment is left out");
  assert.match(chain.ignored[0]?.why ?? '', /epoch 1 after a writer with epoch 2 took over/);
  // With its lease check in place, the stale writer refuses to append at all.
  lost = true;
  Object.assign(first, {
    check: () => {
      if (lost) {
        throw new LeaseLostError('the lease was taken');
      }
    },
  });
  await assert.rejects(first.append([{ at: 1007, op: 'dir', p: 'x', m: 0o755, mt: 1 } as NewRecord]), LeaseLostError);
  first.close();
  second.close();
});

test('a writer that wrote nothing (stopped with nothing to record, or killed in its first append) leaves no break in the chain', async () => {
  const root = tempDir('vigil-journal-');
  prepareStore(new StoreLayout(root));
  // Each writer starts as the replicator does: after the last record the journal counts.
  const next = (epoch: number) => {
    const chain = resolveChain(root);
    const rep = replay(chain, Infinity);
    return new JournalWriter(root, chain, rep.lastQ, rep.lastAt, epoch, () => undefined);
  };
  const w1 = next(1);
  await w1.append([
    { at: 1000, op: 'dir', p: 'a', m: 0o755, mt: 1 } as NewRecord,
    { at: 1001, op: 'dir', p: 'b', m: 0o755, mt: 1 } as NewRecord,
  ]);
  w1.close();
  // Started, caught up with nothing changed, stopped: its segment holds only its header.
  next(2).close();
  // Killed in the middle of its first append: a torn frame after its header.
  const w3 = next(3);
  fs.appendFileSync(w3.segment.file, frame(rec(3, 1002, 'torn')).subarray(0, 11));
  w3.close();
  // All three of these start at record 3; the last one writes.
  const w4 = next(4);
  assert.equal(w4.segment.first, 3);
  await w4.append([{ at: 1003, op: 'del', p: 'a' } as NewRecord]);
  w4.close();
  const chain = resolveChain(root);
  assert.deepEqual(chain.problems, [], 'every segment continues the one before it');
  assert.deepEqual(chain.ignored, [], 'no segment is left out');
  assert.deepEqual(
    chain.segments.map((s) => s.epoch),
    [1, 2, 3, 4]
  );
  assert.deepEqual(
    allRecords(chain).map((r) => r.q),
    [1, 2, 3]
  );
  assert.deepEqual(
    forEachRecord(chain, -Infinity, () => undefined),
    [],
    "no damage: the torn frame lies after its segment's bound"
  );
  const rep = replay(chain, Infinity);
  assert.equal(rep.lastQ, 3);
  assert.deepEqual([...rep.tree.keys()], ['b']);

  // A former writer that rolled into a segment of its own at the same place before the new one
  // started there (frozen past its lease, then woken): what it appends there is not counted.
  const w5 = next(5);
  await w5.append([{ at: 1004, op: 'dir', p: 'c', m: 0o755, mt: 1 } as NewRecord]);
  Object.assign(w5, { check: () => undefined });
  w5.roll();
  const w6 = next(6);
  assert.equal(w6.segment.header?.prev, w5.segment.name, "the new writer continues the former one's empty segment");
  await w5.append([{ at: 1005, op: 'dir', p: 'stale', m: 0o755, mt: 1 } as NewRecord]);
  await w6.append([{ at: 1006, op: 'dir', p: 'd', m: 0o755, mt: 1 } as NewRecord]);
  w5.close();
  w6.close();
  const after = resolveChain(root);
  assert.deepEqual(after.problems, []);
  assert.deepEqual(
    allRecords(after).map((r) => [r.q, r.op === 'dir' ? r.p : r.op]),
    [
      [1, 'a'],
      [2, 'b'],
      [3, 'del'],
      [4, 'c'],
      [5, 'd'],
    ]
  );
});

/** A store written by hand: each step puts contents at a given time. */
async function storeWith(steps: Array<{ at: number; files: Record<string, string | null> }>) {
  const root = tempDir('vigil-store-');
  const layout = new StoreLayout(root);
  prepareStore(layout);
  const writer = new JournalWriter(root, resolveChain(root), 0, 0, 1, () => undefined);
  const dirs = new Set<string>();
  for (const [i, step] of steps.entries()) {
    // One segment per step, sealed (with its index) as a writer sealing by age leaves them.
    if (i > 0) {
      const { sealed, last } = writer.roll();
      sealSegment(root, layout.tmp, sealed, last);
    }
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
      records.push({
        at: step.at,
        op: 'file',
        p,
        h,
        s: content.length,
        m: 0o640,
        mt: step.at,
        ct: step.at,
        ino: 1,
      } as NewRecord);
    }
    await writer.append(records);
  }
  const current = writer.segment.name;
  writer.close();
  return { root, layout, current };
}

function restoredFiles(store: string, at: number, sub?: string): Record<string, string> {
  const to = path.join(tempDir('vigil-restore-'), 'out');
  restore({ store, at, to, path: sub });
  const out: Record<string, string> = {};
  for (const [p, n] of snapshot(to)) {
    if (n.type === 'file') {
      out[p] = fs.readFileSync(path.join(to, p), 'utf8');
    }
  }
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
  assert.throws(
    () => restoredFiles(root, 9_999),
    (e: Error) => e instanceof RestoreError && /before the earliest restorable point/.test(e.message)
  );
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
    ]
  );
  assert.deepEqual(
    versions(root, 'a.txt').versions.map((x) => x.change),
    ['created', 'modified']
  );
  // versions reads a sealed segment through its index, only the frames of the path and its
  // parents: damage in another path's record of the first segment is not even seen...
  const first = resolveChain(root).segments[0] as ChainSegment;
  const bytes = fs.readFileSync(first.file);
  const at = bytes.indexOf('"p":"a.txt"');
  bytes.write('"p":"A.TXT"', at);
  fs.writeFileSync(first.file, bytes);
  assert.deepEqual(versions(root, 'd/b.txt').warnings, []);
  assert.equal(versions(root, 'd/b.txt').versions.length, 2);
  // ...while the damaged path's own listing reads the segment in full, and says so.
  const a = versions(root, 'a.txt');
  assert.match(a.warnings.join('\n'), /skipped \d+ damaged bytes at byte \d+ \(checksum mismatch\)/);
  assert.deepEqual(
    a.versions.map((x) => x.change),
    ['created']
  );
});

test('retention pruning at the window edge keeps every restore inside the window and frees the rest', async () => {
  const { root, layout, current } = await storeWith([
    { at: 10_000, files: { 'a.txt': 'a1', 'b.txt': 'b1', 'gone.txt': 'g1' } },
    { at: 20_000, files: { 'a.txt': 'a2', 'gone.txt': null } },
    { at: 30_000, files: { 'a.txt': 'a3' } },
    { at: 40_000, files: { 'b.txt': 'b2' } },
  ]);
  const expect = (at: number) => restoredFiles(root, at);
  const before = [20_000, 25_000, 30_000, 40_000].map(expect);
  // The window starts at 25 s: the segments of 10 s and 20 s are wholly older; the state after
  // them (a2, b1) stays restorable as the base, a1 and g1 are not needed any more.
  const out = pruneJournal(layout, resolveChain(root), current, 25_000, 2);
  assert.ok(out);
  assert.equal(out.segmentsRemoved, 2);
  assert.equal(out.earliest, 20_000, 'the window kept starts at the last dropped record: at least the retention');
  assert.equal(out.objectsRemoved, 2, 'a1 and g1 are freed');
  assert.ok(!fs.existsSync(layout.object(hashBuffer(layout.hash, 'a1'))));
  assert.ok(!fs.existsSync(layout.object(hashBuffer(layout.hash, 'g1'))));
  assert.ok(
    fs.existsSync(layout.object(hashBuffer(layout.hash, 'a2'))),
    'the version in force at the window edge stays'
  );
  assert.ok(fs.existsSync(layout.object(hashBuffer(layout.hash, 'b1'))), 'an old but current version stays');
  const chain = resolveChain(root);
  assert.equal(chain.segments.length, 2);
  assert.deepEqual(chain.problems, []);
  // Restores at and after the edge are unchanged; 10 s was inside the old window only.
  assert.deepEqual([20_000, 25_000, 30_000, 40_000].map(expect), before);
  assert.throws(() => expect(19_999), /before the earliest restorable point .*pruned by retention/);
  // Versions keep their original times; nothing older than the edge's version is listed.
  assert.deepEqual(
    versions(root, 'a.txt').versions.map((x) => [x.at, x.change]),
    [
      [new Date(20_000).toISOString(), 'created'],
      [new Date(30_000).toISOString(), 'modified'],
    ]
  );
  assert.deepEqual(versions(root, 'gone.txt').versions, [], 'deleted before the window: nothing left to list');
  // Pruning again at the same edge changes nothing.
  assert.equal(pruneJournal(layout, resolveChain(root), current, 25_000, 2), null);
  assert.deepEqual([25_000, 30_000, 40_000].map(expect), before.slice(1));
  // A later edge drops the next segment; the base moves on.
  const again = pruneJournal(layout, resolveChain(root), current, 35_000, 2);
  assert.equal(again?.objectsRemoved, 1, 'a2');
  assert.deepEqual([30_000, 40_000].map(expect), before.slice(2));
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
  fs.writeFileSync(
    layout.lease,
    JSON.stringify({
      node: 'node-c',
      process: 'cdp',
      pid: 999_999,
      pidStartTicks: 'y',
      acquiredAt: new Date().toISOString(),
      renewedAt: new Date().toISOString(),
    })
  );
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

test('a store from before segments (one journal.log) is read as it is and continued in segments', async () => {
  const root = tempDir('vigil-legacy-');
  const layout = new StoreLayout(root);
  fs.mkdirSync(root, { recursive: true });
  // What version 2 left: the marker, journal.log (compacted once: a base record first), objects.
  fs.writeFileSync(
    path.join(root, 'vigil-store.json'),
    JSON.stringify({ format: 'vigil-cdp-store', version: 2, hash: 'sha256', createdAt: '2026-11-01T00:00:00.000Z' }) +
      '\n'
  );
  prepareStore(layout);
  const obj = (content: string) => {
    const h = hashBuffer('sha256', content);
    fs.writeFileSync(layout.object(h), content);
    return h;
  };
  const old: JournalRecord[] = [
    { q: 4, at: 5_000, op: 'base', from: 5_000 },
    { q: 5, at: 4_000, op: 'file', p: 'kept.txt', h: obj('kept'), s: 4, m: 0o644, mt: 1, ct: 1, ino: 1 },
    { q: 9, at: 6_000, op: 'file', p: 'a.txt', h: obj('a1'), s: 2, m: 0o644, mt: 1, ct: 1, ino: 2 },
    {
      q: 10,
      at: 7_000,
      op: 'file',
      p: 'a.txt',
      h: obj('a2'),
      s: 2,
      m: 0o644,
      mt: 1,
      ct: 1,
      ino: 2,
      d: Buffer.from('a2').toString('base64'),
    },
    { q: 11, at: 8_000, op: 'sync', upTo: 10 },
  ];
  fs.writeFileSync(
    layout.legacyJournal,
    Buffer.concat([...old.map(frame), frame(rec(12, 9_000, 'torn')).subarray(0, 9)])
  );
  assert.deepEqual(restoredFiles(root, 6_500), { 'kept.txt': 'kept', 'a.txt': 'a1' });
  assert.throws(() => restoredFiles(root, 4_999), /before the earliest restorable point .*pruned by retention/);

  // A writer of this version continues after the old file's last good record, in journal/.
  const chain = resolveChain(root);
  assert.deepEqual(
    chain.segments.map((s) => [s.name, s.first, s.epoch]),
    [['journal.log', 4, 0]]
  );
  const w = new JournalWriter(root, chain, 11, 8_000, 1, () => undefined);
  await w.append([{ at: 10_000, op: 'del', p: 'kept.txt' } as NewRecord]);
  assert.deepEqual(
    allRecords(resolveChain(root)).map((r) => r.q),
    [4, 5, 9, 10, 11, 12]
  );
  // Sealing the old file moves it into journal/ without its inline copies, in segments of a
  // bounded size (here 300 bytes, to see it cut).
  const sealed = sealSegment(root, layout.tmp, resolveChain(root).segments[0] as ChainSegment, 11, 300);
  assert.ok(!fs.existsSync(layout.legacyJournal));
  assert.equal(sealed.name, 'seg-00000000000000000004-e0000000000.log');
  assert.deepEqual(
    resolveChain(root).segments.map((x) => [x.first, x.epoch]),
    [
      [4, 0],
      [10, 0],
      [12, 1],
    ]
  );
  assert.ok(!allRecords(resolveChain(root)).some((r) => r.op === 'file' && r.d !== undefined));
  assert.deepEqual(resolveChain(root).problems, []);
  assert.deepEqual(restoredFiles(root, 7_500), { 'kept.txt': 'kept', 'a.txt': 'a2' });
  assert.deepEqual(restoredFiles(root, 10_000), { 'a.txt': 'a2' });
  assert.deepEqual(
    versions(root, 'kept.txt').versions.map((v) => [v.at, v.change]),
    [
      [new Date(4_000).toISOString(), 'created'],
      [new Date(10_000).toISOString(), 'deleted'],
    ]
  );
  w.close();
});

test('a lease file left empty (a full disk, a crash while creating it) is taken over; epochs only grow', () => {
  const root = tempDir('vigil-lease-');
  const layout = new StoreLayout(root);
  prepareStore(layout);
  const base = { process: 'cdp', node: 'node-a', staleAfterMs: 30_000, isAlive: () => true, startTicks: 'x' };
  fs.writeFileSync(layout.lease, '');
  const young = acquireLease(layout, base);
  assert.equal(young.held, false, 'an empty lease this young may be a write in progress');
  assert.match(young.held ? '' : young.reason, /unreadable \(empty\)/);
  const taken = acquireLease(layout, { ...base, now: Date.now() + 3000 });
  assert.equal(taken.held, true);
  const first = taken.held ? taken.lease.epoch : 0;
  assert.ok(first >= 1);
  if (taken.held) {
    releaseLease(layout, taken.lease);
  }
  // Released cleanly, taken again: a new epoch, never the old one.
  const again = acquireLease(layout, base);
  assert.ok(again.held && again.lease.epoch === first + 1);
  // Garbage (not a lease) waits for the staleness period.
  if (again.held) {
    releaseLease(layout, again.lease);
  }
  fs.writeFileSync(layout.lease, '{"half');
  assert.equal(acquireLease(layout, base).held, false);
  const late = acquireLease(layout, { ...base, now: Date.now() + 31_000 });
  assert.ok(late.held && late.lease.epoch === first + 2);
});

test('sealing drops inline contents and indexes every record once, at the offset of its frame', async () => {
  const root = tempDir('vigil-seal-');
  const layout = new StoreLayout(root);
  prepareStore(layout);
  const w = new JournalWriter(root, resolveChain(root), 0, 0, 1, () => undefined);
  const h = 'b'.repeat(64);
  const recs: NewRecord[] = [];
  for (let i = 0; i < 50; i++) {
    const p = `f${i % 7}`;
    recs.push({
      at: 1000 + i,
      op: 'file',
      p,
      h,
      s: 3,
      m: 0o644,
      mt: 1,
      ct: 1,
      ino: i,
      ...(i % 3 === 0 ? { d: Buffer.from('abc').toString('base64') } : {}),
    } as NewRecord);
  }
  await w.append(recs);
  const { sealed, last } = w.roll();
  const out = sealSegment(root, layout.tmp, sealed, last);
  assert.ok(out.strippedBytes > 0, 'the inline contents are gone');
  const idx = readIndex(layout.journal, sealed.name);
  assert.ok(idx);
  const fd = fs.openSync(sealed.file, 'r');
  try {
    let total = 0;
    for (let i = 0; i < 7; i++) {
      const offsets = indexOffsets(layout.journal, sealed.name, idx, pathKey(`f${i}`));
      assert.equal(new Set(offsets).size, offsets.length, 'each record once');
      for (const off of offsets) {
        const r = readFrameAt(fd, off);
        assert.ok(r?.op === 'file' && r.p === `f${i}` && r.d === undefined, `offset ${off} of f${i}`);
      }
      total += offsets.length;
    }
    assert.equal(total, 50);
  } finally {
    fs.closeSync(fd);
  }
  w.close();
});
