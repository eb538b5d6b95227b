// The chunk cache: a memory tier, a disk tier shared between processes, and the two together.
export { MemoryChunkCache } from './memory-cache.js';
export {
  DiskCache,
  INLINE_MAX_BYTES,
  ACCESS_UPDATE_INTERVAL_MS,
  defaultCacheDir,
  type CacheInfo,
  type DiskCacheOptions,
} from './disk-cache.js';
export { ChunkCache, type ChunkCacheOptions } from './chunk-cache.js';
export { SCHEMA_VERSION } from './schema.js';
