// A store on storage that someone else writes: records forged in the journal's documented
// framing (u32le length | u32le CRC-32 | JSON payload, appended to the current segment) and
// edited objects must not steer a restore outside --to, through a symbolic link, into a setuid
// file, or to content that is not what was recorded.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { crc32 } from 'node:zlib';
import { hashBuffer } from '../src/replicator/digest';
import { recordPathProblem } from '../src/replicator/fspath';
import { versions } from '../src/replicator/restore';
import { JournalWriter, replay, resolveChain } from '../src/replicator/segments';
import { StoreLayout, prepareStore } from '../src/replicator/store';
import { runCliToEnd, tempDirsRemovedAfter } from './helpers';

const tempDir = tempDirsRemovedAfter();

/** A store with one real directory and file (`ok/a.txt`), written as the replicator writes it. */
async function store() {
  const root = tempDir('vigil-attack-');
  const dir = path.join(root, 'store');
  const layout = new StoreLayout(dir);
  prepareStore(layout);
  const writer = new JournalWriter(dir, resolveChain(dir), 0, 0, 1, () => undefined);
  const h = put(layout, 'real content');
  await writer.append([
    { at: 1000, op: 'dir', p: 'ok', m: 0o755, mt: 1000 },
    { at: 1000, op: 'file', p: 'ok/a.txt', h, s: 12, m: 0o644, mt: 1000, ct: 1000, ino: 1 },
  ]);
  const segment = writer.segment.file;
  writer.close();
  let q = 2;
  return {
    root,
    dir,
    layout,
    segment,
    /** Appends records in the documented framing; returns each frame's byte offset. */
    forge(records: Array<Record<string, unknown>>): number[] {
      const offsets: number[] = [];
      for (const r of records) {
        const payload = Buffer.from(JSON.stringify({ q: ++q, at: 2000, ...r }), 'utf8');
        const head = Buffer.alloc(8);
        head.writeUInt32LE(payload.length, 0);
        head.writeUInt32LE(crc32(payload), 4);
        offsets.push(fs.statSync(segment).size);
        fs.appendFileSync(segment, Buffer.concat([head, payload]));
      }
      return offsets;
    },
  };
}

/** Stores `content` as an object and returns its name. */
function put(layout: StoreLayout, content: string | Buffer): string {
  const h = hashBuffer(layout.hash, content);
  fs.mkdirSync(path.dirname(layout.object(h)), { recursive: true });
  fs.writeFileSync(layout.object(h), content);
  return h;
}

const file = (p: string, h: string, s: number, m = 0o644) => ({ op: 'file', p, h, s, m, mt: 2000, ct: 2000, ino: 2 });
const restoreCli = (dir: string, to: string, ...extra: string[]) =>
  runCliToEnd(['restore', '--store', dir, '--at', 'now', '--to', to, ...extra]);

/** Every path under `dir` (links not followed), for "nothing else was written". */
function listing(dir: string): string[] {
  return (fs.readdirSync(dir, { recursive: true }) as string[]).sort();
}

test('a recorded path must be relative, without "..", empty or "." components or NUL; any other bytes are a name', () => {
  for (const p of ['../../x', '/abs', 'a/../../x', 'a//b', './a', 'a/./b', 'a/', 'a/..', '..', '.', 'a\0b', '']) {
    assert.notEqual(recordPathProblem(p), undefined, JSON.stringify(p));
  }
  for (const p of ['a', '..foo', 'a/..b/c', '.hidden', '...', 'a/b.', 'name\udcff', 'sp ace/\\back', 'x\n']) {
    assert.equal(recordPathProblem(p), undefined, JSON.stringify(p));
  }
});

