import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Limiter } from '../../src/util/limiter.js';
import { SingleFlight } from '../../src/util/single-flight.js';
import { mapConcurrent } from '../../src/util/concurrent.js';

test('Limiter bounds concurrency and lets high priority overtake low', async () => {
  const lim = new Limiter(1);
  const order: string[] = [];
  let release!: () => void;
  const first = lim.run(() => new Promise<void>((r) => (release = r)));
  const low = lim.run(async () => void order.push('low'), 'low');
  const high = lim.run(async () => void order.push('high'), 'high');
  await new Promise((r) => setImmediate(r)); // let the first task start
  release();
  await Promise.all([first, low, high]);
  assert.deepEqual(order, ['high', 'low']);
});

test('Limiter refuses a zero or fractional bound', () => {
  assert.throws(() => new Limiter(0), RangeError);
  assert.throws(() => new Limiter(1.5), RangeError);
});

test('SingleFlight runs one fetch for concurrent callers of a key', async () => {
  const sf = new SingleFlight<string, number>();
  let calls = 0;
  const fn = async () => {
    calls++;
    await new Promise((r) => setTimeout(r, 10));
    return 42;
  };
  const results = await Promise.all([sf.run('k', fn), sf.run('k', fn), sf.run('k', fn)]);
  assert.deepEqual(results, [42, 42, 42]);
  assert.equal(calls, 1);
  assert.equal(sf.size, 0);
});

test('mapConcurrent keeps at most `limit` calls in flight and propagates failure', async () => {
  let active = 0;
  let peak = 0;
  await mapConcurrent([1, 2, 3, 4, 5, 6, 7], 3, async () => {
    peak = Math.max(peak, ++active);
    await new Promise((r) => setTimeout(r, 5));
    active--;
  });
  assert.equal(peak, 3);
  await assert.rejects(mapConcurrent([1, 2, 3], 2, async (n) => {
    if (n === 2) throw new Error('boom');
  }), /boom/);
});
