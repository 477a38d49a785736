// The replicator as a real process on real files in temporary directories.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { pathOf } from '../src/replicator/journal';
import { restore } from '../src/replicator/restore';
import { runCliToEnd, waitFor, tempDirsRemovedAfter } from './helpers';
import {
  diffTrees,
  journal,
  journalBytes,
  killReplicators,
  segmentFiles,
  sha256,
  snapshot,
  startReplicator,
  replicatorDirs,
  storeHash,
  waitMirror,
  waitState,
} from './replicator-helpers';

const tempDir = tempDirsRemovedAfter();

after(killReplicators);

const dirs = () => replicatorDirs('vigil-repl-');

const write = (file: string, data: string | Buffer) => {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, data);
};

test('captures creates, writes, renames, deletes, mode changes, links, nested trees, a large file and many small ones', async () => {
  const d = dirs();
  write(path.join(d.source, 'before/start.txt'), 'there before the first start');
  const r = startReplicator(d.source, d.store, d.status);
  const first = await waitState(r);
  assert.equal(first.catchUp.changed, 2, 'the directory and the file found by the first scan');
  await waitMirror(d.source, d.store);

  const s = (p: string) => path.join(d.source, p);
  write(s('a/b/c/deep.txt'), 'deep');
  write(s('top.txt'), 'v1');
  write(s('top.txt'), 'v2 longer');
  fs.renameSync(s('before/start.txt'), s('a/moved.txt'));
  fs.renameSync(s('a/b'), s('a/b2'));
  write(s('a/b2/c/after-rename.txt'), 'written under the renamed directory');
  fs.symlinkSync('top.txt', s('link-to-top'));
  write(s('doomed/x.txt'), 'x');
  await waitMirror(d.source, d.store);
  fs.rmSync(s('doomed'), { recursive: true });
  fs.chmodSync(s('top.txt'), 0o600);
  const large = Buffer.alloc(24 * 1024 * 1024);
  for (let i = 0; i < large.length; i += 4096) {
    large.writeUInt32LE(i, i);
  }
  write(s('large.bin'), large);
  for (let i = 0; i < 600; i++) {
    write(s(`small/${i % 10}/f${i}.txt`), `small file ${i}`);
  }
  write(s('dup-1.txt'), 'identical content');
  write(s('dup-2.txt'), 'identical content');
  await waitMirror(d.source, d.store, 30_000);
  const status = await waitState(r);
  assert.equal(status.pendingChanges, 0);
  assert.equal(status.pendingBytes, 0);
  assert.equal(status.atRiskSince, null);
  assert.ok(status.lastReplicatedAt && status.lastChangeAt);

  const records = journal(d.store);
  const last = (p: string) => records.filter((x) => pathOf(x) === p).pop();
  const top = last('top.txt');
  assert.equal(top?.op, 'file');
  assert.equal(top?.op === 'file' && top.m, 0o600, 'the mode change is captured');
  assert.equal(last('doomed')?.op, 'del');
  assert.equal(
    last('link-to-top')?.op === 'link' && last('link-to-top')?.op === 'link'
      ? (last('link-to-top') as { l: string }).l
      : '',
    'top.txt'
  );
  // Identical content is stored once; the mirror's files are copies of it, never the objects themselves.
  const dup1 = last('dup-1.txt');
  const dup2 = last('dup-2.txt');
  assert.ok(dup1?.op === 'file' && dup2?.op === 'file' && dup1.h === dup2.h);
  const obj = path.join(d.store, 'objects', dup1.h.slice(0, 2), dup1.h);
  assert.notEqual(fs.statSync(obj).ino, fs.statSync(path.join(d.store, 'mirror', 'dup-1.txt')).ino);
  assert.equal(fs.statSync(obj).nlink, 1);
  assert.equal(fs.readFileSync(path.join(d.store, 'mirror', 'dup-2.txt'), 'utf8'), 'identical content');
  assert.equal(sha256(fs.readFileSync(path.join(d.store, 'mirror', 'large.bin'))), sha256(large));

  const v = await runCliToEnd(['versions', '--store', d.store, '--path', 'top.txt', '--json']);
  assert.equal(v.code, 0, v.stderr);
  const listed = JSON.parse(v.stdout) as {
    hashAlgorithm: string;
    versions: Array<{ change: string; hash: string | null; sha256: string | null; mode: string | null }>;
  };
  assert.deepEqual(
    listed.versions.map((x) => x.change),
    listed.versions.map((_, i) =>
      i === 0 ? 'created' : listed.versions[i]?.hash === listed.versions[i - 1]?.hash ? 'metadata' : 'modified'
    )
  );
  assert.equal(listed.hashAlgorithm, 'blake3', 'a new store names contents by BLAKE3 where the native module loads');
  assert.equal(listed.versions.at(-1)?.hash, storeHash(d.store, 'v2 longer'));
  assert.equal(listed.versions.at(-1)?.sha256, null, 'sha256 is only filled in for SHA-256 stores');
  assert.equal(listed.versions.at(-1)?.mode, '0600');

  assert.deepEqual(await r.stop(), { code: 0, signal: null });
  assert.ok(!fs.existsSync(path.join(d.store, 'lease.json')), 'a clean stop releases the lease');
});

