// The two tiers together: memory first, then disk (promoting hits into memory). The disk
// tier is an optimisation: its failures (disk full, index locked) turn into misses and
// skipped writes, counted in the metrics (errors of kind 'cache'), never into a failed read.
// Keys are chunk digests ('sha256:<hex>'); any other key (a chunk the TOC gives no digest,
// named by its position) is kept in memory only: the disk holds content-addressed data.
import { toStargzError, ErrorCodes, type StargzError } from '../errors.js';
import { SingleFlight } from '../util/single-flight.js';
import { isChunkDigest } from './digest-key.js';
import type { DiskCache } from './disk-cache.js';
import type { MemoryChunkCache } from './memory-cache.js';
import type { Logger } from '../util/log.js';
import { FetchMetrics } from '../metrics/fetch-metrics.js';

export interface ChunkCacheOptions {
  /** Told about each disk failure that was absorbed (for a warning log). */
  onDiskError?: (err: StargzError) => void;
  /** One debug line per lookup: which tier had the chunk, or a miss (the CLI's -vv). */
  log?: Logger;
  /** Where hits by tier, misses and absorbed disk failures are counted; a fresh one when unset. */
  metrics?: FetchMetrics;
}

export class ChunkCache {
  readonly metrics: FetchMetrics;
  // Concurrent reads of one chunk (FUSE readahead, parallel files sharing a chunk) read and
  // hash it on disk once.
  private readonly diskReads = new SingleFlight<string, Buffer | undefined>();

  constructor(
    readonly memory: MemoryChunkCache,
    readonly disk?: DiskCache,
    private readonly options: ChunkCacheOptions = {},
  ) {
    this.metrics = options.metrics ?? new FetchMetrics();
    this.metrics.watchCache(() => {
      const totals = this.disk?.chunkTotals();
      return { memoryBytes: memory.size, memoryChunks: memory.entries, ...(totals ? { diskBytes: totals.bytes, diskChunks: totals.count } : {}) };
    });
  }

  /** A reader's lookup for a chunk of `layer` (its digest: what the hit or miss is counted under). */
  async get(digest: string, layer: string): Promise<Buffer | undefined> {
    const hit = this.memory.get(digest);
    if (hit) {
      this.metrics.chunksServed(layer, 'memory');
      this.options.log?.debug(() => `chunk ${digest}: memory cache hit`);
      return hit;
    }
    const disk = this.disk;
    if (disk && isChunkDigest(digest)) {
      let data: Buffer | undefined;
      try {
        data = await this.diskReads.run(digest, () => disk.readChunk(digest));
      } catch (err) {
        this.absorb(err);
      }
      if (data) {
        this.metrics.chunksServed(layer, 'disk');
        this.options.log?.debug(() => `chunk ${digest}: disk cache hit`);
        this.memory.set(digest, data);
        return data;
      }
    }
    this.metrics.cacheMiss(layer);
    this.options.log?.debug(() => `chunk ${digest}: not cached`);
    return undefined;
  }

  /** Stores a verified chunk in memory and, unless `tiers` is 'memory', on disk. */
  async put(digest: string, data: Buffer, tiers: 'both' | 'memory' = 'both'): Promise<void> {
    this.memory.set(digest, data);
    if (tiers === 'memory' || !this.disk || !isChunkDigest(digest)) return;
    try {
      await this.disk.writeChunk(digest, data);
    } catch (err) {
      this.absorb(err);
    }
  }

  has(digest: string): boolean {
    if (this.memory.has(digest)) return true;
    if (!isChunkDigest(digest)) return false;
    try {
      return this.disk?.hasChunk(digest) ?? false;
    } catch (err) {
      this.absorb(err);
      return false;
    }
  }

  private absorb(err: unknown): void {
    const e = toStargzError(err, ErrorCodes.CACHE);
    this.metrics.failed('cache', e.code);
    this.options.onDiskError?.(e);
  }
}
