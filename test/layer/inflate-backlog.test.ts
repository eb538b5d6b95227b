// Issue 11: a sync killed by SIGKILL loses every byte it had received and not yet inflated and
// cached; with the link faster than a CPU-starved inflater, 40 MB of received ranges waited
// (1.34x the bytes of one cold sync over both runs). Ranges are therefore fetched no further
// ahead of the inflate workers than the pool's backlog: compressed bytes requested and not yet
// inflated stay within it, whatever the connection limit and memory budget allow.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { EstargzLayer } from '../../src/layer/estargz-layer.js';
import { InflatePool, type InflateItem } from '../../src/layer/inflate-pool.js';
import { DEFAULT_FETCH_TUNING, type LayerContext } from '../../src/layer/layer.js';
import { FetchMetrics } from '../../src/metrics/fetch-metrics.js';
import { FileBlobSource } from '../../src/blob/blob-source.js';
import { ChunkCache } from '../../src/cache/chunk-cache.js';
import { MemoryChunkCache } from '../../src/cache/memory-cache.js';
import { Limiter } from '../../src/util/limiter.js';
import { ByteBudget } from '../../src/util/byte-budget.js';
import type { Compression } from '../../src/estargz/index.js';
import { layoutsDir } from '../helpers/paths.js';
import { fixtureLayers } from '../estargz/fixture-layers.js';

/** Compressed bytes requested and not yet inflated, and the most there ever were. */
class Backlog {
  now = 0;
  peak = 0;
  add(n: number): void {
    this.now += n;
    this.peak = Math.max(this.peak, this.now);
  }
}

class SlowSource extends FileBlobSource {
  constructor(
    path: string,
    digest: string,
    size: number,
    private readonly backlog: Backlog,
  ) {
    super(path, digest, size);
  }
  override async readRange(offset: number, length: number): Promise<Buffer> {
    this.backlog.add(length);
    await new Promise((r) => setTimeout(r, 5)); // a link: requests overlap
    return super.readRange(offset, length);
  }
}

/** A pool whose workers fall behind the link, as on a loaded machine. */
class SlowPool extends InflatePool {
  outstanding = new Backlog();
  override async inflate(range: Buffer, compression: Compression, items: InflateItem[]): Promise<Buffer[]> {
    const length = range.length;
    await new Promise((r) => setTimeout(r, 30));
    try {
      return await super.inflate(range, compression, items);
    } finally {
      this.outstanding.add(-length);
    }
  }
}

const pools: InflatePool[] = [];
after(() => Promise.all(pools.map((p) => p.close())));

async function peakBacklog(backlogBytes: number): Promise<{ peak: number; largestRange: number; delivered: number; chunks: number }> {
  const layer0 = fixtureLayers('edge')[0]!;
  const pool = new SlowPool(1, backlogBytes);
  pools.push(pool);
  const source = new SlowSource(join(layoutsDir, 'edge', 'blobs', 'sha256', layer0.digest.slice(7)), layer0.digest, layer0.blob.length, pool.outstanding);
  const ctx: LayerContext = {
    cache: new ChunkCache(new MemoryChunkCache(64 * 1024 * 1024)),
    limiter: new Limiter(16),
    memory: new ByteBudget(256 * 1024 * 1024),
    // One request per chunk: many ranges, all wanted at once.
    tuning: { ...DEFAULT_FETCH_TUNING, maxGap: 0, maxRangeBytes: 1 },
    metrics: new FetchMetrics(),
    offline: false,
    notice: () => undefined,
    inflater: pool,
  };
  const desc = { mediaType: layer0.mediaType, digest: layer0.digest, size: layer0.blob.length, annotations: layer0.annotations };
  const layer = await EstargzLayer.open(desc, source, ctx);
  const refs = [...layer.index.entries.values()].filter((e) => e.type === 'reg').flatMap((e) => e.chunks).filter((c) => c.end > c.offset);
  pool.outstanding.now = pool.outstanding.peak = 0; // the TOC read is not inflated by the pool
  let delivered = 0;
  await layer.readChunks(refs, () => void delivered++);
  assert.equal(pool.outstanding.now, 0, 'every byte requested was inflated');
  return { peak: pool.outstanding.peak, largestRange: Math.max(...refs.map((c) => c.end - c.offset)), delivered, chunks: refs.length };
}

test('compressed bytes requested and not yet inflated stay within the pool backlog', async () => {
  const unbounded = await peakBacklog(1024 ** 3);
  const cap = unbounded.largestRange;
  // The premise: without the backlog every range is requested at once, far past the cap.
  assert.ok(unbounded.chunks >= 8, `${unbounded.chunks} chunks`);
  assert.ok(unbounded.peak > 2 * cap, `unbounded peak ${unbounded.peak} vs cap ${cap}`);
  const bounded = await peakBacklog(cap);
  assert.equal(bounded.delivered, unbounded.delivered);
  assert.ok(bounded.peak <= cap, `peak ${bounded.peak} B requested ahead of the inflater, backlog ${cap} B`);
});

test('a range larger than the whole backlog still runs, alone', async () => {
  const r = await peakBacklog(1);
  assert.equal(r.delivered, r.chunks);
  assert.ok(r.peak <= r.largestRange, `peak ${r.peak}, largest range ${r.largestRange}`);
});
