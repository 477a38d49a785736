// Journal authentication: with a key, every record carries a MAC, and restore and versions
// refuse a record whose MAC is missing or wrong, naming it. Records are forged in the framing
// docs/replicator.md documents (u32le length, u32le crc32, JSON), with a valid checksum.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { crc32 } from 'node:zlib';
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
  journal,
  killReplicators,
  replicatorDirs,
  segmentFiles,
  startReplicator,
  storeHash,
  waitMirror,
  waitState,
} from './replicator-helpers';

const tempDir = tempDirsRemovedAfter();
after(killReplicators);
const agents: RunningAgent[] = [];
const agentDirs: string[] = [];
after(async () => {
  for (const a of agents) {
    await a.stop('SIGKILL');
  }
  // A replicator outlives its agent by design (the next agent adopts it): end it here.
  for (const d of agentDirs) {
    killMarked(d);
  }
});

function keyFile(dir: string, key = 'a journal key of more than sixteen bytes', mode = 0o600): string {
  const file = path.join(dir, `key-${Math.random().toString(36).slice(2)}`);
  fs.writeFileSync(file, key + '\n', { mode });
  fs.chmodSync(file, mode);
  return file;
}

/** One frame with a correct CRC-32 around `json`, as anyone with write access could append. */
function forged(json: string): Buffer {
  const payload = Buffer.from(json, 'utf8');
  const head = Buffer.alloc(8);
  head.writeUInt32LE(payload.length, 0);
  head.writeUInt32LE(crc32(payload), 4);
  return Buffer.concat([head, payload]);
}

/** Frames of a journal file: [offset, json]. */
function frames(file: string): Array<[number, string]> {
  const buf = fs.readFileSync(file);
  const out: Array<[number, string]> = [];
  for (let off = 0; off + 8 <= buf.length;) {
    const len = buf.readUInt32LE(off);
    out.push([off, buf.toString('utf8', off + 8, off + 8 + len)]);
    off += 8 + len;
  }
  return out;
}

async function captured(key?: string) {
  const d = replicatorDirs('vigil-auth-');
  fs.writeFileSync(path.join(d.source, 'a.txt'), 'first content');
  const r = startReplicator(d.source, d.store, d.status, key ? ['--journal-key', key] : []);
  await waitState(r);
  await waitMirror(d.source, d.store);
  return { d, r };
}

