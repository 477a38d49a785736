// Owners, groups, extended attributes and POSIX ACLs: recorded at capture (also when only they
// change), restored as root, reported per path where they cannot be (an ordinary user, no
// native module), and records from before them restore as they always did.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, test, type TestContext } from 'node:test';
import { checkRecord, type JournalRecord } from '../src/replicator/journal';
import { applyMetadata, ownerFor, readMetadata, XATTR_MAX_BYTES } from '../src/replicator/metadata';
import { AGENT_DIR, CLI, runCliToEnd, tempDirsRemovedAfter, waitFor } from './helpers';
import { aclBlob, diffMeta, metaSnapshot, xattr, xattrsOf } from './metadata-helpers';
import { journal, killReplicators, replicatorDirs, startReplicator, waitMirror, waitState } from './replicator-helpers';

const tempDir = tempDirsRemovedAfter();
after(killReplicators);

const NOBODY = { uid: 65534, gid: 65534 };
const T = 1_700_000_000; // whole seconds: mtimes compare exactly

function needsRoot(t: TestContext): boolean {
  if (process.getuid?.() === 0) {
    return true;
  }
  t.skip('needs root: to give files other owners and set trusted.* attributes');
  return false;
}

/** A tree with other owners, modes, mtimes, binary user attributes, a trusted one and ACLs. */
function makeTree(source: string): void {
  const f1 = path.join(source, 'f1.txt');
  fs.writeFileSync(f1, 'one');
  fs.chownSync(f1, NOBODY.uid, NOBODY.gid);
  xattr.setAttributeSync(f1, 'user.bin', Buffer.from([0, 1, 2, 255]));
  xattr.setAttributeSync(f1, 'trusted.t', 'root only');
  xattr.setAttributeSync(f1, 'system.posix_acl_access', aclBlob(NOBODY.uid)); // mode becomes 0640
  fs.utimesSync(f1, T, T);
  const f2 = path.join(source, 'f2.txt');
  fs.writeFileSync(f2, 'two');
  fs.chownSync(f2, 4242, 4343); // names that resolve nowhere
  fs.chmodSync(f2, 0o604);
  fs.utimesSync(f2, T + 1, T + 1);
  const d = path.join(source, 'd');
  fs.mkdirSync(d);
  fs.writeFileSync(path.join(d, 'inner'), 'in');
  fs.utimesSync(path.join(d, 'inner'), T + 2, T + 2);
  fs.chownSync(d, NOBODY.uid, 0);
  fs.chmodSync(d, 0o750);
  xattr.setAttributeSync(d, 'user.dir', 'a directory attribute');
  xattr.setAttributeSync(d, 'system.posix_acl_default', aclBlob(NOBODY.uid));
  fs.symlinkSync('f1.txt', path.join(source, 'l'));
  fs.lchownSync(path.join(source, 'l'), NOBODY.uid, NOBODY.gid);
}

async function captured(t: TestContext, prefix: string, env: NodeJS.ProcessEnv = {}) {
  const d = replicatorDirs(prefix);
  makeTree(d.source);
  const r = startReplicator(d.source, d.store, d.status, [], env);
  await waitState(r, 'watching');
  await waitMirror(d.source, d.store);
  await r.stop();
  t.diagnostic(`journal: ${journal(d.store).length} records`);
  return d;
}

const last = (records: JournalRecord[], p: string) =>
  records.filter((r) => 'p' in r && r.p === p).at(-1) as Record<string, unknown> | undefined;

test('owners, groups, modes, mtimes, extended attributes and ACLs round trip a restore as root', async (t) => {
  if (!needsRoot(t)) {
    return;
  }
  const d = await captured(t, 'vigil-meta-root-');
  const records = journal(d.store);
  assert.deepEqual(
    {
      u: last(records, 'f1.txt')?.u,
      g: last(records, 'f1.txt')?.g,
      un: last(records, 'f1.txt')?.un,
      gn: last(records, 'f1.txt')?.gn,
    },
    { u: 65534, g: 65534, un: 'nobody', gn: 'nogroup' }
  );
  const f2 = last(records, 'f2.txt') as Record<string, unknown>;
  assert.equal(f2.u, 4242);
  assert.equal('un' in f2, false, 'a uid without a name has none recorded');
  assert.deepEqual(Object.keys(last(records, 'f1.txt')?.x as object).sort(), [
    'system.posix_acl_access',
    'trusted.t',
    'user.bin',
  ]);

  const to = path.join(tempDir('vigil-meta-out-'), 'out');
  const res = await runCliToEnd(['restore', '--store', d.store, '--at', 'now', '--to', to]);
  assert.equal(res.code, 0, res.stderr);
  assert.doesNotMatch(res.stderr, /metadata not restored/);
  assert.deepEqual(diffMeta(metaSnapshot(d.source), metaSnapshot(to)), []);
  assert.equal(fs.statSync(path.join(to, 'f1.txt')).mode & 0o777, 0o640);
  assert.equal(fs.statSync(path.join(to, 'f2.txt')).mtimeMs, (T + 1) * 1000);
});

