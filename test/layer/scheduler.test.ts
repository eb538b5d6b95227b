// The one fetch scheduler: background work goes out as the layer's own range requests, most
// urgent kind first (read-ahead > walk-ahead > prefetch), most wanted range first, a few at a
// time; on-demand reads overtake all of it; and one chunk wanted by read-ahead and by a read
// at once is fetched once (the layer's in-flight registry).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { LazyChunkRef as ChunkRef } from '../../src/file-index/index.js';
import type { ChunkSink, Layer, ReadOptions } from '../../src/layer/layer.js';
import { DEFAULT_FETCH_TUNING, type LayerContext } from '../../src/layer/layer.js';
import { FetchMetrics } from '../../src/metrics/fetch-metrics.js';
import { planRanges } from '../../src/layer/range-plan.js';
import { FetchScheduler } from '../../src/layer/scheduler.js';
import { EstargzLayer } from '../../src/layer/estargz-layer.js';
import { MergedFs } from '../../src/vfs/merged-fs.js';
import { FileBlobSource } from '../../src/blob/blob-source.js';
import { ChunkCache } from '../../src/cache/chunk-cache.js';
import { MemoryChunkCache } from '../../src/cache/memory-cache.js';
import { Limiter } from '../../src/util/limiter.js';
import { ByteBudget } from '../../src/util/byte-budget.js';
import { layoutsDir } from '../helpers/paths.js';
import { fixtureLayers } from '../estargz/fixture-layers.js';

/** Chunks 100 bytes apart (each 90 long: 10-byte gaps), whose reads settle when told; ranges merge within 20 bytes, up to 190. */
class HeldLayer {
  readonly descriptor = { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: 'sha256:' + 'b'.repeat(64), size: 1 << 20 };
  readonly calls: Array<{ offsets: number[]; options: ReadOptions; release: () => void }> = [];
  readonly chunks: ChunkRef[];
  readonly atHandSet = new Set<ChunkRef>();

  constructor(n: number) {
    this.chunks = Array.from({ length: n }, (_, i) => ({ offset: i * 100, end: i * 100 + 90, innerOffset: 0, fileOffset: 0, size: 1000, digest: `sha256:${String(i).padStart(64, '0')}` }));
  }

  readChunks(refs: readonly ChunkRef[], _sink: ChunkSink, options: ReadOptions = {}): Promise<void> {
    return new Promise((resolve) => this.calls.push({ offsets: refs.map((r) => r.offset), options, release: resolve }));
  }

  atHand(ref: ChunkRef): boolean {
    return this.atHandSet.has(ref);
  }

  planFetch(refs: readonly ChunkRef[]): ChunkRef[][] {
    return planRanges(refs, { maxGap: 20, maxRangeBytes: 190 }).map((r) => r.items);
  }
}

const tick = async (): Promise<void> => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
};
const asLayer = (l: HeldLayer): Layer => l as unknown as Layer;

test('background kinds go out most urgent first whatever their arrival; an on-demand read overtakes them all', async () => {
  const layer = new HeldLayer(10);
  const s = new FetchScheduler(1);
  const c = layer.chunks;
  void s.fetch(asLayer(layer), [c[0]!], 'prefetch'); // goes out at once: the one slot was free
  void s.fetch(asLayer(layer), [c[2]!], 'prefetch');
  void s.fetch(asLayer(layer), [c[4]!], 'walk-ahead');
  void s.fetch(asLayer(layer), [c[6]!], 'read-ahead');
  assert.deepEqual(layer.calls.map((x) => x.offsets), [[0]]);
  assert.equal(s.queued, 3);
  // The read does not wait for the background slot, and asks at the limiter's high priority.
  void s.read(asLayer(layer), [c[8]!], () => undefined);
  assert.deepEqual(layer.calls[1]!.offsets, [800]);
  assert.equal(layer.calls[1]!.options.priority, 'high');
  const low = (): HeldLayer['calls'] => layer.calls.filter((x) => x.options.priority === 'low');
  for (const [i, expected] of [600, 400, 200].entries()) {
    low()[i]!.release();
    await tick();
    assert.deepEqual(low()[i + 1]!.offsets, [expected], `then ${expected}`);
  }
  assert.equal(s.queued, 0);
});

