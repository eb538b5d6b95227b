// Background prefetch after mounting: first the files the image author put before
// `.prefetch.landmark` (what the image needs at start), then, in `all` mode, the rest of the
// image. Runs at low priority in small batches, so an on-demand read never waits behind more
// than a couple of prefetch requests, and stops when its signal fires (unmount).
import { ErrorCodes, StargzError, redact, toStargzError } from '../errors.js';
import { hasExtent, type LazyChunkRef as ChunkRef } from '../file-index/index.js';
import { chunkKey, type Layer } from '../layer/layer.js';
import type { MergedFs } from '../vfs/merged-fs.js';
import type { Inode } from '../vfs/node.js';

export type PrefetchMode = 'none' | 'landmark' | 'all';
export const PREFETCH_MODES: readonly PrefetchMode[] = ['none', 'landmark', 'all'];

export function parsePrefetchMode(text: string | undefined): PrefetchMode {
  const mode = (text ?? 'landmark') as PrefetchMode;
  if (!PREFETCH_MODES.includes(mode)) {
    throw new StargzError(ErrorCodes.USAGE, `--prefetch must be one of ${PREFETCH_MODES.join(', ')}, got ${JSON.stringify(text)}`);
  }
  return mode;
}

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
  /** Batches in flight at once. */
  concurrency?: number;
  /** Consecutive failed batches after which prefetch gives up (registry down). */
  maxConsecutiveFailures?: number;
  /** Whether a chunk is cached already (checked just before each batch). */
  isCached?: (key: string) => boolean;
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

const DEFAULTS = { batchBytes: 4 * 1024 * 1024, concurrency: 2, maxConsecutiveFailures: 3 };

/**
 * What to prefetch, in order: prioritized chunks of every layer first (by blob offset, as
 * the writer laid them out), then — in `all` mode — every other chunk. Each chunk appears
 * once (identical chunks are cached once, by digest); chunks without a digest are left out
 * since they are never cached. Only files visible in the merged tree count.
 */
export function planPrefetch(fs: MergedFs, mode: PrefetchMode, batchBytes = DEFAULTS.batchBytes): PrefetchBatch[] {
  if (mode === 'none') return [];
  const first = new Map<Layer, ChunkRef[]>();
  const rest = new Map<Layer, ChunkRef[]>();
  const seenInodes = new Set<Inode>();
  const seenKeys = new Set<string>();
  for (const node of fs.walk(fs.root)) {
    const { inode } = node;
    if (node.children || inode.entry.chunks.length === 0 || seenInodes.has(inode)) continue;
    seenInodes.add(inode);
    const layer = inode.layer;
    const { prefetchEnd, noPrefetch } = layer.index;
    for (const ref of inode.entry.chunks) {
      // Only lazily read chunks: a plain layer was streamed whole into the cache.
      if (ref.digest === undefined || !hasExtent(ref)) continue;
      const key = chunkKey(layer.descriptor.digest, ref);
      if (seenKeys.has(key)) continue;
      const prioritized = !noPrefetch && prefetchEnd !== undefined && ref.offset < prefetchEnd;
      if (!prioritized && mode !== 'all') continue;
      seenKeys.add(key);
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

/** Fetches the plan into the cache at low priority. Never throws: failures are logged. */
export async function runPrefetch(fs: MergedFs, mode: PrefetchMode, options: PrefetchOptions = {}): Promise<PrefetchResult> {
  const started = Date.now();
  const o = { ...DEFAULTS, ...stripUndefined(options) };
  const isCached = options.isCached ?? (() => false);
  const log = options.log ?? (() => undefined);
  const result: PrefetchResult = { mode, chunks: 0, bytes: 0, failedBatches: 0, stopped: false, ms: 0 };
  const batches = planPrefetch(fs, mode, o.batchBytes);
  let next = 0;
  let consecutiveFailures = 0;

  const worker = async (): Promise<void> => {
    while (next < batches.length) {
      if (options.signal?.aborted || consecutiveFailures >= o.maxConsecutiveFailures) {
        result.stopped = true;
        return;
      }
      const batch = batches[next++]!;
      const digest = batch.layer.descriptor.digest;
      const refs = batch.refs.filter((r) => !isCached(chunkKey(digest, r)));
      if (refs.length === 0) continue;
      try {
        await batch.layer.readChunks(refs, () => undefined, { priority: 'low', ...(options.signal ? { signal: options.signal } : {}) });
        consecutiveFailures = 0;
        result.chunks += refs.length;
        result.bytes += refs.reduce((n, r) => n + r.size, 0);
      } catch (err) {
        if (options.signal?.aborted) {
          result.stopped = true;
          return;
        }
        result.failedBatches++;
        consecutiveFailures++;
        const e = toStargzError(err);
        log(`prefetch: ${refs.length} chunks of layer ${digest} failed (${e.code}: ${redact(e.message)})`);
        if (consecutiveFailures === o.maxConsecutiveFailures) log('prefetch: giving up after repeated failures; reads still fetch on demand');
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, o.concurrency) }, worker));
  result.ms = Date.now() - started;
  return result;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
