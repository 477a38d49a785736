// The journal's codec: readable changes <-> the compact on-disk records, byte for byte.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeRecord, encodeNew, encodeRecord, frame, useJournalKey, type JournalRecord, type NewChange } from '../src/replicator/journal';

const H = 'ab'.repeat(32);
/** Records as this version has always written them (key order included). */
const onDisk: JournalRecord[] = [
  { q: 1, at: 10, op: 'dir', p: 'd', m: 0o755, mt: 5, u: 1000, g: 1000, un: 'me', gn: 'us' },
  { q: 2, at: 11, op: 'file', p: 'd/f', h: H, s: 3, m: 0o644, mt: 6, ct: 7, ino: 42, u: 0, g: 0, x: { 'user.a': 'AA==' }, xe: 'not read: x', d: 'YWJj' },
  { q: 3, at: 12, op: 'link', p: 'd/l', l: 'f', mt: 8, ct: 9, ino: 43, u: 1, g: 2 },
  { q: 4, at: 13, op: 'file', p: 'old', h: H, s: 3, m: 0o600, mt: 6, ct: 7, ino: 44 },
  { q: 5, at: 14, op: 'del', p: 'old' },
  { q: 6, at: 15, op: 'sync', upTo: 4 },
  { q: 7, at: 16, op: 'base', from: 9 },
];

test('decoding then encoding gives the same record, keys in the same order', () => {
  for (const r of onDisk) assert.equal(JSON.stringify(encodeRecord(decodeRecord(r))), JSON.stringify(r));
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
      for (const r of onDisk) assert.deepEqual(frame(encodeRecord(decodeRecord(r))), frame(r));
    } finally {
      useJournalKey(undefined);
    }
  }
});

test('a new change encodes without a sequence number, as the writer numbers it', () => {
  const c: NewChange = { at: 1, op: 'dir', path: 'a', mode: 0o700, mtimeMs: 2, meta: { u: 3, g: 4 } };
  assert.equal(JSON.stringify(encodeNew(c)), '{"at":1,"op":"dir","p":"a","m":448,"mt":2,"u":3,"g":4}');
});
