// EstargzLayer against a counting blob source: concurrent readers of one chunk share one
// fetch, and a cached chunk is never fetched again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { EstargzLayer } from '../../src/layer/estargz-layer.js';
import { DEFAULT_FETCH_TUNING, type LayerContext } from '../../src/layer/layer.js';
import { FetchMetrics } from '../../src/metrics/fetch-metrics.js';
import { FileBlobSource } from '../../src/blob/blob-source.js';
import { ChunkCache } from '../../src/cache/chunk-cache.js';
import { MemoryChunkCache } from '../../src/cache/memory-cache.js';
import { Limiter } from '../../src/util/limiter.js';
import { ByteBudget } from '../../src/util/byte-budget.js';
import { layoutsDir } from '../helpers/paths.js';
import { fixtureLayers } from '../estargz/fixture-layers.js';

class CountingSource extends FileBlobSource {
  reads = 0;
  override async readRange(offset: number, length: number): Promise<Buffer> {
    this.reads++;
    await new Promise((r) => setTimeout(r, 20)); // a slow link: readers overlap
    return super.readRange(offset, length);
  }
}

function context(): LayerContext {
  const metrics = new FetchMetrics();
  return {
    cache: new ChunkCache(new MemoryChunkCache(64 * 1024 * 1024), undefined, { metrics }),
    limiter: new Limiter(4),
    memory: new ByteBudget(64 * 1024 * 1024),
    tuning: DEFAULT_FETCH_TUNING,
    metrics,
    offline: false,
    notice: () => undefined,
  };
}

test('concurrent readers of the same chunk share one range request (regression: double fetch)', async () => {
  const layer0 = fixtureLayers('edge')[0]!;
  const source = new CountingSource(join(layoutsDir, 'edge', 'blobs', 'sha256', layer0.digest.slice(7)), layer0.digest, layer0.blob.length);
  const desc = { mediaType: layer0.mediaType, digest: layer0.digest, size: layer0.blob.length, annotations: layer0.annotations };
  const ctx = context();
  const layer = await EstargzLayer.open(desc, source, ctx);
  const tool = layer.index.entries.get('bin/tool')!;
  const first = tool.chunks[0]!;
  source.reads = 0;
  const got: Buffer[] = [];
  await Promise.all(Array.from({ length: 5 }, () => layer.readChunks([first], (_ref, data) => void got.push(data))));
  assert.equal(source.reads, 1, 'one range request for five concurrent readers');
  assert.equal(got.length, 5);
  for (const g of got) assert.deepEqual(g, got[0]);
  // Cached now: no request at all.
  await layer.readChunks([first], () => undefined);
  assert.equal(source.reads, 1);
  const t = await ctx.metrics.totals();
  assert.ok(t.chunksFromMemory + t.chunksFromDisk >= 1);
});
