// A layer as the VFS sees it: a file index plus a way to get the bytes of file chunks.
// eStargz layers fetch chunks lazily by range; plain tar+gzip layers are streamed whole
// once and served from the cache afterwards. Both look the same from above.
import { hasDigest, type ChunkRef, type LayerIndex } from '../estargz/index.js';
import type { Descriptor } from '../registry/manifest.js';
import type { ChunkCache } from '../cache/chunk-cache.js';
import type { DiskCache } from '../cache/disk-cache.js';
import type { Limiter, Priority } from '../util/limiter.js';
import type { ByteBudget } from '../util/byte-budget.js';
import type { InflatePool } from './inflate-pool.js';
import type { FetchMetrics } from '../metrics/fetch-metrics.js';
import { DEFAULT_OPTIONS } from '../config.js';

export interface ReadOptions {
  /** Background prefetch runs at 'low' so on-demand reads overtake it. */
  priority?: Priority;
  signal?: AbortSignal;
  /**
   * The file bytes wanted ([offset, offset + length) of the file the refs belong to). A chunk
   * too large for memory (huge-chunk.ts) delivers only its overlap with the window; others are
   * delivered whole regardless. Without it, a streamed chunk is delivered whole, in pieces.
   */
  window?: { offset: number; length: number };
  /** The chunks are wanted in the cache, not their bytes: a streamed chunk is not read back. */
  fetchOnly?: boolean;
}

/**
 * Receives chunk bytes: `data` starts `at` bytes into the chunk (0, and the whole chunk, except
 * for a chunk too large for memory, which arrives in pieces in order). A Promise returned is
 * awaited before the next piece of that chunk is read.
 */
export type ChunkSink = (ref: ChunkRef, data: Buffer, at?: number) => void | Promise<void>;

export interface Layer {
  readonly descriptor: Descriptor;
  /** True for eStargz (range-fetched on demand), false for a plain layer fetched whole. */
  readonly lazy: boolean;
  readonly format: 'estargz' | 'estargz-legacy' | 'estargz-zstd' | 'tar+gzip';
  readonly index: LayerIndex;
  /**
   * Delivers every chunk in `refs` to `sink` (in no particular order), fetching what the cache
   * lacks. Concurrent calls wanting one chunk share one fetch: this is the one in-flight registry.
   */
  readChunks(refs: readonly ChunkRef[], sink: ChunkSink, options?: ReadOptions): Promise<void>;
  /** The chunk's bytes when the memory cache holds them: a read answered without a promise. */
  peek(ref: ChunkRef): Buffer | undefined;
  /** In memory (or, with `onDisk`, in either cache) or being fetched right now: nothing to fetch ahead. */
  atHand(ref: ChunkRef, onDisk?: boolean): boolean;
  /**
   * The range requests this layer makes for `refs`, each as the chunks it delivers: the given
   * ones, plus the cacheable chunks lying wholly in the gaps a merged range fetches anyway.
   */
  planFetch(refs: readonly ChunkRef[]): ChunkRef[][];
}

export interface FetchTuning {
  /** Merge extents separated by at most this many bytes into one request. */
  maxGap: number;
  /** Upper bound of one merged range request. */
  maxRangeBytes: number;
  /** First guess of how many tail bytes hold footer + TOC (one request when it is enough). */
  tocTailGuess: number;
}

/** Range limits come from the one set of defaults in config.ts. */
export const DEFAULT_FETCH_TUNING: FetchTuning = {
  maxGap: DEFAULT_OPTIONS.maxGapBytes,
  maxRangeBytes: DEFAULT_OPTIONS.maxRangeBytes,
  tocTailGuess: 32 * 1024,
};

/** What every layer of one image shares: caches, the connection limiter, tuning, a logger. */
export interface LayerContext {
  cache: ChunkCache;
  disk?: DiskCache;
  /** Range requests on the wire at once (--concurrency). */
  limiter: Limiter;
  /** Bytes of fetched ranges and their inflated chunks held at once (memoryBudgetBytes); also bounds the TOC. */
  memory: ByteBudget;
  tuning: FetchTuning;
  /** Where chunks served (memory, disk, network) are counted: the image's, shared with the client and the cache. */
  metrics: FetchMetrics;
  /** Worker threads for inflating and verifying; without it, zlib's thread pool and this thread. */
  inflater?: InflatePool;
  /** True with --offline: nothing may be fetched. */
  offline: boolean;
  /** --insecure-skip-toc-verify: see layerRule in trust.ts. */
  insecureSkipTocVerify?: boolean;
  /**
   * false (sync --no-cache): chunks fetched by range go to their reader and the memory cache
   * only, not a second time to the disk cache; cached chunks are still read. What is served from
   * the disk cache alone is still written there: a plain layer's pieces, chunks too large for
   * memory (huge-chunk.ts), digest-less chunks verified by their file. Default true.
   */
  cacheFetchedChunks?: boolean;
  notice(message: string): void;
}

/**
 * A chunk without a digest is never cached: the cache holds verified, content-addressed data
 * only (trust.ts). So it is never looked up in memory, never fetched ahead, never stored.
 */
export function cacheable(ref: ChunkRef): ref is ChunkRef & { digest: string } {
  return hasDigest(ref);
}

/**
 * The key of a chunk: its content digest, so identical chunks anywhere are stored once. A
 * chunk without one gets a position key that only names it among in-flight work.
 */
export function chunkKey(layerDigest: string, ref: ChunkRef): string {
  return ref.digest ?? `unverified:${layerDigest}@${ref.offset}+${ref.innerOffset}`;
}

/** The memory tier's copy of a chunk, if it holds one (see cacheable). */
export function peekMemory(ctx: LayerContext, ref: ChunkRef): Buffer | undefined {
  return cacheable(ref) ? ctx.cache.memory.get(ref.digest) : undefined;
}

/** Whether the memory tier (or, with onDisk, either tier) holds the chunk. */
export function inCache(ctx: LayerContext, ref: ChunkRef, onDisk = false): boolean {
  return cacheable(ref) && (onDisk ? ctx.cache.has(ref.digest) : ctx.cache.memory.has(ref.digest));
}
