// What change notifications do not cover, and what the replicator does about it: directories
// made again on the same inode, unreadable directories and files (as an ordinary user), writes
// through another hard link or a memory mapping, names that are not UTF-8, paths longer than
// the system's limit, files that never hold still. Each is captured, or reported as not covered
// (with the lag counting), never recorded as deleted and never fatal.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, test, type TestContext } from 'node:test';
import { fsPath, mkdirp, viaShort } from '../src/replicator/fspath';
import { restoreAsync } from '../src/replicator/restore';
import { waitFor } from './helpers';
import {
  journal,
  killReplicators,
  replicatorDirs,
  startReplicator,
  waitMirror,
  waitState,
  type RunningReplicator,
} from './replicator-helpers';

after(killReplicators);

const NOBODY = { uid: 65534, gid: 65534 };
const write = (file: string, data: string | Buffer) => {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, data);
};
const mirrored = (store: string, p: string) => {
  try {
    return fs.readFileSync(path.join(store, 'mirror', p), 'utf8');
  } catch {
    return undefined;
  }
};

test('a directory deleted and made again (on the same inode) is watched again at once, not at the next rescan', async () => {
  const d = replicatorDirs('vigil-cov-');
  const r = startReplicator(d.source, d.store, d.status, ['--rescan-every', '1h']);
  await waitState(r);
  // mkdir a; echo 1 > a/f1 (captured, so a is watched); rm -rf a; mkdir a; echo 2 > a/f2 —
  // ten times. ext4 gives the new directory the inode the old one had, most of the time.
  for (let i = 0; i < 10; i++) {
    const a = path.join(d.source, `t${i}`);
    fs.mkdirSync(a);
    fs.writeFileSync(path.join(a, 'f1'), '1');
    await waitFor('a/f1 to be captured', () => mirrored(d.store, `t${i}/f1`) === '1');
    fs.rmSync(a, { recursive: true });
    fs.mkdirSync(a);
    fs.writeFileSync(path.join(a, 'f2'), '2');
  }
  await waitMirror(d.source, d.store, 10_000);
  // Later writes into each new directory are seen through a watch on it.
  for (let i = 0; i < 10; i++) {
    fs.writeFileSync(path.join(d.source, `t${i}`, 'f3'), '3');
  }
  await waitMirror(d.source, d.store, 10_000);
  await r.stop();
});

/** Root runs the replicator as nobody, to whom permissions apply; elsewhere the test is skipped. */
function asNobody(t: TestContext, root: string): boolean {
  if (process.getuid?.() !== 0) {
    t.skip('needs root, to run the replicator as an ordinary user');
    return false;
  }
  fs.chownSync(root, NOBODY.uid, NOBODY.gid);
  for (const e of fs.readdirSync(root, { recursive: true }) as string[]) {
    fs.lchownSync(path.join(root, e), NOBODY.uid, NOBODY.gid);
  }
  return true;
}

function notCovered(r: RunningReplicator, p: string, reason: RegExp) {
  return waitFor(`${p} to be reported not covered (${reason})`, () => {
    const s = r.status();
    return s?.notCovered.find((u) => u.path === p && reason.test(u.reason)) ? s : undefined;
  });
}

