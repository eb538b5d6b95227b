import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ByteBudget } from '../../src/util/byte-budget.js';

const tick = () => new Promise((r) => setImmediate(r));

test('ByteBudget never holds more bytes than its capacity, whatever the claims', async () => {
  const budget = new ByteBudget(100);
  let peak = 0;
  const sizes = [60, 30, 50, 10, 100, 5, 95, 40];
  await Promise.all(
    sizes.map((n) =>
      budget.run(n, async () => {
        peak = Math.max(peak, budget.inUse);
        await tick();
      }),
    ),
  );
  assert.ok(peak <= 100, `peak ${peak}`);
  assert.equal(budget.inUse, 0);
});

test('ByteBudget runs a claim larger than the budget alone, and serves claims in order', async () => {
  const budget = new ByteBudget(100);
  const order: string[] = [];
  let release!: () => void;
  const first = budget.run(80, () => new Promise<void>((r) => (release = r)));
  const huge = budget.run(10_000, async () => {
    order.push(`huge:${budget.inUse}`);
  });
  const small = budget.run(10, async () => void order.push('small')); // fits, but waits its turn
  await tick();
  assert.deepEqual(order, []);
  release();
  await Promise.all([first, huge, small]);
  assert.deepEqual(order, ['huge:100', 'small']);
});

test('ByteBudget lets high priority overtake low', async () => {
  const budget = new ByteBudget(10);
  const order: string[] = [];
  let release!: () => void;
  const first = budget.run(10, () => new Promise<void>((r) => (release = r)));
  const low = budget.run(10, async () => void order.push('low'), 'low');
  const high = budget.run(10, async () => void order.push('high'));
  await tick();
  release();
  await Promise.all([first, low, high]);
  assert.deepEqual(order, ['high', 'low']);
});