test('restore at several points in time gives back each recorded state', async () => {
  const d = dirs();
  const r = startReplicator(d.source, d.store, d.status);
  await waitState(r);
  const s = (p: string) => path.join(d.source, p);
  const points: Array<{ at: number; tree: ReturnType<typeof snapshot> }> = [];
  const steps: Array<() => void> = [
    () => {
      write(s('doc.txt'), 'draft');
      write(s('notes/1.txt'), 'one');
    },
    () => {
      write(s('doc.txt'), 'final version');
      write(s('notes/2.txt'), 'two');
      fs.chmodSync(s('notes/1.txt'), 0o600);
    },
    () => {
      fs.renameSync(s('notes'), s('archive'));
      fs.rmSync(s('doc.txt'));
    },
    () => write(s('doc.txt'), 'back again'),
  ];
  for (const [i, step] of steps.entries()) {
    step();
    await waitMirror(d.source, d.store);
    if (i === 1) {
      // The mirror shows contents only: wait until the journal holds the mode change too.
      await waitFor('the mode change to be recorded', () => {
        const to = path.join(tempDir('vigil-restored-'), 'out');
        restore({ store: d.store, at: Date.now(), to, path: 'notes' });
        return (fs.statSync(path.join(to, 'notes/1.txt')).mode & 0o777) === 0o600;
      });
    }
    points.push({ at: Date.now(), tree: snapshot(d.source) });
    // Make the next step's changes strictly later than this point.
    await waitFor('the clock to move on', () => Date.now() > (points.at(-1)?.at ?? 0) + 1);
  }
  for (const [i, p] of points.entries()) {
    const to = path.join(tempDir('vigil-restored-'), 'out');
    const res = await runCliToEnd(['restore', '--store', d.store, '--at', new Date(p.at).toISOString(), '--to', to]);
    assert.equal(res.code, 0, res.stderr);
    assert.deepEqual(diffTrees(p.tree, snapshot(to)), [], `restore at point ${i}`);
  }
  // The mode is restored too, and a sub-path alone.
  const to = path.join(tempDir('vigil-restored-'), 'out');
  restore({ store: d.store, at: points[1]?.at as number, to, path: 'notes' });
  assert.deepEqual([...snapshot(to).keys()].sort(), ['notes', 'notes/1.txt', 'notes/2.txt']);
  assert.equal(fs.statSync(path.join(to, 'notes/1.txt')).mode & 0o777, 0o600);
  const early = await runCliToEnd([
    'restore',
    '--store',
    d.store,
    '--at',
    '2000-01-01T00:00:00Z',
    '--to',
    path.join(tempDir(), 'x'),
  ]);
  assert.equal(early.code, 1);
  assert.match(early.stderr, /before the earliest restorable point/);
  const usage = await runCliToEnd(['restore', '--store', d.store]);
  assert.equal(usage.code, 2);
  await r.stop();
});

test('catch-up after downtime and after kill -9 with a torn journal tail', async () => {
  const d = dirs();
  const s = (p: string) => path.join(d.source, p);
  for (let i = 0; i < 50; i++) {
    write(s(`keep/${i}.txt`), `keep ${i}`);
  }
  write(s('edit.txt'), 'before');
  write(s('remove.txt'), 'to be removed');
  let r = startReplicator(d.source, d.store, d.status);
  await waitState(r);
  await waitMirror(d.source, d.store);
  assert.deepEqual(await r.stop(), { code: 0, signal: null });

  // Changed while nothing ran: only these are found by the next start's scan.
  write(s('edit.txt'), 'after, while down');
  fs.rmSync(s('remove.txt'));
  fs.renameSync(s('keep/0.txt'), s('keep/zero.txt'));
  write(s('new/while-down.txt'), 'new');
  fs.chmodSync(s('keep/1.txt'), 0o600);
  r = startReplicator(d.source, d.store, d.status);
  const st = await waitState(r);
  assert.equal(st.catchUp.scanned, 54, 'keep/ and its 50 files, edit.txt, new/ and its file');
  assert.equal(
    st.catchUp.changed,
    7,
    'edit, remove, the rename (two paths), the new directory and its file, the mode change'
  );
  await waitMirror(d.source, d.store);

  // kill -9, then a torn record at the end as a crash in mid-append leaves it.
  process.kill(r.pid, 'SIGKILL');
  await r.exited;
  const before = journal(d.store).length;
  fs.appendFileSync(segmentFiles(d.store).at(-1) as string, Buffer.from([200, 0, 0, 0, 1, 2, 3, 4, 123, 34]));
  write(s('after-kill.txt'), 'written while killed');
  r = startReplicator(d.source, d.store, d.status);
  const again = await waitState(r);
  assert.ok(
    again.errors.some((e) => /ignored 10 bytes after the last complete record/.test(e)),
    JSON.stringify(again.errors)
  );
  await waitMirror(d.source, d.store);
  const after = journal(d.store);
  assert.ok(after.length > before);
  assert.ok(
    after.every((x, i) => i === 0 || x.q > (after[i - 1]?.q ?? 0)),
    'sequence numbers keep increasing'
  );
  await r.stop();
});

