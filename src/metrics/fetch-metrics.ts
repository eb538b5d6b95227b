// The one place that counts what the fetch path does, per layer (the blob digest), as
// Prometheus metric families (prom-client) in a registry of its own per opened image. Fed by
// small hooks at the single points the bytes pass: the registry client's requests and blob
// bodies, the chunk cache's lookups, the layers' fetches, the fetch scheduler's reads and
// background jobs. Everything else — the CLI summaries, `--json`, STARGZ_GET_STATS_FILE, the
// progress bars, `mount --metrics-addr`, `sync --metrics-file` — reads these, never a counter
// of its own.
import type * as PromClient from 'prom-client';
import { leanRequire } from '../util/lean-require.js';

// The four classes used, not prom-client's index (its default metrics load OpenTelemetry:
// 35 ms of every command's start-up).
const { Counter, Gauge, Histogram, Registry } = leanRequire<typeof PromClient, typeof PromClient>(
  'prom-client',
  (req) => {
    const lib = (name: string): unknown => req(`prom-client/lib/${name}.js`);
    return { Counter: lib('counter'), Gauge: lib('gauge'), Histogram: lib('histogram'), Registry: lib('registry') } as typeof PromClient;
  },
  (index) => index,
);
type Counter<T extends string = string> = PromClient.Counter<T>;
type Gauge<T extends string = string> = PromClient.Gauge<T>;
type Histogram<T extends string = string> = PromClient.Histogram<T>;
type Registry = PromClient.Registry;

/** Where a chunk a reader got came from. */
export type ChunkSource = 'memory' | 'disk' | 'network';
/** Why background bytes were wanted (the scheduler's kinds). */
export type BackgroundKind = 'read-ahead' | 'walk-ahead' | 'prefetch';
/** What became of background bytes queued: fetched, not needed any more when their turn came, or failed. */
export type BackgroundOutcome = 'fetched' | 'skipped' | 'failed';
/** What failed: a read's kind, or the disk cache (absorbed as a miss or a skipped write). */
export type ErrorKind = 'read' | BackgroundKind | 'cache';

/** The cache sizes a scrape reports, asked for at scrape time. */
export interface CacheSizes {
  memoryBytes: number;
  memoryChunks: number;
  /** Absent without a disk cache. */
  diskBytes?: number;
  diskChunks?: number;
}

/** Totals over every layer (summaries, the stats file). */
export interface FetchTotals {
  /** HTTP requests sent (blob GETs, manifests, tokens, pings, redirect hops). */
  requests: number;
  /** Blob GETs, every try. */
  blobRequests: number;
  /** Body bytes received, blobs and documents. */
  bytesReceived: number;
  /** Of which blob bodies. */
  blobBytesReceived: number;
  chunksFromMemory: number;
  chunksFromDisk: number;
  chunksFromNetwork: number;
  /** Lookups the chunk cache answered with nothing. */
  chunkCacheMisses: number;
}

/** What one layer has done so far (progress bars). */
export interface LayerCounts {
  blobBytes: number;
  blobRequests: number;
  /** Inflated bytes readers asked for on demand, and of those delivered so far. */
  readRequestedBytes: number;
  readDeliveredBytes: number;
  /**
   * readDeliveredBytes, plus for each on-demand read in flight the share of its inflated bytes
   * that its compressed bytes received so far stand for: a read of one big chunk moves as the
   * chunk arrives, not only once it is inflated and verified (the progress bars).
   */
  readProgressBytes: number;
}

/** An on-demand read in flight whose compressed extent is known: blob bytes of its layer arriving meanwhile are credited to it. */
interface ReadInFlight {
  requested: number;
  delivered: number;
  compressed: number;
  credited: number;
}

