// The order in which fetch-ahead work goes out. Handing a whole window to the layer at once
// would queue dozens of range requests in the connection limiter, in blob order: a reader
// waiting for the next file (or the next chunk of the file it is in) would wait behind all
// of them. Here the window is cut into the same merged ranges the layer would make, each
// issued as its own request in the order the reader will want them, a few at a time, and
// read-ahead within the file being read goes before read-ahead of the files after it.
import { hasExtent, type ChunkRef as AnyChunkRef, type LazyChunkRef as ChunkRef } from '../file-index/index.js';
import { chunkKey, type Layer } from '../layer/layer.js';
import { planRanges, type RangePlanOptions } from '../layer/range-plan.js';
import { setMaxListeners } from 'node:events';
import { Inflight } from './inflight.js';

export type AheadKind = 'file' | 'walk';

interface Job {
  layer: Layer;
  refs: ChunkRef[];
}

export interface AheadQueueOptions extends RangePlanOptions {
  /** Range requests of fetch-ahead in flight at once (on-demand reads keep the rest). */
  maxInFlight: number;
  /** Whether a chunk is cached already (checked again just before its request goes out). */
  isCached: (key: string) => boolean;
  /**
   * Every chunk of the layer lying inside [offset, end): a merged range fetches the bytes
   * between its chunks anyway, so the whole chunks among them are kept rather than thrown
   * away (files are rarely stored in readdir order; a walk needs those chunks later).
   */
  chunksWithin?: (layer: Layer, offset: number, end: number) => ChunkRef[];
  /** Chunks this mount is fetching already (shared with on-demand reads). */
  inflight?: Inflight;
}

export class AheadQueue {
  private readonly queues: Record<AheadKind, Job[]> = { file: [], walk: [] };
  private inFlight = 0;
  private readonly inflight: Inflight;
  private abort = quietController();

  constructor(private readonly options: AheadQueueOptions) {
    if (!(options.maxInFlight >= 1)) throw new RangeError('maxInFlight must be at least 1');
    this.inflight = options.inflight ?? new Inflight();
  }

  /** Queues chunks of one layer, most wanted first; they go out as merged ranges in that order. */
  add(layer: Layer, all: readonly AnyChunkRef[], kind: AheadKind): void {
    // Only lazily read chunks: a plain layer was streamed whole into the cache.
    const refs = all.filter(hasExtent);
    if (refs.length === 0) return;
    const ranked = refs.map((ref, rank) => ({ offset: ref.offset, end: ref.end, ref, rank }));
    const ranges = planRanges(ranked, this.options);
    // A range is as urgent as the most wanted chunk in it.
    const order = ranges.map((r) => ({ r, rank: Math.min(...r.items.map((i) => i.rank)) })).sort((a, b) => a.rank - b.rank);
    for (const { r } of order) {
      const refs = r.items.map((i) => i.ref);
      if (this.options.chunksWithin && r.items.length > 1) {
        const have = new Set(refs.map((x) => x.offset));
        for (const extra of this.options.chunksWithin(layer, r.offset, r.end)) {
          if (extra.digest !== undefined && !have.has(extra.offset)) {
            have.add(extra.offset);
            refs.push(extra);
          }
        }
      }
      refs.sort((a, b) => a.offset - b.offset);
      this.queues[kind].push({ layer, refs });
    }
    this.pump();
  }

  /** Requests queued and not yet sent (tests, diagnostics). */
  get queued(): number {
    return this.queues.file.length + this.queues.walk.length;
  }

  get running(): number {
    return this.inFlight;
  }

  /** Drops what has not gone out yet and abandons what has (unmount). */
  clear(): void {
    this.queues.file.length = 0;
    this.queues.walk.length = 0;
    this.abort.abort();
    this.abort = quietController();
  }

  private pump(): void {
    while (this.inFlight < this.options.maxInFlight) {
      const job = this.queues.file.shift() ?? this.queues.walk.shift();
      if (!job) return;
      // Read on demand meanwhile, or queued twice: no request for what is there or on its way.
      // What is left is cut where chunks were dropped, so the layer's range merging does not
      // fetch the dropped chunks' bytes again as a gap.
      const digest = job.layer.descriptor.digest;
      const runs: ChunkRef[][] = [];
      const keys: string[] = [];
      let run: ChunkRef[] | undefined;
      for (const r of job.refs) {
        const key = chunkKey(digest, r);
        if (this.options.isCached(key) || this.inflight.has(key)) {
          run = undefined;
          continue;
        }
        if (!run) runs.push((run = []));
        run.push(r);
        keys.push(key);
      }
      if (keys.length === 0) continue;
      this.inFlight++;
      // A failure is not reported here: the on-demand read of these bytes fetches them again.
      const options = { priority: 'low' as const, signal: this.abort.signal };
      const work = Promise.all(runs.map((r) => job.layer.readChunks(r, () => undefined, options)));
      void this.inflight.track(keys, work).then(() => {
        this.inFlight--;
        this.pump();
      });
    }
  }
}

/** One signal for every fetch-ahead request: each adds a listener, and there are many. */
function quietController(): AbortController {
  const c = new AbortController();
  setMaxListeners(0, c.signal);
  return c;
}