test('an unreadable directory is unknown, never deleted and never fatal: at start, after a capture, made while running', async (t) => {
  const d = replicatorDirs('vigil-cov-');
  write(path.join(d.source, 'locked-at-start', 'a.txt'), 'in a directory nobody may read');
  write(path.join(d.source, 'secret', 's.txt'), 'first');
  write(path.join(d.source, 'open', 'o.txt'), 'open');
  if (!asNobody(t, d.root)) {
    return;
  }
  fs.chmodSync(path.join(d.source, 'locked-at-start'), 0o000);
  const r = startReplicator(d.source, d.store, d.status, ['--poll-every', '200ms', '--rescan-every', '1h'], {}, NOBODY);
  const first = await waitState(r);
  assert.ok(
    first.notCovered.some((u) => u.path === 'locked-at-start' && /cannot be read \(EACCES\)/.test(u.reason)),
    JSON.stringify(first.notCovered)
  );
  assert.ok(first.atRiskSince !== null, 'a known blind spot is never lag 0');
  assert.equal(mirrored(d.store, 'secret/s.txt'), 'first');

  // A captured file's directory becomes unreadable, then the file changes: unknown, not deleted.
  fs.chmodSync(path.join(d.source, 'secret'), 0o000);
  fs.writeFileSync(path.join(d.source, 'secret', 's.txt'), 'second, while unreadable');
  // The directory (or the file in it, if its change notification came first) is listed.
  const st = await waitFor('secret to be reported not covered', () => {
    const s = r.status();
    return s?.notCovered.find(
      (u) => (u.path === 'secret' || u.path === 'secret/s.txt') && /cannot be read \(EACCES\)/.test(u.reason)
    )
      ? s
      : undefined;
  });
  assert.match(st.message ?? '', /path\(s\) not covered: /);
  // A directory made unreadable while running: reported, the replicator carries on.
  fs.mkdirSync(path.join(d.source, 'new-locked'), { mode: 0o000 });
  await notCovered(r, 'new-locked', /cannot be read \(EACCES\)/);
  fs.writeFileSync(path.join(d.source, 'open', 'o.txt'), 'still captured');
  await waitFor(
    'the readable part to go on being captured',
    () => mirrored(d.store, 'open/o.txt') === 'still captured'
  );
  assert.equal(r.child.exitCode, null, 'still running');
  assert.ok(!journal(d.store).some((x) => x.op === 'del'), 'nothing recorded as deleted');
  assert.equal(mirrored(d.store, 'secret/s.txt'), 'first', 'the mirror keeps the last version');

  // Readable again: captured, and no longer listed.
  fs.chmodSync(path.join(d.source, 'secret'), 0o755);
  fs.chmodSync(path.join(d.source, 'locked-at-start'), 0o755);
  await waitFor(
    'the change made while unreadable to be captured',
    () => mirrored(d.store, 'secret/s.txt') === 'second, while unreadable'
  );
  await waitFor(
    'the directory locked at start to be captured',
    () => mirrored(d.store, 'locked-at-start/a.txt') === 'in a directory nobody may read'
  );
  let last: unknown;
  const clear = await waitFor('the blind spots to clear (but new-locked)', () => {
    const s = r.status();
    last = s?.notCovered;
    return s && s.notCovered.length === 1 && s.notCovered[0]?.path === 'new-locked' ? s : undefined;
  }).catch((e: Error) => {
    throw new Error(
      `${e.message}: ${JSON.stringify(last)}\n${r
        .log()
        .split('\n')
        .filter((l) => /covered/.test(l))
        .join('\n')}`
    );
  });
  assert.equal(clear.notCoveredCount, 1);
  await r.stop();
});

test('a file written through another hard link, inside or outside the tree, is captured', async () => {
  const d = replicatorDirs('vigil-cov-');
  write(path.join(d.source, 'a', 'f'), 'v1');
  fs.mkdirSync(path.join(d.source, 'b'));
  fs.linkSync(path.join(d.source, 'a', 'f'), path.join(d.source, 'b', 'g'));
  const outside = path.join(d.root, 'outside-link');
  fs.linkSync(path.join(d.source, 'a', 'f'), outside);
  const r = startReplicator(d.source, d.store, d.status, ['--rescan-every', '1h']);
  await waitState(r);
  await waitMirror(d.source, d.store);
  // In place through the link outside the tree: no notification names a path in the tree.
  const fd = fs.openSync(outside, 'r+');
  fs.writeSync(fd, 'v2 written outside', 0);
  fs.closeSync(fd);
  await waitFor(
    'both names in the tree to be captured',
    () => mirrored(d.store, 'a/f') === 'v2 written outside' && mirrored(d.store, 'b/g') === 'v2 written outside',
    5000
  );
  // Through the second name inside the tree: the first name's version is captured too.
  const fd2 = fs.openSync(path.join(d.source, 'b', 'g'), 'r+');
  fs.writeSync(fd2, 'v3 written via b/g', 0);
  fs.closeSync(fd2);
  await waitFor(
    'a/f to be captured after a write through b/g',
    () => mirrored(d.store, 'a/f') === 'v3 written via b/g',
    5000
  );
  await waitMirror(d.source, d.store);
  await r.stop();
});