test('with a key every record carries a MAC and restore checks it; a forged or edited record is refused, named, exit 1', async () => {
  const dir = tempDir();
  const key = keyFile(dir);
  const { d, r } = await captured(key);
  await r.stop();
  assert.ok(fs.existsSync(path.join(d.store, 'journal-auth.json')));
  const seg = segmentFiles(d.store).at(-1) as string;
  for (const [, json] of frames(seg)) {
    assert.match(json, /,"k":"[0-9a-f]{64}"\}$/, `a frame without a MAC: ${json}`);
  }

  // Honest restore with the key: everything, exit 0.
  const ok = await runCliToEnd([
    'restore',
    '--store',
    d.store,
    '--at',
    'now',
    '--to',
    path.join(dir, 'ok'),
    '--journal-key',
    key,
  ]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(fs.readFileSync(path.join(dir, 'ok', 'a.txt'), 'utf8'), 'first content');

  // Someone with write access to the store appends a record for a file that never existed.
  const last = journal(d.store).at(-1) as { q: number };
  const h = storeHash(d.store, 'first content');
  const evil = {
    q: last.q + 1,
    at: Date.now(),
    op: 'file',
    p: 'planted.sh',
    h,
    s: 13,
    m: 0o755,
    mt: Date.now(),
    ct: Date.now(),
    ino: 1,
  };
  fs.appendFileSync(seg, forged(JSON.stringify(evil)));
  // ... and one with a MAC copied from another record.
  const copiedMac = (frames(seg)[1] as [number, string])[1].match(/"k":"([0-9a-f]{64})"/)?.[1];
  fs.appendFileSync(seg, forged(JSON.stringify({ ...evil, q: last.q + 2, p: 'planted2.sh', k: copiedMac })));
  // ... and a final honest-looking record, so that the forged ones sit in the middle.
  fs.appendFileSync(seg, forged(JSON.stringify({ ...evil, q: last.q + 3, p: 'planted3.sh' })));

  const to = path.join(dir, 'after-forgery');
  const res = await runCliToEnd(['restore', '--store', d.store, '--at', 'now', '--to', to, '--journal-key', key]);
  assert.equal(res.code, 1, `a restore over forged records must fail: ${res.stdout}${res.stderr}`);
  assert.match(res.stderr, new RegExp(`record ${last.q + 1} refused: no MAC`));
  assert.match(res.stderr, /MAC does not match/);
  assert.match(res.stderr, /journal record\(s\) refused: their MAC is missing or does not match/);
  for (const p of ['planted.sh', 'planted2.sh', 'planted3.sh']) {
    assert.ok(!fs.existsSync(path.join(to, p)), `${p} was restored`);
  }
  assert.equal(fs.readFileSync(path.join(to, 'a.txt'), 'utf8'), 'first content', 'the honest records are restored');

  const v = await runCliToEnd(['versions', '--store', d.store, '--path', 'planted.sh', '--journal-key', key]);
  assert.equal(v.code, 1, v.stdout + v.stderr);

  const ver = await runCliToEnd(['verify', '--store', d.store, '--journal-key', key]);
  assert.equal(ver.code, 1, ver.stdout + ver.stderr);
  assert.match(ver.stderr, new RegExp(`refused journal record ${last.q + 2}: MAC does not match`));
  const noKey = await runCliToEnd(['verify', '--store', d.store]);
  assert.equal(noKey.code, 1);
  assert.match(noKey.stderr, /this store's journal is authenticated/);
});

test('an edited record (its mode made setuid, its checksum fixed) is refused', async () => {
  const dir = tempDir();
  const key = keyFile(dir);
  const { d, r } = await captured(key);
  await r.stop();
  const seg = segmentFiles(d.store).at(-1) as string;
  const buf = fs.readFileSync(seg);
  const parts: Buffer[] = [];
  let edited = 0;
  for (const [off, json] of frames(seg)) {
    const rec = JSON.parse(json) as { op: string; p?: string; m?: number };
    if (rec.op === 'file' && rec.p === 'a.txt') {
      rec.m = 0o4755;
      parts.push(forged(JSON.stringify(rec)));
      edited++;
    } else {
      const len = buf.readUInt32LE(off);
      parts.push(buf.subarray(off, off + 8 + len));
    }
  }
  assert.equal(edited, 1);
  fs.writeFileSync(seg, Buffer.concat(parts));
  const to = path.join(dir, 'to');
  const res = await runCliToEnd(['restore', '--store', d.store, '--at', 'now', '--to', to, '--journal-key', key]);
  assert.equal(res.code, 1, res.stdout + res.stderr);
  assert.match(res.stderr, /refused: MAC does not match: the record was changed/);
  assert.ok(
    !fs.existsSync(path.join(to, 'a.txt')) || (fs.statSync(path.join(to, 'a.txt')).mode & 0o4000) === 0,
    'the setuid edit took effect'
  );
});

test('an authenticated store is not read without its key, nor with another; a key readable by others is refused', async () => {
  const dir = tempDir();
  const key = keyFile(dir);
  const { d, r } = await captured(key);
  await r.stop();
  const none = await runCliToEnd(['restore', '--store', d.store, '--at', 'now', '--to', path.join(dir, 'x')]);
  assert.equal(none.code, 1);
  assert.match(none.stderr, /this store's journal is authenticated: give its key with --journal-key FILE/);
  const other = await runCliToEnd([
    'restore',
    '--store',
    d.store,
    '--at',
    'now',
    '--to',
    path.join(dir, 'y'),
    '--journal-key',
    keyFile(dir, 'another key, also long enough'),
  ]);
  assert.equal(other.code, 1);
  assert.match(other.stderr, /the journal key does not match this store's/);
  const loose = await runCliToEnd([
    'restore',
    '--store',
    d.store,
    '--at',
    'now',
    '--to',
    path.join(dir, 'z'),
    '--journal-key',
    keyFile(dir, undefined, 0o644),
  ]);
  assert.equal(loose.code, 1);
  assert.match(loose.stderr, /mode 0644 lets other users read it: chmod 600 it/);
  const short = await runCliToEnd([
    'restore',
    '--store',
    d.store,
    '--at',
    'now',
    '--to',
    path.join(dir, 'w'),
    '--journal-key',
    keyFile(dir, 'short'),
  ]);
  assert.match(short.stderr, /5 bytes; use at least 16/);
  // The replicator itself refuses to start on it without the key.
  const r2 = startReplicator(d.source, d.store, d.status);
  const exit = await r2.exited;
  assert.notEqual(exit.code, 0);
  assert.match(r2.log(), /this store's journal is authenticated: configure its key \(journalKey\)/);
});

test('a key configured on a store that had none: the earlier records still restore, the later ones carry a MAC, a restart replays both', async () => {
  const dir = tempDir();
  const { d, r } = await captured();
  await r.stop();
  const before = journal(d.store).at(-1) as { q: number };
  const key = keyFile(dir);
  const r2 = startReplicator(d.source, d.store, d.status, ['--journal-key', key]);
  await waitState(r2);
  fs.writeFileSync(path.join(d.source, 'b.txt'), 'written once the key was set');
  await waitMirror(d.source, d.store);
  await r2.stop();
  const auth = JSON.parse(fs.readFileSync(path.join(d.store, 'journal-auth.json'), 'utf8')) as { from: number };
  assert.equal(auth.from, before.q + 1);
  // A restart with the key replays the unauthenticated start and the authenticated rest.
  const r3 = startReplicator(d.source, d.store, d.status, ['--journal-key', key]);
  await waitState(r3);
  await r3.stop();
  assert.doesNotMatch(r3.log(), /refused/);
  const to = path.join(dir, 'to');
  const res = await runCliToEnd(['restore', '--store', d.store, '--at', 'now', '--to', to, '--journal-key', key]);
  assert.equal(res.code, 0, res.stderr);
  assert.equal(fs.readFileSync(path.join(to, 'a.txt'), 'utf8'), 'first content');
  assert.equal(fs.readFileSync(path.join(to, 'b.txt'), 'utf8'), 'written once the key was set');
  // Moving the start of authentication forward (to accept unauthenticated records) breaks its MAC.
  fs.writeFileSync(path.join(d.store, 'journal-auth.json'), JSON.stringify({ ...auth, from: 1e9 }));
  const moved = await runCliToEnd([
    'restore',
    '--store',
    d.store,
    '--at',
    'now',
    '--to',
    path.join(dir, 'to2'),
    '--journal-key',
    key,
  ]);
  assert.equal(moved.code, 1);
  assert.match(moved.stderr, /the journal key does not match this store's/);
});

test('journalKey in the agent configuration reaches the replicator it starts', async () => {
  const dir = tempDir();
  agentDirs.push(dir);
  const source = path.join(dir, 'data');
  const store = path.join(dir, 'store');
  fs.mkdirSync(source);
  fs.writeFileSync(path.join(source, 'x.txt'), 'protected');
  const key = keyFile(dir);
  const file = writeConfig(
    dir,
    baseConfig(dir, {
      processes: [{ name: 'cdp', kind: 'replicator', source, target: store, journalKey: key, stopTimeout: '5s' }],
    })
  );
  const agent = await startAgent(file);
  agents.push(agent);
  await waitFor('the replicator to catch up', async () => {
    const r = await read(`${agent.baseUrl}/v1/status`);
    const p = r.json.processes[0];
    return p?.protection?.state === 'watching' && p.protection.pendingChanges === 0 ? p : undefined;
  });
  await agent.stop('SIGTERM');
  // The replicator outlives its agent by design: end it before reading the store and removing it.
  killMarked(dir);
  assert.ok(fs.existsSync(path.join(store, 'journal-auth.json')), 'the store is not authenticated');
  const res = await runCliToEnd([
    'restore',
    '--store',
    store,
    '--at',
    'now',
    '--to',
    path.join(dir, 'to'),
    '--journal-key',
    key,
  ]);
  assert.equal(res.code, 0, res.stderr);
  assert.equal(fs.readFileSync(path.join(dir, 'to', 'x.txt'), 'utf8'), 'protected');
});