test('records whose path leaves the tree are skipped and reported with their segment and offset; nothing is written outside --to', async () => {
  const s = await store();
  const h = put(s.layout, 'evil');
  // --to sits three levels down, so that every escape below would land inside the test's root.
  const to = path.join(s.root, 'one', 'two', 'out');
  const abs = path.join(s.root, 'absolute-target');
  const bad = ['../../x', abs, 'ok/../../../y', 'ok//b', './ok/c', 'ok/\0nul', '..'];
  const offsets = s.forge([
    ...bad.map((p) => file(p, h, 4)),
    file('..foo', h, 4),
    file('ok/.b', h, 4),
    { op: 'del', p: '../../ok' },
  ]);
  const res = await restoreCli(s.dir, to);
  assert.equal(res.code, 0, res.stderr);
  const seg = path.basename(s.segment);
  bad.forEach((p, i) => {
    const line = res.stderr.split('\n').find((l) => l.includes(`byte ${offsets[i]} `));
    assert.ok(line, `no warning for ${JSON.stringify(p)} at byte ${offsets[i]}:\n${res.stderr}`);
    assert.match(
      line,
      new RegExp(
        `journal ${seg.replace(/\./g, '\\.')}: skipped the record at byte ${offsets[i]} \\(unrecognised record: p: unsafe path `
      )
    );
  });
  assert.match(res.stderr, /unsafe path "\.\.\/\.\.\/x" \(a "\.\." component\)/);
  assert.match(res.stderr, /unsafe path "\/[^"]*absolute-target" \(absolute\)/);
  assert.match(res.stderr, /unsafe path "ok\/\\u0000nul" \(a NUL byte\)/);
  // Nothing outside --to; inside it, exactly the real tree and the two legitimate odd names.
  assert.deepEqual(
    listing(s.root).filter((p) => !p.startsWith('store')),
    ['one', 'one/two', 'one/two/out', ...['..foo', 'ok', 'ok/.b', 'ok/a.txt'].map((p) => `one/two/out/${p}`)]
  );
  assert.equal(fs.readFileSync(path.join(to, '..foo'), 'utf8'), 'evil');
  assert.equal(fs.readFileSync(path.join(to, 'ok', 'a.txt'), 'utf8'), 'real content', 'the forged del did not apply');
  // Replay (a replicator's start) and versions skip them the same way, without failing.
  const rep = replay(resolveChain(s.dir), 0);
  assert.deepEqual(
    rep.damage.flatMap((d) => d.skipped.map((x) => x.at)),
    offsets.filter((_, i) => i < bad.length || i === offsets.length - 1)
  );
  assert.deepEqual([...rep.tree.keys()].sort(), ['..foo', 'ok', 'ok/.b', 'ok/a.txt']);
  const v = versions(s.dir, 'ok/a.txt');
  assert.deepEqual(
    v.versions.map((x) => x.change),
    ['created']
  );
});

test('a link record followed by a file record through it writes nothing through the link', async () => {
  const s = await store();
  const outside = tempDir('vigil-outside-');
  const h = put(s.layout, 'pwned');
  s.forge([
    { op: 'link', p: 'd', l: outside, mt: 2000, ct: 2000, ino: 3 },
    file('d/pwned', h, 5),
    { op: 'dir', p: 'd/sub', m: 0o755, mt: 2000 },
    file('d/sub/deeper', h, 5),
    // A link inside the tree to a directory, then a file through it: the same.
    { op: 'link', p: 'ok/up', l: '../..', mt: 2000, ct: 2000, ino: 4 },
    file('ok/up/escaped', h, 5),
  ]);
  const to = path.join(s.root, 'out');
  const res = await restoreCli(s.dir, to);
  assert.equal(res.code, 1, res.stderr);
  assert.deepEqual(fs.readdirSync(outside), [], 'nothing written through the link');
  assert.ok(!fs.existsSync(path.join(s.root, 'escaped')));
  assert.match(res.stderr, /not restored: d\/pwned: its parent d is a symbolic link in the journal, not a directory/);
  assert.match(res.stderr, /not restored: d\/sub: its parent d is a symbolic link in the journal/);
  assert.match(res.stderr, /not restored: ok\/up\/escaped: its parent ok\/up is a symbolic link in the journal/);
  // The links themselves are restored as recorded (not followed), and the rest of the tree.
  assert.equal(fs.readlinkSync(path.join(to, 'd')), outside);
  assert.equal(fs.readlinkSync(path.join(to, 'ok', 'up')), '../..');
  assert.equal(fs.readFileSync(path.join(to, 'ok', 'a.txt'), 'utf8'), 'real content');
});