test('a file written through a shared memory mapping is checked on a timer and reported', async (t) => {
  const d = replicatorDirs('vigil-cov-');
  const db = path.join(d.source, 'db.bin');
  write(db, Buffer.alloc(64 * 1024));
  const r = startReplicator(d.source, d.store, d.status, ['--poll-every', '200ms', '--rescan-every', '1h']);
  await waitState(r);
  // A process that maps the file shared and writable, writes through the mapping when told.
  const py = spawn(
    'python3',
    [
      '-c',
      'import mmap,os,sys\nfd=os.open(sys.argv[1],os.O_RDWR)\nm=mmap.mmap(fd,0)\nfor line in sys.stdin:\n  off,val=line.split()\n  m[int(off):int(off)+len(val)]=val.encode()\n  print("ok",flush=True)\n',
      db,
    ],
    {
      stdio: ['pipe', 'pipe', 'inherit'],
    }
  );
  t.after(() => py.kill('SIGKILL'));
  let out = '';
  py.stdout.on('data', (b: Buffer) => (out += b.toString()));
  const tell = async (off: number, val: string) => {
    const n = out.split('ok').length;
    py.stdin.write(`${off} ${val}\n`);
    await waitFor('the mapping to be written', () => out.split('ok').length > n);
  };
  await tell(0, 'MMAP-ONE');
  const st = await notCovered(r, 'db.bin', /mapped for writing by pid \d+ \(python3?\)/);
  assert.ok(st.atRiskSince !== null);
  await waitFor(
    'the write through the mapping to be captured',
    () => mirrored(d.store, 'db.bin')?.startsWith('MMAP-ONE'),
    5000
  );
  await tell(40_000, 'MMAP-TWO');
  await waitFor(
    'the second write to be captured',
    () => mirrored(d.store, 'db.bin')?.slice(40_000, 40_008) === 'MMAP-TWO',
    5000
  );
  py.stdin.end();
  await new Promise((resolve) => py.on('exit', resolve));
  await waitFor('the file to be covered again once unmapped', () => r.status()?.notCovered.length === 0, 5000);
  await r.stop();
});

/** Every path under `root` as raw bytes (hex) with its type and content or link target. */
function rawTree(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (dir: Buffer, rel: string) => {
    for (const name of fs.readdirSync(dir, { encoding: 'buffer' })) {
      const abs = Buffer.concat([dir, Buffer.from('/'), name]);
      const key = `${rel}/${name.toString('hex')}`;
      const st = fs.lstatSync(abs);
      if (st.isSymbolicLink()) {
        out.set(key, `link ${fs.readlinkSync(abs, { encoding: 'buffer' }).toString('hex')}`);
      } else if (st.isDirectory()) {
        out.set(key, 'dir');
        walk(abs, key);
      } else {
        out.set(key, `file ${fs.readFileSync(abs).toString('hex')}`);
      }
    }
  };
  walk(Buffer.from(root), '');
  return out;
}

test('names that are not UTF-8 are captured and restored byte for byte', async () => {
  const d = replicatorDirs('vigil-cov-');
  const at = (...parts: Array<string | Buffer>) =>
    Buffer.concat([Buffer.from(d.source), ...parts.flatMap((p) => [Buffer.from('/'), Buffer.from(p)])]);
  const latin = Buffer.from([0x64, 0xe9]); // "dé" in Latin-1
  const junk = Buffer.from([0x66, 0xff, 0xfe, 0x2e, 0x74]);
  fs.mkdirSync(at(latin));
  fs.writeFileSync(at(latin, 'inner.txt'), 'in a Latin-1 directory');
  fs.writeFileSync(at(junk), 'not UTF-8 at all');
  fs.symlinkSync(junk, at('link-to-junk'));
  const r = startReplicator(d.source, d.store, d.status, ['--rescan-every', '1h']);
  await waitState(r);
  // And one made while watching.
  fs.writeFileSync(at(latin, Buffer.from([0xc3, 0x28])), 'an invalid two-byte sequence');
  await waitFor(
    'every name to be captured',
    () => rawTree(path.join(d.store, 'mirror')).size === rawTree(d.source).size
  );
  assert.ok(
    journal(d.store).some((x) => x.op === 'file' && x.p === 'f\udcff\udcfe.t'),
    'the journal keeps the bytes as escapes'
  );
  await r.stop();
  const to = path.join(d.root, 'restored');
  const res = await restoreAsync({ store: d.store, at: Date.now(), to });
  assert.deepEqual(res.errors, []);
  assert.deepEqual([...rawTree(to)].sort(), [...rawTree(d.source)].sort());
});

