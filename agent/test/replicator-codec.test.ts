// The journal's codec: readable changes <-> the compact on-disk records, byte for byte.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  JournalCodecError,
  decodeRecord,
  encodeNew,
  encodeRecord,
  frame,
  useJournalKey,
  type Change,
  type JournalRecord,
  type NewChange,
} from '../src/replicator/journal';

const H = 'ab'.repeat(32);
/** Records as this version has always written them (key order included). */
const onDisk: JournalRecord[] = [
  { q: 1, at: 10, op: 'dir', p: 'd', m: 0o755, mt: 5, u: 1000, g: 1000, un: 'me', gn: 'us' },
  {
    q: 2,
    at: 11,
    op: 'file',
    p: 'd/f',
    h: H,
    s: 3,
    m: 0o644,
    mt: 6,
    ct: 7,
    ino: 42,
    u: 0,
    g: 0,
    x: { 'user.a': 'AA==' },
    xe: 'not read: x',
    d: 'YWJj',
  },
  { q: 3, at: 12, op: 'link', p: 'd/l', l: 'f', mt: 8, ct: 9, ino: 43, u: 1, g: 2 },
  { q: 4, at: 13, op: 'file', p: 'old', h: H, s: 3, m: 0o600, mt: 6, ct: 7, ino: 44 },
  { q: 5, at: 14, op: 'del', p: 'old' },
  { q: 6, at: 15, op: 'sync', upTo: 4 },
  { q: 7, at: 16, op: 'base', from: 9 },
];

test('decoding then encoding gives the same record, keys in the same order', () => {
  for (const r of onDisk) {
    assert.equal(JSON.stringify(encodeRecord(decodeRecord(r))), JSON.stringify(r));
  }
});

test('the readable form names every field; records from before metadata have none', () => {
  assert.deepEqual(decodeRecord(onDisk[1] as JournalRecord), {
    seq: 2,
    at: 11,
    op: 'file',
    path: 'd/f',
    hash: H,
    size: 3,
    mode: 0o644,
    mtimeMs: 6,
    ctimeMs: 7,
    ino: 42,
    meta: { u: 0, g: 0, x: { 'user.a': 'AA==' }, xe: 'not read: x' },
    data: 'YWJj',
  });
  assert.equal('meta' in decodeRecord(onDisk[3] as JournalRecord), false);
});

test('frames of encoded changes are the bytes of the records written before, MAC included', () => {
  const key = Buffer.from('0123456789abcdef0123456789abcdef');
  for (const k of [undefined, key]) {
    useJournalKey(k);
    try {
      for (const r of onDisk) {
        assert.deepEqual(frame(encodeRecord(decodeRecord(r))), frame(r));
      }
    } finally {
      useJournalKey(undefined);
    }
  }
});

test('a new change encodes without a sequence number, as the writer numbers it', () => {
  const c: NewChange = { at: 1, op: 'dir', path: 'a', mode: 0o700, mtimeMs: 2, meta: { u: 3, g: 4 } };
  assert.equal(JSON.stringify(encodeNew(c)), '{"at":1,"op":"dir","p":"a","m":448,"mt":2,"u":3,"g":4}');
});

test('encoding then decoding gives the same change; metadata keys are written in one order, however they came', () => {
  for (const r of onDisk) {
    const c = decodeRecord(r);
    assert.deepEqual(decodeRecord(encodeRecord(c)), c);
  }
  const c: Change = {
    seq: 8,
    at: 17,
    op: 'dir',
    path: 'd',
    mode: 0o700,
    mtimeMs: 2,
    meta: { xe: 'not read: EACCES', gn: 'us', g: 4, u: 3 },
  };
  assert.equal(
    JSON.stringify(encodeRecord(c)),
    '{"q":8,"at":17,"op":"dir","p":"d","m":448,"mt":2,"u":3,"g":4,"gn":"us","xe":"not read: EACCES"}'
  );
});

test('a record that is not a known change is a clear error, naming the record and what is wrong', () => {
  const bad = (r: unknown, why: RegExp) =>
    assert.throws(
      () => decodeRecord(r as JournalRecord),
      (e: Error) => e instanceof JournalCodecError && why.test(e.message),
      `${JSON.stringify(r)} should fail with ${why}`
    );
  // A newer version's op, and the frames that head segments and snapshots.
  bad({ q: 8, at: 17, op: 'chown', p: 'a', u: 0 }, /cannot decode record 8: op: unknown "chown"/);
  bad(
    { q: 9, at: 18, op: 'segment', epoch: 1, first: 10, prev: null, prevLast: null },
    /cannot decode record 9: a segment header is not a change/
  );
  bad({ q: 9, at: 18, op: 'tree', upTo: 9, epoch: 1, from: null, count: 0 }, /record 9: a tree header is not a change/);
  // Garbled: missing or mistyped fields, a path that leaves the tree, no sequence number at all.
  bad({ q: 10, at: 19, op: 'file', p: 'f', s: 3, m: 0o644, mt: 1, ct: 1, ino: 1 }, /record 10: h: invalid for op file/);
  bad({ q: 11, at: 20, op: 'dir', p: 'd', m: '0755', mt: 1 }, /record 11: m: invalid for op dir/);
  bad({ q: 12, at: 21, op: 'link', p: 'l', mt: 1, ct: 1, ino: 1 }, /record 12: l: invalid for op link/);
  bad({ q: 13, at: 22, op: 'del', p: '../etc/passwd' }, /record 13: p: unsafe path/);
  bad({ q: 14, at: 23, op: 'dir', p: 'd', m: 0o755, mt: 1, u: -1 }, /record 14: u: expected a non-negative integer/);
  bad({ at: 24, op: 'del', p: 'x' }, /cannot decode a record: q: expected an integer/);
  bad('{"q":1}', /cannot decode a record: not an object/);
  bad(null, /not an object/);
  // And the other way: a change of an op the codec does not know is never written.
  assert.throws(
    () => encodeRecord({ seq: 15, at: 25, op: 'chmod', path: 'a' } as unknown as Change),
    (e: Error) => e instanceof JournalCodecError && /cannot encode record 15: unknown op "chmod"/.test(e.message)
  );
  assert.throws(
    () => encodeNew({ at: 25, op: 'rename' } as unknown as NewChange),
    /cannot encode record 0: unknown op "rename"/
  );
});