test('setuid and setgid bits are restored only with --keep-special', async () => {
  assert.equal(process.getuid?.(), 0, 'these tests run as root (a setuid root file is the danger)');
  const s = await store();
  const h = put(s.layout, '#!/bin/sh\n');
  s.forge([
    { op: 'dir', p: 'shared', m: 0o2775, mt: 2000 },
    file('shared/tool', h, 10, 0o4755),
    file('sticky', h, 10, 0o1644),
  ]);
  const to = path.join(s.root, 'out');
  const res = await restoreCli(s.dir, to);
  assert.equal(res.code, 0, res.stderr);
  const mode = (p: string) => fs.statSync(path.join(to, p)).mode & 0o7777;
  assert.equal(mode('shared/tool'), 0o755);
  assert.equal(mode('shared'), 0o775);
  assert.equal(mode('sticky'), 0o1644, 'the sticky bit grants nothing: kept');
  assert.match(
    res.stdout,
    /setuid\/setgid bits left out on 2 path\(s\) \(restore with --keep-special to keep them\): shared \(02775 restored as 0775\), shared\/tool \(04755 restored as 0755\)/
  );

  const kept = path.join(s.root, 'kept');
  const res2 = await restoreCli(s.dir, kept, '--keep-special');
  assert.equal(res2.code, 0, res2.stderr);
  assert.equal(fs.statSync(path.join(kept, 'shared', 'tool')).mode & 0o7777, 0o4755);
  assert.equal(fs.statSync(path.join(kept, 'shared')).mode & 0o7777, 0o2775);
  assert.doesNotMatch(res2.stdout, /left out/);
});

test('an object whose bytes or size were changed is not restored: the path, the expected and the found hash are named', async () => {
  const s = await store();
  const same = put(s.layout, 'original');
  const grown = put(s.layout, 'will grow');
  const intact = put(s.layout, 'intact but recorded with another size');
  s.forge([file('edited.txt', same, 8), file('grown.txt', grown, 9), file('size.txt', intact, 3)]);
  // Someone with write access to the store edits the objects (mode 0444 does not stop root).
  const edited = 'ORIGINAL';
  fs.writeFileSync(s.layout.object(same), edited);
  fs.appendFileSync(s.layout.object(grown), ' and grow');
  const to = path.join(s.root, 'out');
  const res = await restoreCli(s.dir, to);
  assert.equal(res.code, 1, res.stderr);
  assert.match(
    res.stderr,
    new RegExp(
      `not restored: edited\\.txt: its content in the store \\(${same}\\) is damaged: it does not hash to its name \\(expected ${same}, found ${hashBuffer(s.layout.hash, edited)}\\)`
    )
  );
  const found = hashBuffer(s.layout.hash, 'will grow and grow');
  assert.match(
    res.stderr,
    new RegExp(
      `not restored: grown\\.txt: its content in the store \\(${grown}\\) is damaged: it does not hash to its name \\(expected ${grown}, found ${found}; 18 bytes, 9 recorded\\)`
    )
  );
  assert.match(
    res.stderr,
    new RegExp(`not restored: size\\.txt: its content in the store \\(${intact}\\) has \\d+ bytes, not the 3 recorded`)
  );
  assert.match(res.stderr, /3 file\(s\) could not be restored as recorded/);
  // Nothing of them under --to, not even a partial or temporary file; the rest is there.
  assert.deepEqual(listing(to), ['ok', 'ok/a.txt']);
});

test('a restore into a non-empty directory or onto a file is refused, and writes nothing', async () => {
  const s = await store();
  const to = path.join(s.root, 'busy');
  fs.mkdirSync(to);
  fs.writeFileSync(path.join(to, 'keep.txt'), 'mine');
  const res = await restoreCli(s.dir, to);
  assert.equal(res.code, 1, res.stderr);
  assert.match(res.stderr, /busy is not empty; restore into a new or empty directory/);
  assert.deepEqual(listing(to), ['keep.txt']);
  const onFile = path.join(to, 'keep.txt');
  const res2 = await restoreCli(s.dir, onFile);
  assert.equal(res2.code, 1, res2.stderr);
  assert.match(res2.stderr, /keep\.txt is not a directory; restore into a new or empty directory/);
  assert.equal(fs.readFileSync(onFile, 'utf8'), 'mine');
});
