// The progress of an on-demand read in flight (LayerCounts.readProgressBytes): the compressed
// bytes of its layer arriving stand for their share of its inflated bytes, before a chunk is
// delivered; delivered bytes are not counted twice; a finished read is its delivered bytes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FetchMetrics } from '../../src/metrics/fetch-metrics.js';

const L = 'sha256:layer';
const progress = async (m: FetchMetrics, layer = L): Promise<number> => (await m.layers()).get(layer)?.readProgressBytes ?? 0;

test('one big chunk moves as its compressed bytes arrive, not only once delivered', async () => {
  const m = new FetchMetrics();
  const read = m.readStarted(L, 8000, 4000); // 8000 inflated bytes from 4000 compressed
  assert.equal(await progress(m), 0);
  m.blobReceived(L, 1000);
  assert.equal(await progress(m), 2000);
  m.blobReceived('sha256:other', 3000); // another layer's bytes are not this read's
  assert.equal(await progress(m), 2000);
  m.blobReceived(L, 3000);
  assert.equal(await progress(m), 8000);
  m.blobReceived(L, 5000); // beyond its extent: not credited
  read.delivered(8000);
  assert.equal(await progress(m), 8000, 'delivered once, not on top of what the bytes stood for');
  read.done();
  assert.equal(await progress(m), 8000);
});

test('reads share arriving bytes oldest first; delivered bytes count as they are; a read without an extent only when delivered', async () => {
  const m = new FetchMetrics();
  const a = m.readStarted(L, 1000, 1000);
  const b = m.readStarted(L, 1000, 1000);
  const plain = m.readStarted(L, 500); // a plain layer's chunks: no compressed extent
  m.blobReceived(L, 1500);
  assert.equal(await progress(m), 1500);
  a.delivered(400); // part of a delivered: its credit already stands for more
  assert.equal(await progress(m), 1500);
  plain.delivered(500);
  assert.equal(await progress(m), 2000);
  a.done({ code: 'ERR_IO' }); // a failed read leaves what it delivered
  assert.equal(await progress(m), 400 + 500 + 500);
  b.done();
  plain.done();
  assert.equal(await progress(m), 900);
});