test('paths longer than the system limit are captured, mirrored and restored, and never stop the replicator', async () => {
  const d = replicatorDirs('vigil-cov-');
  // 22 directories of 190 bytes: about 4,200 bytes below the source, more below the mirror.
  const deep = Array.from({ length: 22 }, (_, i) => `${String(i).padStart(2, '0')}${'x'.repeat(188)}`).join('/');
  mkdirp(fsPath(d.source, deep));
  viaShort(fsPath(d.source, `${deep}/deep.txt`), (p) => fs.writeFileSync(p, 'far down'));
  write(path.join(d.source, 'shallow.txt'), 'near');
  const r = startReplicator(d.source, d.store, d.status, ['--rescan-every', '1h']);
  await waitState(r);
  const readDeep = (root: string, p: string) => {
    try {
      return viaShort(fsPath(root, p), (a) => fs.readFileSync(a, 'utf8'));
    } catch {
      return undefined;
    }
  };
  await waitFor(
    'the deep file to be mirrored',
    () => readDeep(path.join(d.store, 'mirror'), `${deep}/deep.txt`) === 'far down'
  );
  viaShort(fsPath(d.source, `${deep}/deep.txt`), (p) => fs.writeFileSync(p, 'changed far down'));
  viaShort(fsPath(d.source, `${deep}/new.txt`), (p) => fs.writeFileSync(p, 'new far down'));
  await waitFor(
    'changes there to be captured while watching',
    () => readDeep(path.join(d.store, 'mirror'), `${deep}/new.txt`) === 'new far down'
  );
  await waitFor(
    'the rewrite too',
    () => readDeep(path.join(d.store, 'mirror'), `${deep}/deep.txt`) === 'changed far down'
  );
  assert.equal(r.status()?.notCoveredCount, 0);
  await r.stop();
  const to = path.join(d.root, 'restored');
  const res = await restoreAsync({ store: d.store, at: Date.now(), to });
  assert.deepEqual(res.errors, []);
  assert.equal(readDeep(to, `${deep}/deep.txt`), 'changed far down');
  assert.equal(fs.readFileSync(path.join(to, 'shallow.txt'), 'utf8'), 'near');
});

test('a file that never holds still is reported as changing, its last consistent version kept', async () => {
  const d = replicatorDirs('vigil-cov-');
  const f = path.join(d.source, 'busy.log');
  write(f, 'steady');
  const r = startReplicator(d.source, d.store, d.status, ['--changing-after', '1s']);
  await waitState(r);
  await waitMirror(d.source, d.store);
  let n = 0;
  const busy = setInterval(() => fs.writeFileSync(f, `rewrite ${n++}`), 5);
  try {
    const st = await notCovered(
      r,
      'busy.log',
      /changing faster than it can be read consistently; its version of .* is kept/
    );
    assert.ok(
      st.atRiskSince !== null && Date.now() - Date.parse(st.atRiskSince) >= 1000,
      'the lag counts from the first change not captured'
    );
    assert.equal(mirrored(d.store, 'busy.log'), 'steady');
  } finally {
    clearInterval(busy);
  }
  await waitFor(
    'the last rewrite to be captured once it holds still',
    () => mirrored(d.store, 'busy.log') === `rewrite ${n - 1}`
  );
  await waitFor('busy.log to be covered again', () => r.status()?.notCoveredCount === 0);
  await r.stop();
});

test('a file whose modification time is set in the future (an archive, a clock elsewhere) is captured at once', async () => {
  const d = replicatorDirs('vigil-cov-');
  const r = startReplicator(d.source, d.store, d.status);
  await waitState(r);
  const f = path.join(d.source, 'from-the-future.txt');
  fs.writeFileSync(f, 'dated next year');
  const nextYear = Date.now() / 1000 + 365 * 24 * 3600;
  fs.utimesSync(f, nextYear, nextYear);
  await waitFor('it to be captured', () => mirrored(d.store, 'from-the-future.txt') === 'dated next year', 5000);
  const rec = journal(d.store)
    .filter((x) => x.op === 'file' && x.p === 'from-the-future.txt')
    .pop();
  assert.ok(rec?.op === 'file' && Math.abs(rec.mt - nextYear * 1000) < 1, 'its modification time is recorded as it is');
  await r.stop();
});
