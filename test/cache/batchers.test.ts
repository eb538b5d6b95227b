import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AccessBatcher, MicroBatcher } from '../../src/cache/batchers.js';

test('MicroBatcher commits what is added in one turn together', async () => {
  const commits: number[][] = [];
  const b = new MicroBatcher<number>((items) => commits.push(items));
  await Promise.all([b.add(1), b.add(2), b.add(3)]);
  await b.add(4);
  assert.deepEqual(commits, [[1, 2, 3], [4]]);
});

test('MicroBatcher rejects every item of a failed commit, and carries on', async () => {
  let fail = true;
  const b = new MicroBatcher<number>(() => {
    if (fail) throw new Error('busy');
  });
  const results = await Promise.allSettled([b.add(1), b.add(2)]);
  assert.deepEqual(results.map((r) => r.status), ['rejected', 'rejected']);
  fail = false;
  await b.add(3);
});

test('AccessBatcher writes the latest time per key, at once when full', () => {
  const writes: Array<Array<[Buffer, number]>> = [];
  const a = new AccessBatcher((e) => writes.push(e), 60_000, 3);
  const k = (s: string): Buffer => Buffer.from(s);
  a.note('a', k('a'), 1);
  a.note('a', k('a'), 2);
  a.note('b', k('b'), 3);
  assert.equal(writes.length, 0);
  a.note('c', k('c'), 4);
  assert.deepEqual(writes, [[[k('a'), 2], [k('b'), 3], [k('c'), 4]]]);
  assert.equal(a.size, 0);
});

test('AccessBatcher keeps the times when a write fails, for the next attempt', () => {
  let fail = true;
  const written: number[] = [];
  const a = new AccessBatcher(
    (e) => {
      if (fail) throw new Error('busy');
      written.push(...e.map(([, t]) => t));
    },
    60_000,
    100,
  );
  a.note('a', Buffer.from('a'), 7);
  a.flushQuietly();
  assert.equal(a.size, 1);
  fail = false;
  a.flush();
  assert.deepEqual(written, [7]);
  a.discard();
});
