import { DiskCache, defaultCacheDir } from '../../cache/disk-cache.js';
import { DEFAULT_OPTIONS, parseSize } from '../../config.js';
import { loadConfigFile } from '../../config-file.js';
import { formatBytes } from '../format.js';
import type { CliIo } from '../io.js';

export interface CacheFlags {
  cacheDir?: string;
  json?: boolean;
  maxSize?: string;
  config?: string;
}

function openCache(flags: CacheFlags): DiskCache {
  const file = loadConfigFile(flags.config).options;
  return DiskCache.open({ dir: flags.cacheDir ?? file.cacheDir ?? defaultCacheDir(), maxBytes: file.cacheMaxBytes ?? DEFAULT_OPTIONS.cacheMaxBytes });
}

export function cacheInfoCommand(flags: CacheFlags, io: CliIo): void {
  const cache = openCache(flags);
  try {
    const info = cache.info();
    if (flags.json) {
      io.out(JSON.stringify(info, null, 2));
      return;
    }
    io.out(`cache dir   ${info.dir}`);
    io.out(`chunks      ${info.chunks} (${formatBytes(info.chunkBytes)} of data, ${formatBytes(info.diskBytes)} on disk)`);
    io.out(`TOCs        ${info.tocs}`);
    io.out(`manifests   ${info.manifests}`);
  } finally {
    cache.close();
  }
}

export function cachePruneCommand(flags: CacheFlags, io: CliIo): void {
  const cache = openCache(flags);
  try {
    const max = parseSize(flags.maxSize ?? '0');
    const r = cache.prune(max);
    io.out(`removed ${r.removedChunks} chunks (${formatBytes(r.removedBytes)}); cache now ${formatBytes(cache.info().chunkBytes)}`);
  } finally {
    cache.close();
  }
}

export function cacheClearCommand(flags: CacheFlags, io: CliIo): void {
  const cache = openCache(flags);
  try {
    cache.clear();
    io.out(`cleared ${cache.info().dir}`);
  } finally {
    cache.close();
  }
}
