// The in-process tier: a byte-bounded LRU of inflated chunks. Buffers handed out are shared;
// callers must not mutate them.
import { LRUCache } from 'lru-cache';
import { ErrorCodes, StargzError } from '../errors.js';

// Buffer.from/allocUnsafe slice small buffers out of a shared 8 KiB pool; retaining such a
// view pins at most that pool, so only larger backing stores are worth copying away from.
const POOL_SIZE = 8 * 1024;

export class MemoryChunkCache {
  private readonly lru: LRUCache<string, Buffer>;

  constructor(readonly maxBytes: number) {
    if (!Number.isSafeInteger(maxBytes) || maxBytes <= 0) {
      throw new StargzError(ErrorCodes.USAGE, `memory cache size must be a positive integer of bytes, got ${maxBytes}`);
    }
    // lru-cache requires sizes > 0; an empty chunk still costs an entry.
    this.lru = new LRUCache<string, Buffer>({ maxSize: maxBytes, sizeCalculation: (b) => Math.max(1, b.length) });
  }

  get(digest: string): Buffer | undefined {
    return this.lru.get(digest);
  }

  has(digest: string): boolean {
    return this.lru.has(digest);
  }

  /** Stores `data` unless it alone is larger than the bound (then it is simply not cached). */
  set(digest: string, data: Buffer): void {
    // A small view into a big buffer (e.g. one chunk of a larger inflated range) would keep
    // the whole backing store alive while being counted at its own length: copy it out.
    if (data.buffer.byteLength > POOL_SIZE && data.buffer.byteLength > 2 * data.byteLength) data = Buffer.from(data);
    this.lru.set(digest, data);
  }

  delete(digest: string): void {
    this.lru.delete(digest);
  }

  /** Bytes held (an empty chunk counts as 1). */
  get size(): number {
    return this.lru.calculatedSize;
  }

  get entries(): number {
    return this.lru.size;
  }

  clear(): void {
    this.lru.clear();
  }
}