test('one writer: a second replicator on the same store waits, names the holder, and takes over when it is released', async () => {
  const d = dirs();
  write(path.join(d.source, 'f.txt'), 'one');
  const a = startReplicator(d.source, d.store, d.status, ['--node', 'node-a', '--name', 'cdp']);
  await waitState(a);
  const size = journalBytes(d.store);
  const b = startReplicator(d.source, d.store, path.join(d.root, 'status-b.json'), [
    '--node',
    'node-b',
    '--name',
    'cdp',
  ]);
  const waiting = await waitState(b, 'waiting_for_lease');
  assert.match(waiting.message ?? '', new RegExp(`leased to node node-a, process cdp \\(pid ${a.pid}\\)`));
  write(path.join(d.source, 'g.txt'), 'two');
  await waitMirror(d.source, d.store);
  assert.ok(journalBytes(d.store) > size);
  assert.equal(b.status()?.state, 'waiting_for_lease', 'still not writing');
  await a.stop();
  await waitState(b);
  write(path.join(d.source, 'h.txt'), 'three');
  await waitMirror(d.source, d.store);
  const lease = JSON.parse(fs.readFileSync(path.join(d.store, 'lease.json'), 'utf8')) as { node: string; pid: number };
  assert.equal(lease.node, 'node-b');
  assert.equal(lease.pid, b.pid);
  await b.stop();
});

test('a watch limit sends subtrees to periodic scanning and says so', async () => {
  const d = dirs();
  for (const sub of ['a', 'b', 'c', 'd']) {
    write(path.join(d.source, sub, 'x', 'f.txt'), sub);
  }
  const r = startReplicator(d.source, d.store, d.status, ['--max-watches', '3', '--poll-every', '200ms']);
  const st = await waitState(r);
  assert.equal(st.watch.watches, 3);
  assert.ok(st.watch.polled.length >= 1);
  assert.match(st.message ?? '', /watch limit reached: \d+ subtree\(s\) scanned every 200 ms instead of watched/);
  assert.match(st.watch.polled[0]?.reason ?? '', /watch budget of 3 directories spent/);
  // Changes in a polled subtree are still captured, by the scan.
  const polled = st.watch.polled[0]?.dir as string;
  write(path.join(d.source, polled, 'new.txt'), 'seen by polling');
  await waitMirror(d.source, d.store);
  await r.stop();
});

test('retention: the running replicator prunes versions older than the window', async () => {
  const d = dirs();
  const s = (p: string) => path.join(d.source, p);
  write(s('a.txt'), 'first version');
  const r = startReplicator(d.source, d.store, d.status, ['--retention', '1s']);
  await waitState(r);
  await waitMirror(d.source, d.store);
  const firstAt = Date.now();
  await waitFor('the window to move past the first version', () => Date.now() > firstAt + 1100);
  write(s('a.txt'), 'second version');
  await waitMirror(d.source, d.store);
  const secondAt = Date.now();
  const h = storeHash(d.store, 'first version');
  const old = path.join(d.store, 'objects', h.slice(0, 2), h);
  // Pruning runs every retention / 10 (at least 1 s); the first version's content goes once
  // the window starts after the second version was captured.
  await waitFor('the first version to be pruned', () => !fs.existsSync(old), 15_000, 50);
  // The status file is rewritten at most every second: it may still show the previous prune
  // when the object is already gone.
  const st = await waitFor('the status to report the pruning and the moved earliest restorable point', () => {
    const now = r.status();
    return now?.lastPrune && Date.parse(now.journal.earliestRestorable ?? '') > secondAt - 1000 ? now : undefined;
  });
  // Later prunes (every second as the window moves) may have had nothing left to remove.
  assert.ok(
    st.lastPrune && Date.parse(st.lastPrune.cutoff) > secondAt - 1000,
    'the last prune in the status is past the second version'
  );
  const to = path.join(tempDir('vigil-restored-'), 'out');
  restore({ store: d.store, at: Date.now(), to });
  assert.equal(fs.readFileSync(path.join(to, 'a.txt'), 'utf8'), 'second version');
  const refused = await runCliToEnd([
    'restore',
    '--store',
    d.store,
    '--at',
    new Date(firstAt).toISOString(),
    '--to',
    path.join(tempDir(), 'x'),
  ]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /pruned by retention/);
  await r.stop();
});

