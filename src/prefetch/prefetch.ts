// Background prefetch after mounting: first the files the image author put before
// `.prefetch.landmark` (what the image needs at start), then, in `all` mode, the rest of the
// image. Queued in small batches at the fetch scheduler's lowest priority, so every read and
// read-ahead goes first, and stopped when its signal fires (unmount).
import { MOUNT_AHEAD_DEFAULTS } from '../config.js';
import { redact, toStargzError } from '../errors.js';
import { hasExtent, type LazyChunkRef as ChunkRef } from '../file-index/index.js';
import { cacheable, type Layer } from '../layer/layer.js';
import type { MergedFs } from '../vfs/merged-fs.js';
import { isFile } from '../vfs/node.js';

import type { PrefetchMode } from './modes.js';

export { PREFETCH_MODES, parsePrefetchMode, type PrefetchMode } from './modes.js';

/** Chunks of one layer fetched together (one or a few merged range requests). */
export interface PrefetchBatch {
  layer: Layer;
  refs: ChunkRef[];
  /** True for the image author's prioritized files. */
  prioritized: boolean;
}

export interface PrefetchOptions {
  /** Upper bound of the compressed span one batch covers. */
  batchBytes?: number;
  /** Consecutive failed batches after which prefetch gives up (registry down). */
  maxConsecutiveFailures?: number;
  signal?: AbortSignal;
  log?: (line: string) => void;
}

export interface PrefetchResult {
  mode: PrefetchMode;
  /** Chunks fetched (not found in the cache). */
  chunks: number;
  /** Uncompressed bytes of those chunks. */
  bytes: number;
  failedBatches: number;
  /** Stopped by the signal or after too many failures. */
  stopped: boolean;
  ms: number;
}

/** Batches of at most 4 MiB of blob; 3 failures in a row mean the registry is down for now. */
const DEFAULTS = MOUNT_AHEAD_DEFAULTS.prefetch;

/**
 * What to prefetch, in order: prioritized chunks of every layer first (by blob offset, as
 * the writer laid them out), then — in `all` mode — every other chunk. Each chunk appears
 * once (identical chunks are cached once, by digest); chunks that are never cached are left
 * out. Only files visible in the merged tree count.
 */
export function planPrefetch(fs: MergedFs, mode: PrefetchMode, batchBytes = DEFAULTS.batchBytes): PrefetchBatch[] {
  if (mode === 'none') return [];
  const first = new Map<Layer, ChunkRef[]>();
  const rest = new Map<Layer, ChunkRef[]>();
  const seenInodes = new Set<number>();
  const seenKeys = new Set<string>();
  for (const node of fs.walk(fs.root)) {
    if (!isFile(node) || seenInodes.has(node.inode.ino)) continue;
    seenInodes.add(node.inode.ino);
    const layer = fs.layerOf(node);
    const { prefetchEnd, noPrefetch } = layer.index;
    for (const ref of fs.chunksFor(node)) {
      // Only lazily read chunks: a plain layer was streamed whole into the cache.
      if (!cacheable(ref) || !hasExtent(ref) || seenKeys.has(ref.digest)) continue;
      const prioritized = !noPrefetch && prefetchEnd !== undefined && ref.offset < prefetchEnd;
      if (!prioritized && mode !== 'all') continue;
      seenKeys.add(ref.digest);
      const into = prioritized ? first : rest;
      let list = into.get(layer);
      if (!list) into.set(layer, (list = []));
      list.push(ref);
    }
  }
  return [...toBatches(first, true, batchBytes), ...toBatches(rest, false, batchBytes)];
}

function toBatches(byLayer: Map<Layer, ChunkRef[]>, prioritized: boolean, batchBytes: number): PrefetchBatch[] {
  const out: PrefetchBatch[] = [];
  for (const [layer, refs] of byLayer) {
    refs.sort((a, b) => a.offset - b.offset || a.innerOffset - b.innerOffset);
    let batch: ChunkRef[] = [];
    for (const ref of refs) {
      if (batch.length > 0 && ref.end - batch[0]!.offset > batchBytes) {
        out.push({ layer, refs: batch, prioritized });
        batch = [];
      }
      batch.push(ref);
    }
    if (batch.length > 0) out.push({ layer, refs: batch, prioritized });
  }
  return out;
}

/**
 * Queues the plan in the VFS's fetch scheduler, behind every read and read-ahead, and waits
 * for it. Never throws: failures are logged.
 */
export async function runPrefetch(fs: MergedFs, mode: PrefetchMode, options: PrefetchOptions = {}): Promise<PrefetchResult> {
  const started = Date.now();
  const batchBytes = options.batchBytes ?? DEFAULTS.batchBytes;
  const maxFailures = options.maxConsecutiveFailures ?? DEFAULTS.maxConsecutiveFailures;
  const log = options.log ?? (() => undefined);
  const result: PrefetchResult = { mode, chunks: 0, bytes: 0, failedBatches: 0, stopped: false, ms: 0 };
  // Stops the batches still queued: on the caller's signal, or once prefetch gives up.
  const stop = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;
  let consecutiveFailures = 0;
  await Promise.all(
    planPrefetch(fs, mode, batchBytes).map(async (batch) => {
      try {
        const fetched = await fs.scheduler.fetch(batch.layer, batch.refs, 'prefetch', signal);
        consecutiveFailures = 0;
        result.chunks += fetched.chunks;
        result.bytes += fetched.bytes;
      } catch (err) {
        if (signal.aborted) {
          result.stopped = true;
          return;
        }
        result.failedBatches++;
        const e = toStargzError(err);
        log(`prefetch: ${batch.refs.length} chunks of layer ${batch.layer.descriptor.digest} failed (${e.code}: ${redact(e.message)})`);
        if (++consecutiveFailures === maxFailures) {
          log('prefetch: giving up after repeated failures; reads still fetch on demand');
          stop.abort();
        }
      }
    }),
  );
  result.ms = Date.now() - started;
  return result;
}