test('a change of owner or extended attributes alone is recorded, while watching and at the catch-up, and listed as metadata', async (t) => {
  if (!needsRoot(t)) {
    return;
  }
  const d = replicatorDirs('vigil-meta-change-');
  const f = path.join(d.source, 'f.txt');
  const dir = path.join(d.source, 'dir');
  fs.writeFileSync(f, 'content');
  fs.mkdirSync(dir);
  let r = startReplicator(d.source, d.store, d.status);
  await waitState(r, 'watching');
  const recordOf = (p: string, ok: (x: Record<string, unknown>) => boolean) =>
    waitFor(`a record of ${p} with the change`, () => {
      const x = last(journal(d.store), p);
      return x && ok(x) ? x : undefined;
    });
  fs.chownSync(f, NOBODY.uid, NOBODY.gid);
  await recordOf('f.txt', (x) => x.u === NOBODY.uid && x.un === 'nobody');
  xattr.setAttributeSync(f, 'user.note', 'added');
  await recordOf(
    'f.txt',
    (x) => (x.x as Record<string, string> | undefined)?.['user.note'] === Buffer.from('added').toString('base64')
  );
  fs.chownSync(dir, NOBODY.uid, NOBODY.gid);
  await recordOf('dir', (x) => x.u === NOBODY.uid);
  xattr.setAttributeSync(dir, 'user.tag', 'x');
  await recordOf('dir', (x) => (x.x as Record<string, string> | undefined)?.['user.tag'] !== undefined);
  await r.stop();

  // While it is down: a directory's new attribute and owner, a file's new attribute.
  fs.chownSync(dir, 0, NOBODY.gid);
  xattr.setAttributeSync(dir, 'user.down', 'while down');
  xattr.setAttributeSync(f, 'user.down', 'while down');
  r = startReplicator(d.source, d.store, d.status);
  await waitState(r, 'watching');
  await recordOf('dir', (x) => x.u === 0 && (x.x as Record<string, string> | undefined)?.['user.down'] !== undefined);
  await recordOf('f.txt', (x) => (x.x as Record<string, string> | undefined)?.['user.down'] !== undefined);
  await r.stop();

  const v = await runCliToEnd(['versions', '--store', d.store, '--path', 'f.txt', '--json']);
  assert.equal(v.code, 0, v.stderr);
  const changes = (JSON.parse(v.stdout) as { versions: Array<{ change: string }> }).versions.map((x) => x.change);
  assert.deepEqual(changes, ['created', 'metadata', 'metadata', 'metadata']);
});

test('restore as an ordinary user: owners are reported not restored (not root), modes, mtimes, user attributes and ACLs are restored', async (t) => {
  if (!needsRoot(t)) {
    return;
  }
  const d = await captured(t, 'vigil-meta-user-');
  // The store readable and the destination's parent writable by nobody.
  for (const p of [
    d.store,
    ...(fs.readdirSync(d.store, { recursive: true }) as string[]).map((x) => path.join(d.store, x)),
  ]) {
    fs.lchownSync(p, NOBODY.uid, NOBODY.gid);
  }
  fs.chownSync(d.root, NOBODY.uid, NOBODY.gid);
  const to = path.join(d.root, 'out');
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', CLI, 'restore', '--store', d.store, '--at', 'now', '--to', to],
    {
      cwd: AGENT_DIR,
      stdio: ['ignore', 'pipe', 'pipe'],
      ...NOBODY,
    }
  );
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  child.stdout.resume();
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  assert.equal(code, 0, stderr);
  const lines = stderr.split('\n').filter((l) => l.includes('metadata not restored'));
  assert.deepEqual(lines.sort(), [
    'vigil-agent: metadata not restored: d/inner: owner root:root (0:0) not restored: not root',
    'vigil-agent: metadata not restored: d: owner nobody:root (65534:0) not restored: not root',
    'vigil-agent: metadata not restored: f1.txt: extended attribute trusted.t not restored: EPERM',
    'vigil-agent: metadata not restored: f2.txt: owner 4242:4343 not restored: not root',
  ]);
  const want = metaSnapshot(d.source);
  const got = metaSnapshot(to);
  // What nobody cannot do: give files away, write trusted.* attributes.
  for (const [p, m] of want) {
    m.uid = NOBODY.uid;
    m.gid = NOBODY.gid;
    if (m.xattrs) {
      delete m.xattrs['trusted.t'];
    }
    assert.ok(got.has(p), p);
  }
  assert.deepEqual(diffMeta(want, got), []);
});