test("a fetch's ranges are the layer's own, most wanted first, at low priority, three quarters of the connections at once", async () => {
  const layer = new HeldLayer(10);
  const s = new FetchScheduler(3); // 2 of 3 connections for background work
  const c = layer.chunks;
  // Wanted in this order: chunk 8, then 0 and 1 (mergeable), then 5.
  void s.fetch(asLayer(layer), [c[8]!, c[0]!, c[1]!, c[5]!], 'walk-ahead');
  assert.deepEqual(layer.calls.map((x) => x.offsets), [[800], [0, 100]]);
  assert.ok(layer.calls.every((x) => x.options.priority === 'low'));
  assert.equal(s.queued, 1);
  layer.calls[0]!.release();
  await tick();
  assert.deepEqual(layer.calls[2]!.offsets, [500]);
});

test('nothing at hand is fetched, and dropped chunks split the request; the fetch reports what went out', async () => {
  const layer = new HeldLayer(7);
  const s = new FetchScheduler(1);
  const c = layer.chunks;
  void s.fetch(asLayer(layer), [c[6]!], 'prefetch'); // holds the one slot
  const oneRange = Object.assign(Object.create(layer) as HeldLayer, { planFetch: (refs: readonly ChunkRef[]) => [[...refs]] });
  const done = s.fetch(asLayer(oneRange), c.slice(0, 6), 'walk-ahead');
  // Read on demand while the range was queued: checked again as it goes out.
  layer.atHandSet.add(c[2]!).add(c[4]!);
  assert.deepEqual(await s.fetch(asLayer(layer), [c[2]!], 'read-ahead'), { chunks: 0, bytes: 0 }, 'at hand: nothing to send');
  layer.calls[0]!.release();
  await tick();
  // One planned range, cut where 2 and 4 dropped out: no request spans (re-downloads) their bytes.
  assert.deepEqual(layer.calls.slice(1).map((x) => x.offsets), [[0, 100], [300], [500]]);
  for (const x of layer.calls) x.release();
  assert.deepEqual(await done, { chunks: 4, bytes: 4000 });
});

test('clear drops queued work and abandons what is in flight', async () => {
  const layer = new HeldLayer(4);
  const s = new FetchScheduler(1);
  const all = s.fetch(asLayer(layer), layer.chunks, 'prefetch');
  assert.equal(layer.calls.length, 1);
  assert.equal(s.queued, 1);
  s.clear();
  assert.equal(s.queued, 0);
  assert.equal(layer.calls[0]!.options.signal?.aborted, true);
  await assert.rejects(all);
});

class CountingSource extends FileBlobSource {
  reads = 0;
  override async readRange(offset: number, length: number): Promise<Buffer> {
    this.reads++;
    await new Promise((r) => setTimeout(r, 20)); // a slow link: the read arrives while read-ahead is out
    return super.readRange(offset, length);
  }
}

test('a chunk wanted by read-ahead and by an on-demand read at once is fetched once', async () => {
  const layer0 = fixtureLayers('edge')[0]!;
  const source = new CountingSource(join(layoutsDir, 'edge', 'blobs', 'sha256', layer0.digest.slice(7)), layer0.digest, layer0.blob.length);
  const ctx: LayerContext = {
    cache: new ChunkCache(new MemoryChunkCache(64 * 1024 * 1024)),
    limiter: new Limiter(4),
    memory: new ByteBudget(64 * 1024 * 1024),
    tuning: DEFAULT_FETCH_TUNING,
    metrics: new FetchMetrics(),
    offline: false,
    notice: () => undefined,
  };
  const layer = await EstargzLayer.open({ mediaType: layer0.mediaType, digest: layer0.digest, size: layer0.blob.length, annotations: layer0.annotations }, source, ctx);
  const fs = new MergedFs([layer]);
  const tool = fs.resolve('/bin/tool');
  source.reads = 0;
  const first = fs.chunksFor(tool)[0]!;
  const ahead = fs.scheduler.fetch(layer, [first], 'read-ahead');
  const read = fs.read(tool, first.fileOffset, first.size);
  const [, bytes] = await Promise.all([ahead, read]);
  assert.equal(bytes.length, first.size);
  assert.equal(source.reads, 1, 'one range request');
  assert.equal((await ctx.metrics.totals()).chunksFromNetwork, 1, 'inflated once');
  // And the other way round: a read already on its way leaves read-ahead nothing to do.
  const second = fs.chunksFor(tool)[1];
  if (second) {
    const r = fs.read(tool, second.fileOffset, second.size);
    assert.deepEqual(await fs.scheduler.fetch(layer, [second], 'read-ahead'), { chunks: 0, bytes: 0 });
    await r;
    assert.equal(source.reads, 2);
  }
});
