// Check 1 of a capture (the file held still for the settling time) when the wall clock steps.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { SettleClock, captureFile } from '../src/replicator/capture';
import { StoreLayout, prepareStore } from '../src/replicator/store';
import { tempDirsRemovedAfter } from './helpers';

const tempDir = tempDirsRemovedAfter();

/** A wall clock and a monotonic clock the test moves by hand. */
function clocks() {
  const c = { wall: Date.now(), mono: 1_000 };
  return {
    c,
    clock: new SettleClock(
      () => c.wall,
      () => c.mono
    ),
  };
}

function fresh() {
  const root = tempDir('vigil-capture-');
  const layout = new StoreLayout(path.join(root, 'store'));
  prepareStore(layout);
  const file = path.join(root, 'data.bin');
  fs.writeFileSync(file, Buffer.alloc(2 * 1024 * 1024, 7));
  return { layout, file };
}

test('a file changed just now is not read before the settling time', async () => {
  const { layout, file } = fresh();
  const { clock } = clocks();
  const got = await captureFile(layout, file, { settleMs: 500, clock });
  assert.equal(got.kind, 'hot');
});

test('a step of the wall clock does not make a file being written look settled', async () => {
  const { layout, file } = fresh();
  const { c, clock } = clocks();
  assert.equal((await captureFile(layout, file, { settleMs: 500, clock })).kind, 'hot');
  // The wall clock jumps 12 s ahead; only 10 ms really passed.
  c.wall += 12_000;
  c.mono += 10;
  const stepped = await captureFile(layout, file, { settleMs: 500, clock });
  assert.equal(stepped.kind, 'hot', 'judged on the change time alone, the file looks 12 s old');
  // Seen unchanged for the settling time on the monotonic clock: now it is read.
  c.mono += 600;
  c.wall += 600;
  const settled = await captureFile(layout, file, { settleMs: 500, clock });
  assert.equal(settled.kind, 'ok');
  if (settled.kind === 'ok' && settled.tmp) {
    fs.rmSync(settled.tmp, { force: true });
  }
});

test('after a step, a change restarts the wait; long after it, change times are trusted again', async () => {
  const { layout, file } = fresh();
  const { c, clock } = clocks();
  c.wall += 60_000;
  c.mono += 5;
  assert.equal((await captureFile(layout, file, { settleMs: 500, clock })).kind, 'hot');
  c.mono += 400;
  c.wall += 400;
  fs.appendFileSync(file, 'more');
  const changed = await captureFile(layout, file, { settleMs: 500, clock });
  assert.equal(changed.kind, 'hot');
  assert.ok(changed.kind === 'hot' && changed.waitMs >= 500, 'a new version waits the whole settling time');
  // Eleven steady seconds later the change time's age counts again (it is 71 s old by the wall clock).
  c.mono += 11_000;
  c.wall += 11_000;
  const later = await captureFile(layout, file, { settleMs: 500, clock });
  assert.equal(later.kind, 'ok');
  if (later.kind === 'ok' && later.tmp) {
    fs.rmSync(later.tmp, { force: true });
  }
});