test('without the native module: capture goes on and records why attributes are missing; a restore says which it cannot set', async (t) => {
  if (!needsRoot(t)) {
    return;
  }
  const d = await captured(t, 'vigil-meta-nomod-', { VIGIL_NATIVE_XATTR: '0' });
  const f1 = last(journal(d.store), 'f1.txt') as Record<string, unknown>;
  assert.equal(f1.u, NOBODY.uid);
  assert.equal(f1.x, undefined);
  assert.equal(f1.xe, 'not read: switched off (VIGIL_NATIVE_XATTR=0)');
  const to = path.join(tempDir('vigil-meta-out-'), 'out');
  const res = await runCliToEnd(['restore', '--store', d.store, '--at', 'now', '--to', to]);
  assert.equal(res.code, 0, res.stderr);
  assert.match(
    res.stderr,
    /metadata not restored: f1\.txt: extended attributes not read: switched off \(VIGIL_NATIVE_XATTR=0\)/
  );
  assert.deepEqual(xattrsOf(path.join(to, 'f1.txt')), {});
  assert.equal(fs.statSync(path.join(to, 'f1.txt')).uid, NOBODY.uid, 'owners do not need the module');

  // A store with attributes, restored where the module is missing: each path says which.
  const d2 = await captured(t, 'vigil-meta-nomod2-');
  const to2 = path.join(tempDir('vigil-meta-out-'), 'out');
  const res2 = await runCliToEnd(['restore', '--store', d2.store, '--at', 'now', '--to', to2], {
    VIGIL_NATIVE_XATTR: '0',
  });
  assert.equal(res2.code, 0, res2.stderr);
  assert.match(
    res2.stderr,
    /f1\.txt: extended attributes \(system\.posix_acl_access, trusted\.t, user\.bin\) not restored: switched off/
  );
});

test('owners by name where the recorded name resolves here, by number with --numeric-ids or without a name', () => {
  assert.deepEqual(ownerFor({ u: 4242, g: 4343, un: 'nobody', gn: 'nogroup' }), { uid: 65534, gid: 65534 });
  assert.deepEqual(ownerFor({ u: 4242, g: 4343, un: 'nobody', gn: 'nogroup' }, true), { uid: 4242, gid: 4343 });
  assert.deepEqual(ownerFor({ u: 4242, g: 4343, un: 'no-such-user-here' }), { uid: 4242, gid: 4343 });
  assert.equal(ownerFor({}), undefined, 'a record from before owners were recorded');
});

test('a record from before these keys restores as before; invalid metadata keys are refused', () => {
  const dir = tempDir('vigil-meta-old-');
  const f = path.join(dir, 'f');
  fs.writeFileSync(f, 'x');
  const before = fs.statSync(f);
  assert.deepEqual(applyMetadata(f, {}), []);
  assert.equal(fs.statSync(f).ctimeMs, before.ctimeMs, 'nothing was changed');
  const rec = { q: 1, at: 1, op: 'file', p: 'f', h: 'a'.repeat(64), s: 1, m: 0o644, mt: 1, ct: 1, ino: 1 };
  assert.equal(checkRecord(rec), undefined);
  assert.equal(checkRecord({ ...rec, u: 1, g: 2, un: 'a', gn: 'b', x: { 'user.a': 'AA==' }, xe: 'why' }), undefined);
  assert.equal(checkRecord({ ...rec, u: -1 }), 'u: expected a non-negative integer');
  assert.equal(checkRecord({ ...rec, x: { 'user.a': 1 } }), 'x: expected base64 strings');
  assert.equal(checkRecord({ op: 'dir', q: 1, at: 1, p: 'd', m: 0o755, mt: 1, x: [] }), 'x: expected an object');
});

test('extended attributes beyond 64 KiB per path are not captured, and the record says so', (t) => {
  if (!needsRoot(t)) {
    return;
  }
  // ext4 keeps a file's attributes in one block; tmpfs takes more (user.* since Linux 6.6).
  const mnt = tempDir('vigil-meta-tmpfs-');
  try {
    spawnSyncOk('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mnt]);
  } catch (e) {
    t.skip(`cannot mount a tmpfs here: ${(e as Error).message}`);
    return;
  }
  try {
    const f = path.join(mnt, 'big');
    fs.writeFileSync(f, '');
    try {
      for (let i = 0; i < 3; i++) {
        xattr.setAttributeSync(f, `user.big${i}`, Buffer.alloc(30_000, i));
      }
    } catch (e) {
      t.skip(`this tmpfs refuses 90 KB of user attributes: ${(e as Error).message}`);
      return;
    }
    const warned: string[] = [];
    const m = readMetadata(f, 0, 0, (msg, fields) => warned.push(`${msg} ${JSON.stringify(fields)}`));
    assert.equal(m.x, undefined);
    assert.equal(m.xe, `not captured: too large (more than ${XATTR_MAX_BYTES} bytes of names and values)`);
    assert.equal(warned.length, 1);
  } finally {
    spawnSyncOk('umount', [mnt]);
  }
});

function spawnSyncOk(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')}: ${r.error?.message ?? r.stderr.trim()}`);
  }
}