test('a directory replaced by another of the same name is watched again', async () => {
  const d = dirs();
  const s = (p: string) => path.join(d.source, p);
  write(s('d/old.txt'), 'old');
  const r = startReplicator(d.source, d.store, d.status);
  await waitState(r);
  fs.renameSync(s('d'), path.join(d.root, 'd-elsewhere'));
  fs.mkdirSync(s('d'));
  write(s('d/new.txt'), 'new');
  await waitMirror(d.source, d.store);
  // A write into the new directory after it was captured is seen through a watch on it.
  write(s('d/later.txt'), 'later');
  await waitMirror(d.source, d.store);
  await r.stop();
});

test('a small object lost in a crash before its checkpoint is rewritten from its journal record', async () => {
  const d = dirs();
  const s = (p: string) => path.join(d.source, p);
  write(s('kept.txt'), 'kept before the checkpoint');
  // No checkpoint for an hour: the object exists only without its own fsync.
  let r = startReplicator(d.source, d.store, d.status, ['--checkpoint-every', '1h']);
  await waitState(r);
  await waitMirror(d.source, d.store);
  write(s('fresh.txt'), 'acknowledged, object not fsynced');
  await waitMirror(d.source, d.store);
  process.kill(r.pid, 'SIGKILL');
  await r.exited;
  const rec = journal(d.store).find((x) => pathOf(x) === 'fresh.txt');
  assert.ok(rec?.op === 'file' && rec.d !== undefined, 'the record carries the content');
  assert.ok(!journal(d.store).some((x) => x.op === 'sync'), 'no checkpoint happened');
  // What a power loss can do to a file written without fsync: gone.
  const obj = path.join(d.store, 'objects', rec.h.slice(0, 2), rec.h);
  fs.rmSync(obj);
  fs.rmSync(path.join(d.store, 'mirror', 'fresh.txt'));
  r = startReplicator(d.source, d.store, d.status);
  const st = await waitState(r);
  assert.ok(
    st.errors.some((e) => /object\(s\) lost in an unclean stop were rewritten from the journal/.test(e)),
    JSON.stringify(st.errors)
  );
  assert.equal(fs.readFileSync(obj, 'utf8'), 'acknowledged, object not fsynced');
  await waitMirror(d.source, d.store);
  // The start checkpointed: a sync record now covers it, and a clean stop leaves nothing inline pending.
  assert.ok(journal(d.store).some((x) => x.op === 'sync' && x.upTo >= rec.q));
  await r.stop();
});

test('an unavailable source is not recorded as deleted', async () => {
  const d = dirs();
  const s = (p: string) => path.join(d.source, p);
  write(s('a/1.txt'), 'one');
  write(s('b.txt'), 'two');
  let r = startReplicator(d.source, d.store, d.status);
  await waitState(r);
  await waitMirror(d.source, d.store);
  const protectedTree = snapshot(d.source);
  const changes = () => journal(d.store).filter((x) => pathOf(x) !== undefined).length;
  const records = changes();
  // The disk goes away under a running replicator: it waits, says so, and records nothing.
  const away = path.join(d.root, 'away');
  fs.renameSync(d.source, away);
  const waiting = await waitFor('the status to say the source is missing', () => {
    const st = r.status();
    return st?.message?.includes('is missing') ? st : undefined;
  });
  assert.ok(waiting.errors.some((e) => /nothing is recorded until it is back/.test(e)));
  // Another (empty) directory in its place, as a mount point without its disk: the replicator
  // exits so that a restart watches it afresh...
  fs.mkdirSync(d.source);
  assert.deepEqual(await r.exited, { code: 1, signal: null });
  // ...and that start does not take the empty directory for a tree whose files were all deleted.
  r = startReplicator(d.source, d.store, d.status);
  await waitFor('the status to say the source is empty', () =>
    r.status()?.message?.includes('is empty while the store knows 3 paths')
  );
  assert.equal(changes(), records, 'no change recorded');
  assert.deepEqual(diffTrees(protectedTree, snapshot(path.join(d.store, 'mirror'))), []);
  // The disk is back: it carries on.
  fs.rmdirSync(d.source);
  fs.renameSync(away, d.source);
  write(s('c.txt'), 'three');
  await waitState(r);
  await waitMirror(d.source, d.store);
  await r.stop();
});
