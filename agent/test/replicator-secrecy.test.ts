// Nothing in a store is readable by other users, and the mirror cannot change history: real
// replicator processes, an ordinary user (uid 65534) trying to read the store, and stores left
// as earlier versions wrote them (0755 directories, 0444 objects, mirror files hard-linked to
// their objects).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { hashBuffer } from '../src/replicator/digest';
import { restore } from '../src/replicator/restore';
import { openStoreForReading } from '../src/replicator/store';
import { runCliToEnd, tempDirsRemovedAfter, waitFor } from './helpers';
import {
  killReplicators,
  replicatorDirs,
  snapshot,
  startReplicator,
  storeHash,
  waitMirror,
  waitState,
} from './replicator-helpers';

const tempDir = tempDirsRemovedAfter();

after(killReplicators);

const NOBODY = 65534;

/** A store's temporary root that other users may enter (mkdtemp makes 0700), so only the store's own modes keep them out. */
function openDirs() {
  const d = replicatorDirs('vigil-secrecy-');
  fs.chmodSync(d.root, 0o755);
  fs.chmodSync(d.source, 0o755);
  return d;
}

/** Runs a command as the ordinary user: its exit code and error output. */
function asNobody(cmd: string, ...args: string[]): { code: number | null; stderr: string } {
  const r = spawnSync(cmd, args, { uid: NOBODY, gid: NOBODY, encoding: 'utf8', timeout: 10_000 });
  return { code: r.status, stderr: r.stderr };
}

/** Every entry of the store with a group or other permission bit, or a directory that is not 0700. */
function tooOpen(store: string): string[] {
  const out: string[] = [];
  const check = (abs: string, rel: string) => {
    const st = fs.lstatSync(abs);
    if (st.isSymbolicLink()) {
      return;
    }
    const m = st.mode & 0o7777;
    if ((st.isDirectory() && m !== 0o700) || (m & 0o077) !== 0) {
      out.push(`${rel} ${m.toString(8)}`);
    }
    if (st.isDirectory()) {
      for (const n of fs.readdirSync(abs)) {
        check(path.join(abs, n), rel === '' ? n : `${rel}/${n}`);
      }
    }
  };
  check(store, '');
  return out;
}

function objectOf(store: string, data: string | Buffer): string {
  const h = storeHash(store, data);
  return path.join(store, 'objects', h.slice(0, 2), h);
}

test('nothing in the store is readable or searchable by another user, whatever the source modes', async () => {
  const d = openDirs();
  const secret = 'the private key';
  fs.writeFileSync(path.join(d.source, 'secret.key'), secret, { mode: 0o600 });
  fs.writeFileSync(path.join(d.source, 'public.txt'), 'anyone may read this', { mode: 0o644 });
  fs.mkdirSync(path.join(d.source, 'shared'), { mode: 0o755 });
  // Through the other two ways an object is stored: written from memory (> 64 KiB) and copied by the kernel (> 4 MiB).
  fs.writeFileSync(path.join(d.source, 'shared', 'medium.bin'), Buffer.alloc(200 * 1024, 7), { mode: 0o644 });
  fs.writeFileSync(path.join(d.source, 'shared', 'large.bin'), Buffer.alloc(6 * 1024 * 1024, 9), { mode: 0o666 });
  fs.symlinkSync('public.txt', path.join(d.source, 'link'));
  // The operator made the store's root, readable by all.
  fs.mkdirSync(d.store, { mode: 0o755 });
  fs.chmodSync(d.store, 0o755);
  // The test's premise: the ordinary user can reach and read what the source lets it read.
  assert.equal(asNobody('cat', path.join(d.source, 'public.txt')).code, 0);

  const r = startReplicator(d.source, d.store, d.status, ['--checkpoint-every', '100ms']);
  await waitState(r);
  await waitMirror(d.source, d.store);
  await waitFor('a checkpoint (mirror.seq)', () => fs.existsSync(path.join(d.store, 'mirror.seq')));
  // While it runs (lease, fence directory, open segment) and after it stopped.
  assert.deepEqual(tooOpen(d.store), []);
  for (const dir of ['', 'objects', 'mirror', 'journal', 'tmp']) {
    const res = asNobody('ls', path.join(d.store, dir));
    assert.notEqual(res.code, 0, `the ordinary user listed ${dir || 'the store'}`);
    assert.match(res.stderr, /Permission denied/);
  }
  for (const f of ['mirror/secret.key', 'mirror/public.txt', 'lease.json', 'vigil-store.json']) {
    assert.notEqual(asNobody('cat', path.join(d.store, f)).code, 0, `the ordinary user read ${f}`);
  }
  assert.notEqual(asNobody('cat', objectOf(d.store, secret)).code, 0, 'the ordinary user read the secret object');
  assert.equal(fs.statSync(objectOf(d.store, secret)).mode & 0o777, 0o400);
  assert.equal(fs.statSync(path.join(d.store, 'mirror', 'secret.key')).mode & 0o777, 0o600);
  assert.match(r.log(), /store permissions tightened/, 'the root the operator made was tightened, and logged');
  assert.equal((await r.stop()).code, 0);
  assert.deepEqual(tooOpen(d.store), []);
  assert.ok(openStoreForReading(d.store), 'still a store');
  assert.equal(JSON.parse(fs.readFileSync(path.join(d.store, 'vigil-store.json'), 'utf8')).ownerOnly, true);
});

