// A layer as the VFS sees it: a file index plus a way to get the bytes of file chunks.
// eStargz layers fetch chunks lazily by range; plain tar+gzip layers are streamed whole
// once and served from the cache afterwards. Both look the same from above.
import type { ChunkRef, LayerIndex } from '../estargz/index.js';
import type { Descriptor } from '../registry/manifest.js';
import type { ChunkCache } from '../cache/chunk-cache.js';
import type { DiskCache } from '../cache/disk-cache.js';
import type { Limiter, Priority } from '../util/limiter.js';
import type { ByteBudget } from '../util/byte-budget.js';
import type { InflatePool } from './inflate-pool.js';
import { DEFAULT_OPTIONS } from '../config.js';

export interface ReadOptions {
  /** Background prefetch runs at 'low' so on-demand reads overtake it. */
  priority?: Priority;
  signal?: AbortSignal;
}

export type ChunkSink = (ref: ChunkRef, data: Buffer) => void | Promise<void>;

export interface Layer {
  readonly descriptor: Descriptor;
  /** True for eStargz (range-fetched on demand), false for a plain layer fetched whole. */
  readonly lazy: boolean;
  readonly format: 'estargz' | 'estargz-legacy' | 'estargz-zstd' | 'tar+gzip';
  readonly index: LayerIndex;
  /** Delivers every chunk in `refs` to `sink` (in no particular order), fetching what the cache lacks. */
  readChunks(refs: readonly ChunkRef[], sink: ChunkSink, options?: ReadOptions): Promise<void>;
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

export interface FetchStats {
  /** Chunks served from memory or disk cache. */
  chunkCacheHits: number;
  /** Chunks fetched from the registry and inflated. */
  chunksFetched: number;
  /** Compressed bytes requested from the registry for chunks and TOCs. */
  bytesRequested: number;
  rangeRequests: number;
}

/** What every layer of one image shares: caches, the connection limiter, tuning, a logger. */
export interface LayerContext {
  cache: ChunkCache;
  disk?: DiskCache;
  /** Range requests on the wire at once (--concurrency). */
  limiter: Limiter;
  /** Bytes of fetched ranges and their inflated chunks held at once (memoryBudgetBytes); also bounds the TOC. */
  memory: ByteBudget;
  tuning: FetchTuning;
  stats: FetchStats;
  /** Worker threads for inflating and verifying; without it, zlib's thread pool and this thread. */
  inflater?: InflatePool;
  /** True with --offline: nothing may be fetched. */
  offline: boolean;
  /** --insecure-skip-toc-verify: see layerRule in trust.ts. */
  insecureSkipTocVerify?: boolean;
  notice(message: string): void;
}

export function newFetchStats(): FetchStats {
  return { chunkCacheHits: 0, chunksFetched: 0, bytesRequested: 0, rangeRequests: 0 };
}

/**
 * The cache key of a chunk: its content digest, so identical chunks anywhere are stored once.
 * A chunk without one gets a position key that only names it among in-flight work: nothing is
 * ever stored under it (the cache holds verified, content-addressed data only; trust.ts).
 */
export function chunkKey(layerDigest: string, ref: ChunkRef): string {
  return ref.digest ?? `unverified:${layerDigest}@${ref.offset}+${ref.innerOffset}`;
}
