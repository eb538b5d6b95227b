import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chunksWithin, planRanges } from '../../src/layer/range-plan.js';

const ext = (offset: number, end: number) => ({ offset, end });

test('adjacent extents merge into one request', () => {
  const r = planRanges([ext(100, 200), ext(0, 100), ext(200, 250)], { maxGap: 0, maxRangeBytes: 1 << 20 });
  assert.equal(r.length, 1);
  assert.deepEqual([r[0]!.offset, r[0]!.end, r[0]!.items.length], [0, 250, 3]);
});

test('a gap larger than maxGap splits requests; a small one is bridged', () => {
  const items = [ext(0, 10), ext(15, 20), ext(1000, 1010)];
  const r = planRanges(items, { maxGap: 5, maxRangeBytes: 1 << 20 });
  assert.deepEqual(r.map((x) => [x.offset, x.end]), [[0, 20], [1000, 1010]]);
});

test('maxRangeBytes bounds a merged request, but never splits one extent', () => {
  const items = [ext(0, 60), ext(60, 120), ext(120, 500)];
  const r = planRanges(items, { maxGap: 0, maxRangeBytes: 100 });
  assert.deepEqual(r.map((x) => [x.offset, x.end]), [[0, 60], [60, 120], [120, 500]]);
});

test('no extents, no requests', () => {
  assert.deepEqual(planRanges([], { maxGap: 10, maxRangeBytes: 10 }), []);
});

// Issue 8: chunks of zeros compress to nothing, so a 4 MB range held 4 GiB once inflated.
test('planRanges does not merge beyond maxDecodedBytes of inflated data', () => {
  const items = [0, 10, 20, 30].map((o) => ({ offset: o, end: o + 10, decoded: 1 << 30 }));
  const r = planRanges(items, { maxGap: 0, maxRangeBytes: 1 << 20, maxDecodedBytes: 1 << 30 });
  assert.equal(r.length, 4);
  const small = planRanges(items.map((i) => ({ ...i, decoded: 100 })), { maxGap: 0, maxRangeBytes: 1 << 20, maxDecodedBytes: 1 << 30 });
  assert.equal(small.length, 1);
});

test('chunksWithin: the extents lying wholly inside a span, by offset', () => {
  const sorted = [ext(0, 90), ext(100, 190), ext(200, 290), ext(300, 390)];
  assert.deepEqual(chunksWithin(sorted, 150, 300).map((e) => e.offset), [200]);
  assert.deepEqual(chunksWithin(sorted, 100, 390).map((e) => e.offset), [100, 200, 300]);
  assert.deepEqual(chunksWithin(sorted, 400, 500), []);
});
