// The two tiers together: memory first, then disk (promoting hits into memory). The disk
// tier is an optimisation: its failures (disk full, index locked) turn into misses and
// skipped writes, counted in stats, never into a failed read.
// Keys are chunk digests ('sha256:<hex>'); any other key (a chunk the TOC gives no digest,
// named by its position) is kept in memory only: the disk holds content-addressed data.
import { toStargzError, ErrorCodes, type StargzError } from '../errors.js';
import { SingleFlight } from '../util/single-flight.js';
import { isChunkDigest } from './digest-key.js';
import type { DiskCache } from './disk-cache.js';
import type { MemoryChunkCache } from './memory-cache.js';
import type { Logger } from '../util/log.js';

export interface ChunkCacheStats {
  memoryHits: number;
  diskHits: number;
  misses: number;
  /** Disk reads or writes that failed and were treated as a miss or skipped. */
  diskErrors: number;
}

export interface ChunkCacheOptions {
  /** Told about each disk failure that was absorbed (for a warning log). */
  onDiskError?: (err: StargzError) => void;
  /** One debug line per lookup: which tier had the chunk, or a miss (the CLI's -vv). */
  log?: Logger;
}

export class ChunkCache {
  readonly stats: ChunkCacheStats = { memoryHits: 0, diskHits: 0, misses: 0, diskErrors: 0 };
  // Concurrent reads of one chunk (FUSE readahead, parallel files sharing a chunk) read and
  // hash it on disk once.
  private readonly diskReads = new SingleFlight<string, Buffer | undefined>();

  constructor(
    readonly memory: MemoryChunkCache,
    readonly disk?: DiskCache,
    private readonly options: ChunkCacheOptions = {},
  ) {}

  async get(digest: string): Promise<Buffer | undefined> {
    const hit = this.memory.get(digest);
    if (hit) {
      this.stats.memoryHits++;
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
        this.stats.diskHits++;
        this.options.log?.debug(() => `chunk ${digest}: disk cache hit`);
        this.memory.set(digest, data);
        return data;
      }
    }
    this.stats.misses++;
    this.options.log?.debug(() => `chunk ${digest}: not cached`);
    return undefined;
  }

  /** Stores a verified chunk in both tiers. */
  async put(digest: string, data: Buffer): Promise<void> {
    this.memory.set(digest, data);
    if (!this.disk || !isChunkDigest(digest)) return;
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
    this.stats.diskErrors++;
    this.options.onDiskError?.(toStargzError(err, ErrorCodes.CACHE));
  }
}
