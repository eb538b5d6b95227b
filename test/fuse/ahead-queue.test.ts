// The fetch-ahead queue: merged ranges issued one request each, most wanted first, a few
// at a time, read-ahead in the current file before the walk's, nothing fetched twice, and
// the whole chunks inside a merged range's gaps kept.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AheadQueue } from '../../src/fuse/ahead-queue.js';
import { ChunkMap } from '../../src/fuse/chunk-map.js';
import { Inflight } from '../../src/fuse/inflight.js';
import { chunksByOffset, type LazyChunkRef as ChunkRef } from '../../src/file-index/index.js';
import type { ChunkSink, Layer, ReadOptions } from '../../src/layer/layer.js';

/** A layer of chunks 100 bytes apart (each 90 long: 10-byte gaps), whose reads settle when told. */
class HeldLayer {
  readonly descriptor = { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: 'sha256:' + 'b'.repeat(64), size: 1 << 20 };
  readonly lazy = true;
  readonly format = 'estargz' as const;
  readonly calls: Array<{ offsets: number[]; options: ReadOptions; release: () => void }> = [];
  readonly chunks: ChunkRef[];
  readonly index;

  constructor(n: number) {
    this.chunks = Array.from({ length: n }, (_, i) => ({ offset: i * 100, end: i * 100 + 90, innerOffset: 0, fileOffset: 0, size: 1000, digest: `sha256:${String(i).padStart(64, '0')}` }));
    const entries = new Map(this.chunks.map((c, i) => [`f${i}`, { path: `f${i}`, type: 'reg' as const, mode: 0o644, uid: 0, gid: 0, mtimeMs: 0, size: 1000, linkName: '', devMajor: 0, devMinor: 0, xattrs: {}, chunks: [c] }]));
    this.index = { entries, children: new Map(), chunksByOffset: chunksByOffset(entries), noPrefetch: false, compression: 'gzip' as const, tocOffset: n * 100 };
  }

  readChunks(refs: readonly ChunkRef[], _sink: ChunkSink, options: ReadOptions = {}): Promise<void> {
    return new Promise((resolve) => this.calls.push({ offsets: refs.map((r) => r.offset), options, release: resolve }));
  }
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

test('merged ranges go out most wanted first, at most maxInFlight at once, at low priority', async () => {
  const layer = new HeldLayer(10);
  const q = new AheadQueue({ maxGap: 20, maxRangeBytes: 190, maxInFlight: 2, isCached: () => false });
  // Wanted in this order: chunk 8, then 0 and 1 (mergeable), then 5.
  q.add(layer as unknown as Layer, [layer.chunks[8]!, layer.chunks[0]!, layer.chunks[1]!, layer.chunks[5]!], 'walk');
  assert.deepEqual(layer.calls.map((c) => c.offsets), [[800], [0, 100]], 'two requests, in the order wanted');
  assert.ok(layer.calls.every((c) => c.options.priority === 'low'));
  assert.equal(q.queued, 1);
  // Read-ahead within the file being read goes before the rest of the walk.
  q.add(layer as unknown as Layer, [layer.chunks[3]!], 'file');
  layer.calls[0]!.release();
  await tick();
  assert.deepEqual(layer.calls[2]!.offsets, [300]);
  layer.calls[1]!.release();
  await tick();
  assert.deepEqual(layer.calls[3]!.offsets, [500]);
  assert.equal(q.queued, 0);
});

test('nothing already in memory or on its way is fetched, and dropped chunks split the request', async () => {
  const layer = new HeldLayer(6);
  const cached = new Set([layer.chunks[2]!.digest!]);
  const inflight = new Inflight();
  void inflight.track([layer.chunks[4]!.digest!], new Promise(() => undefined));
  const q = new AheadQueue({ maxGap: 20, maxRangeBytes: 10_000, maxInFlight: 4, isCached: (k) => cached.has(k), inflight });
  q.add(layer as unknown as Layer, layer.chunks.slice(0, 6), 'walk');
  // One merged range 0..5 planned; 2 is cached and 4 in flight: three separate requests,
  // so no request spans (and re-downloads) the bytes of 2 or 4.
  assert.deepEqual(layer.calls.map((c) => c.offsets), [[0, 100], [300], [500]]);
  assert.ok(inflight.has(layer.chunks[0]!.digest!), 'what went out is marked as on its way');
  for (const c of layer.calls) c.release();
  await tick();
  await tick();
  assert.ok(!inflight.has(layer.chunks[0]!.digest!), 'and unmarked when done');
});

test('the whole chunks inside a merged range are fetched along, not thrown away as gap bytes', () => {
  const layer = new HeldLayer(6);
  const map = new ChunkMap();
  const q = new AheadQueue({
    maxGap: 300,
    maxRangeBytes: 10_000,
    maxInFlight: 4,
    isCached: () => false,
    chunksWithin: (l, from, to) => map.within(l, from, to),
  });
  q.add(layer as unknown as Layer, [layer.chunks[0]!, layer.chunks[3]!], 'walk');
  assert.deepEqual(layer.calls.map((c) => c.offsets), [[0, 100, 200, 300]]);
  assert.deepEqual(map.within(layer as unknown as Layer, 150, 400).map((c) => c.offset), [200, 300], 'only chunks lying wholly inside');
});

test('clear drops queued work and abandons what is in flight', () => {
  const layer = new HeldLayer(4);
  const q = new AheadQueue({ maxGap: 0, maxRangeBytes: 100, maxInFlight: 1, isCached: () => false });
  q.add(layer as unknown as Layer, layer.chunks, 'walk');
  assert.equal(layer.calls.length, 1);
  assert.equal(q.queued, 3);
  q.clear();
  assert.equal(q.queued, 0);
  assert.equal(layer.calls[0]!.options.signal?.aborted, true);
});