test('a store left by an earlier version (0755 directories, 0444 files, mirror hard-linked to objects) is tightened and unlinked when opened', async () => {
  const d = openDirs();
  fs.writeFileSync(path.join(d.source, 'secret.key'), 'old secret', { mode: 0o600 });
  fs.mkdirSync(path.join(d.source, 'sub'));
  fs.writeFileSync(path.join(d.source, 'sub', 'a.txt'), 'a', { mode: 0o600 });
  fs.writeFileSync(path.join(d.source, 'sub', 'b.txt'), 'a', { mode: 0o600 });
  let r = startReplicator(d.source, d.store, d.status);
  await waitState(r);
  await waitMirror(d.source, d.store);
  assert.equal((await r.stop()).code, 0);

  // As an earlier version left it: its marker without `ownerOnly`, everything readable by all,
  // mirror files that are the objects' inodes.
  const marker = path.join(d.store, 'vigil-store.json');
  const { ownerOnly: _, ...old } = JSON.parse(fs.readFileSync(marker, 'utf8')) as Record<string, unknown>;
  fs.writeFileSync(marker, JSON.stringify(old) + '\n');
  const widen = (abs: string) => {
    const st = fs.lstatSync(abs);
    if (st.isSymbolicLink()) {
      return;
    }
    fs.chmodSync(abs, st.isDirectory() ? 0o755 : abs.includes('/objects/') ? 0o444 : 0o644);
    if (st.isDirectory()) {
      for (const n of fs.readdirSync(abs)) {
        widen(path.join(abs, n));
      }
    }
  };
  const linked = ['secret.key', 'sub/a.txt', 'sub/b.txt'];
  for (const p of linked) {
    const m = path.join(d.store, 'mirror', p);
    fs.rmSync(m);
    fs.linkSync(objectOf(d.store, p === 'secret.key' ? 'old secret' : 'a'), m);
  }
  widen(d.store);
  assert.ok(tooOpen(d.store).length > 256, 'the old store is open to all');
  assert.equal(
    asNobody('cat', path.join(d.store, 'mirror', 'secret.key')).code,
    0,
    'and the ordinary user can read the secret'
  );

  r = startReplicator(d.source, d.store, d.status);
  await waitState(r);
  assert.deepEqual(tooOpen(d.store), []);
  assert.notEqual(asNobody('cat', path.join(d.store, 'mirror', 'secret.key')).code, 0);
  for (const p of linked) {
    const m = fs.statSync(path.join(d.store, 'mirror', p));
    const o = fs.statSync(objectOf(d.store, p === 'secret.key' ? 'old secret' : 'a'));
    assert.notEqual(m.ino, o.ino, `mirror/${p} is no longer the object's inode`);
    assert.equal(m.nlink, 1);
    assert.equal(o.nlink, 1);
  }
  assert.deepEqual(snapshot(path.join(d.store, 'mirror')), snapshot(d.source));
  assert.match(r.log(), /store permissions tightened.*"mirrorLinksCopied":3/);
  assert.equal(
    JSON.parse(fs.readFileSync(marker, 'utf8')).ownerOnly,
    true,
    'the marker records it: the next start does not walk the store'
  );
  assert.equal((await r.stop()).code, 0);

  // An operator's chmod of a tightened store: the root and its top level are put back at every start.
  fs.chmodSync(d.store, 0o755);
  fs.chmodSync(path.join(d.store, 'objects'), 0o755);
  fs.chmodSync(path.join(d.store, 'lease.epoch'), 0o644);
  r = startReplicator(d.source, d.store, d.status);
  await waitState(r);
  assert.deepEqual(tooOpen(d.store), []);
  assert.equal((await r.stop()).code, 0);
});

test('writing into a mirror file changes no stored version', async () => {
  const d = openDirs();
  const src = path.join(d.source, 'doc.txt');
  const v1 = 'version one, as written';
  fs.writeFileSync(src, v1);
  const r = startReplicator(d.source, d.store, d.status);
  await waitState(r);
  await waitMirror(d.source, d.store);
  const t1 = Date.now();
  await waitFor('the clock to move on', () => Date.now() > t1 + 1);

  // Someone writes into the mirror file in place (the same inode), same size.
  const mirrorFile = path.join(d.store, 'mirror', 'doc.txt');
  const ino = fs.statSync(mirrorFile).ino;
  const fd = fs.openSync(mirrorFile, 'r+');
  fs.writeSync(fd, Buffer.from('VERSION ONE, TAMPERED!!'), 0, undefined, 0);
  fs.closeSync(fd);
  assert.equal(fs.statSync(mirrorFile).ino, ino);

  fs.writeFileSync(src, 'version two');
  await waitMirror(d.source, d.store);
  await waitState(r);

  const obj = objectOf(d.store, v1);
  const layout = openStoreForReading(d.store);
  assert.equal(
    hashBuffer(layout.hash, fs.readFileSync(obj)),
    path.basename(obj),
    'the object of version one still hashes to its name'
  );
  const to = path.join(tempDir('vigil-secrecy-restored-'), 'out');
  const res = await runCliToEnd(['restore', '--store', d.store, '--at', new Date(t1).toISOString(), '--to', to]);
  assert.equal(res.code, 0, res.stderr);
  assert.equal(fs.readFileSync(path.join(to, 'doc.txt'), 'utf8'), v1);
  const to2 = path.join(tempDir('vigil-secrecy-restored-'), 'out');
  restore({ store: d.store, at: t1, to: to2 });
  assert.equal(fs.readFileSync(path.join(to2, 'doc.txt'), 'utf8'), v1);
  assert.equal((await r.stop()).code, 0);
});