/** Latency buckets of an on-demand read, seconds: a memory hit is sub-millisecond, a WAN fetch seconds. */
export const READ_SECONDS_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export class FetchMetrics {
  readonly registry = new Registry();
  private readonly httpRequests = new Counter({ name: 'stargz_get_http_requests_total', help: 'HTTP requests sent: blob GETs (every try), manifests, tokens, pings, redirect hops', registers: [this.registry] });
  private readonly documentBytes = new Counter({ name: 'stargz_get_document_bytes_total', help: 'Body bytes received that are not blob bodies: manifests, tokens, error bodies', registers: [this.registry] });
  private readonly blobRequests = new Counter({ name: 'stargz_get_blob_requests_total', help: 'Blob GETs (range reads and whole-blob streams, every try), by blob digest', labelNames: ['layer'], registers: [this.registry] });
  private readonly blobBytes = new Counter({ name: 'stargz_get_blob_bytes_total', help: 'Blob body bytes received from the registry (compressed, as on the wire), by blob digest', labelNames: ['layer'], registers: [this.registry] });
  private readonly chunks = new Counter({ name: 'stargz_get_chunks_total', help: 'Chunks by layer and by where they came from: hits of reads in the memory or the disk cache, or fetched from the registry (for reads and for fetches ahead)', labelNames: ['layer', 'source'], registers: [this.registry] });
  private readonly cacheMisses = new Counter({ name: 'stargz_get_chunk_cache_misses_total', help: 'Chunk cache lookups that found the chunk in neither memory nor disk', labelNames: ['layer'], registers: [this.registry] });
  private readonly readSeconds = new Histogram({ name: 'stargz_get_read_duration_seconds', help: 'On-demand reads of chunk bytes (reads the memory cache could not answer at once), from asking to the last byte delivered', labelNames: ['layer'], buckets: READ_SECONDS_BUCKETS, registers: [this.registry] });
  private readonly readRequested = new Counter({ name: 'stargz_get_read_requested_bytes_total', help: 'Inflated chunk bytes asked for by on-demand reads', labelNames: ['layer'], registers: [this.registry] });
  private readonly readDelivered = new Counter({ name: 'stargz_get_read_delivered_bytes_total', help: 'Inflated chunk bytes delivered to on-demand reads', labelNames: ['layer'], registers: [this.registry] });
  private readonly backgroundQueued = new Counter({ name: 'stargz_get_background_queued_bytes_total', help: 'Inflated chunk bytes queued for fetching ahead (read-ahead, walk-ahead, prefetch); prefetch progress is done over queued', labelNames: ['layer', 'kind'], registers: [this.registry] });
  private readonly backgroundDone = new Counter({ name: 'stargz_get_background_done_bytes_total', help: 'Queued background bytes settled: fetched, skipped (at hand or cancelled by their turn) or failed', labelNames: ['layer', 'kind', 'outcome'], registers: [this.registry] });
  private readonly errors = new Counter({ name: 'stargz_get_errors_total', help: 'Failed reads (by kind) and absorbed disk cache failures, by error code', labelNames: ['kind', 'code'], registers: [this.registry] });
  // Gauges are read from their owners at scrape time, so nothing polls them in between.
  private readonly queuedRanges: Gauge = new Gauge({ name: 'stargz_get_background_queued_ranges', help: 'Background range requests waiting for a connection', registers: [this.registry], collect: () => this.queuedRanges.set(this.queueProbe?.() ?? 0) });
  private readonly cacheBytes: Gauge<'tier'> = new Gauge({ name: 'stargz_get_cache_bytes', help: 'Chunk bytes held by the cache, by tier (memory: this process; disk: the shared cache directory)', labelNames: ['tier'], registers: [this.registry], collect: () => this.collectCache() });
  // Set by cacheBytes's collect, which a scrape runs first (registration order).
  private readonly cacheChunks: Gauge<'tier'> = new Gauge({ name: 'stargz_get_cache_chunks', help: 'Chunks held by the cache, by tier', labelNames: ['tier'], registers: [this.registry] });

  /** By layer, in start order. Not a metric family: only the progress bars read it. */
  private readonly readsInFlight = new Map<string, Set<ReadInFlight>>();
  private queueProbe: (() => number) | undefined;
  private cacheProbe: (() => CacheSizes) | undefined;

  /** The scheduler's queue length, read at scrape time. */
  watchQueue(probe: () => number): void {
    this.queueProbe = probe;
  }

  /** The chunk cache's sizes, read at scrape time. */
  watchCache(probe: () => CacheSizes): void {
    this.cacheProbe = probe;
  }

  private collectCache(): void {
    this.cacheBytes.reset();
    this.cacheChunks.reset();
    let sizes: CacheSizes | undefined;
    try {
      sizes = this.cacheProbe?.();
    } catch {
      return; // a closed or locked index: no cache gauges in this scrape rather than a failed scrape
    }
    if (!sizes) return;
    this.cacheBytes.set({ tier: 'memory' }, sizes.memoryBytes);
    this.cacheChunks.set({ tier: 'memory' }, sizes.memoryChunks);
    if (sizes.diskBytes !== undefined) this.cacheBytes.set({ tier: 'disk' }, sizes.diskBytes);
    if (sizes.diskChunks !== undefined) this.cacheChunks.set({ tier: 'disk' }, sizes.diskChunks);
  }

  // ---- hooks (one call per event at its single point) ----

  /** The transport sent a request. */
  request(): void {
    this.httpRequests.inc();
  }

  /** Body bytes of a manifest, token or error answer arrived. */
  documentReceived(bytes: number): void {
    if (bytes > 0) this.documentBytes.inc(bytes);
  }

  /** A blob GET is about to go out. */
  blobRequest(layer: string): void {
    this.blobRequests.inc({ layer });
  }

  /** Blob body bytes arrived. */
  blobReceived(layer: string, bytes: number): void {
    if (bytes <= 0) return;
    this.blobBytes.inc({ layer }, bytes);
    // Credited to the reads waiting on this layer, oldest first, each up to its compressed extent.
    let left = bytes;
    for (const read of this.readsInFlight.get(layer) ?? []) {
      const take = Math.min(left, read.compressed - read.credited);
      read.credited += take;
      left -= take;
      if (left === 0) break;
    }
  }

  /** `count` chunks reached readers from `source`. */
  chunksServed(layer: string, source: ChunkSource, count = 1): void {
    if (count > 0) this.chunks.inc({ layer, source }, count);
  }

  cacheMiss(layer: string): void {
    this.cacheMisses.inc({ layer });
  }

  /**
   * An on-demand read of `bytes` inflated bytes starts; call the result as bytes arrive, then
   * with `done`. `compressedBytes`: the compressed extent it may fetch, when known (chunks of a
   * lazy layer), so that its progress counts as that many blob bytes of the layer arrive.
   */
  readStarted(layer: string, bytes: number, compressedBytes = 0): { delivered(bytes: number): void; done(error?: { code: string }): void } {
    const end = this.readSeconds.startTimer({ layer });
    if (bytes > 0) this.readRequested.inc({ layer }, bytes);
    const read: ReadInFlight = { requested: bytes, delivered: 0, compressed: compressedBytes, credited: 0 };
    let reads = this.readsInFlight.get(layer);
    if (compressedBytes > 0 && bytes > 0) {
      if (!reads) this.readsInFlight.set(layer, (reads = new Set()));
      reads.add(read);
    }
    return {
      delivered: (n) => {
        if (n <= 0) return;
        this.readDelivered.inc({ layer }, n);
        read.delivered += n;
      },
      done: (error) => {
        end();
        if (reads?.delete(read) && reads.size === 0) this.readsInFlight.delete(layer);
        if (error) this.failed('read', error.code);
      },
    };
  }

  backgroundQueuedBytes(layer: string, kind: BackgroundKind, bytes: number): void {
    if (bytes > 0) this.backgroundQueued.inc({ layer, kind }, bytes);
  }

  backgroundSettled(layer: string, kind: BackgroundKind, outcome: BackgroundOutcome, bytes: number): void {
    if (bytes > 0) this.backgroundDone.inc({ layer, kind, outcome }, bytes);
  }

  failed(kind: ErrorKind, code: string): void {
    this.errors.inc({ kind, code });
  }

  // ---- reading ----

  /** Prometheus text exposition format (also node_exporter's textfile format). */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  async totals(): Promise<FetchTotals> {
    const [requests, documents, blobReq, blobBytes, chunks, misses] = await Promise.all([
      sum(this.httpRequests),
      sum(this.documentBytes),
      sum(this.blobRequests),
      sum(this.blobBytes),
      this.chunks.get(),
      sum(this.cacheMisses),
    ]);
    const bySource = { memory: 0, disk: 0, network: 0 };
    for (const v of chunks.values) bySource[v.labels.source as ChunkSource] += v.value;
    return {
      requests,
      blobRequests: blobReq,
      bytesReceived: blobBytes + documents,
      blobBytesReceived: blobBytes,
      chunksFromMemory: bySource.memory,
      chunksFromDisk: bySource.disk,
      chunksFromNetwork: bySource.network,
      chunkCacheMisses: misses,
    };
  }

  /** Per-layer counts, by layer digest (only layers that did something). */
  async layers(): Promise<Map<string, LayerCounts>> {
    const out = new Map<string, LayerCounts>();
    const at = (layer: string): LayerCounts => {
      let c = out.get(layer);
      if (!c) out.set(layer, (c = { blobBytes: 0, blobRequests: 0, readRequestedBytes: 0, readDeliveredBytes: 0, readProgressBytes: 0 }));
      return c;
    };
    const fields: Array<[Counter<'layer'>, keyof LayerCounts]> = [
      [this.blobBytes, 'blobBytes'],
      [this.blobRequests, 'blobRequests'],
      [this.readRequested, 'readRequestedBytes'],
      [this.readDelivered, 'readDeliveredBytes'],
    ];
    for (const [counter, field] of fields) {
      for (const v of (await counter.get()).values) at(String(v.labels.layer))[field] += v.value;
    }
    for (const c of out.values()) c.readProgressBytes = c.readDeliveredBytes;
    for (const [layer, reads] of this.readsInFlight) {
      for (const r of reads) at(layer).readProgressBytes += Math.max(0, Math.floor((r.requested * r.credited) / r.compressed) - r.delivered);
    }
    return out;
  }
}

async function sum(metric: Counter<string>): Promise<number> {
  let n = 0;
  for (const v of (await metric.get()).values) n += v.value;
  return n;
}
