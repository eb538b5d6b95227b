// The one fetch scheduler of an image: every read of chunk bytes goes through it, by kind,
// most urgent first — on demand, then read-ahead within the file being read, then the next
// files of a directory walk, then the background prefetch.
// On-demand reads go straight to the layer, at the connection limiter's high priority, so they
// overtake everything queued here. Background work is planned by the layer into the range
// requests it will make (Layer.planFetch), and each range is one job: jobs go out most urgent
// kind first, most wanted range first within a fetch, and at most `maxInFlight` at once, so
// the rest of the connections stay free for on-demand reads. Handing a whole window to the
// layer at once would instead queue dozens of requests in blob order in front of the next one
// a reader waits for. Concurrent fetches of one chunk are joined by the layer (readChunks).
import { setMaxListeners } from 'node:events';
import { ErrorCodes, StargzError } from '../errors.js';
import type { ChunkRef } from '../estargz/index.js';
import { cacheable, type ChunkSink, type Layer } from './layer.js';

/** Why bytes are wanted. */
export type FetchKind = 'read' | BackgroundKind;
export type BackgroundKind = 'read-ahead' | 'walk-ahead' | 'prefetch';
/** Background kinds, most urgent first. */
const BACKGROUND: readonly BackgroundKind[] = ['read-ahead', 'walk-ahead', 'prefetch'];

/** Background range requests in flight at once, when the image's opener does not say (serve.ts leaves a quarter of the connections to reads). */
export const DEFAULT_BACKGROUND_IN_FLIGHT = 6;

interface Job {
  layer: Layer;
  refs: ChunkRef[];
  kind: BackgroundKind;
  signal: AbortSignal | undefined;
  /** With the chunks it asked the layer for, or the failure. */
  settle: (sent: ChunkRef[], err?: unknown) => void;
}

/** What a background fetch asked the layers for (the rest was at hand). */
export interface Fetched {
  chunks: number;
  /** Inflated bytes of those chunks. */
  bytes: number;
}

export class FetchScheduler {
  private readonly queues: Record<BackgroundKind, Job[]> = { 'read-ahead': [], 'walk-ahead': [], prefetch: [] };
  private active = 0;
  private abort = quietController();
  private readonly watched = new WeakSet<AbortSignal>();

  constructor(private readonly maxInFlight = DEFAULT_BACKGROUND_IN_FLIGHT) {
    if (!(maxInFlight >= 1)) throw new RangeError('maxInFlight must be at least 1');
  }

  /** On demand: delivers `refs` to `sink`, before anything queued here. */
  read(layer: Layer, refs: readonly ChunkRef[], sink: ChunkSink, signal?: AbortSignal): Promise<void> {
    return layer.readChunks(refs, sink, signal ? { priority: 'high', signal } : { priority: 'high' });
  }

  /**
   * Fetches chunks of one layer into the cache, most wanted first (the order of `refs`).
   * Settles once every range is back; rejects with the first failure. Chunks already at hand,
   * and chunks that are never cached, are not fetched.
   */
  fetch(layer: Layer, refs: readonly ChunkRef[], kind: BackgroundKind, signal?: AbortSignal): Promise<Fetched> {
    if (signal?.aborted) return Promise.reject(signal.reason ?? new StargzError(ErrorCodes.ABORTED, 'fetch abandoned'));
    const rank = new Map<ChunkRef, number>();
    for (const r of refs) if (cacheable(r) && !rank.has(r) && !atHand(layer, r, kind)) rank.set(r, rank.size);
    // A range is as urgent as the most wanted chunk in it.
    const ranked = layer.planFetch([...rank.keys()]).map((range) => ({ range, rank: Math.min(...range.map((r) => rank.get(r) ?? Infinity)) }));
    ranked.sort((a, b) => a.rank - b.rank);
    if (signal && !this.watched.has(signal)) {
      this.watched.add(signal);
      signal.addEventListener('abort', () => this.drop((j) => j.signal === signal, signal.reason), { once: true });
    }
    const fetched: Fetched = { chunks: 0, bytes: 0 };
    const done = ranked.map(
      ({ range }) =>
        new Promise<void>((resolve, reject) =>
          this.queues[kind].push({
            layer,
            refs: range,
            kind,
            signal,
            settle: (sent, err) => {
              fetched.chunks += sent.length;
              for (const r of sent) fetched.bytes += r.size;
              if (err === undefined) resolve();
              else reject(err);
            },
          }),
        ),
    );
    this.pump();
    return Promise.all(done).then(() => fetched);
  }

  /** Range requests queued and not yet sent (tests, diagnostics). */
  get queued(): number {
    return BACKGROUND.reduce((n, k) => n + this.queues[k].length, 0);
  }

  get running(): number {
    return this.active;
  }

  /** Drops what has not gone out and abandons what has (unmount). */
  clear(): void {
    const dropped = new StargzError(ErrorCodes.ABORTED, 'fetch abandoned');
    this.drop(() => true, dropped);
    this.abort.abort(dropped);
    this.abort = quietController();
  }

  /** Settles the queued jobs that `which` picks as failed with `reason`. */
  private drop(which: (job: Job) => boolean, reason: unknown): void {
    for (const k of BACKGROUND) {
      const queue = this.queues[k];
      const kept = queue.filter((j) => !which(j));
      const dropped = queue.filter(which);
      queue.splice(0, queue.length, ...kept);
      for (const j of dropped) j.settle([], reason ?? new StargzError(ErrorCodes.ABORTED, 'fetch abandoned'));
    }
  }

  private next(): Job | undefined {
    for (const k of BACKGROUND) if (this.queues[k].length > 0) return this.queues[k].shift();
    return undefined;
  }

  private pump(): void {
    while (this.active < this.maxInFlight) {
      const job = this.next();
      if (!job) return;
      // Read on demand meanwhile, or queued twice: no request for what is at hand. What is left
      // is cut where chunks were dropped, so the layer does not fetch their bytes again as a gap.
      const runs: ChunkRef[][] = [];
      let run: ChunkRef[] | undefined;
      for (const r of job.refs) {
        if (atHand(job.layer, r, job.kind)) {
          run = undefined;
          continue;
        }
        if (!run) runs.push((run = []));
        run.push(r);
      }
      const sent = runs.flat();
      if (sent.length === 0) {
        job.settle(sent);
        continue;
      }
      this.active++;
      const signal = job.signal ? AbortSignal.any([job.signal, this.abort.signal]) : this.abort.signal;
      Promise.all(runs.map((r) => job.layer.readChunks(r, () => undefined, { priority: 'low', signal }))).then(
        () => this.finish(job, sent),
        (err: unknown) => this.finish(job, sent, err),
      );
    }
  }

  private finish(job: Job, sent: ChunkRef[], err?: unknown): void {
    this.active--;
    job.settle(sent, err);
    this.pump();
  }
}

/**
 * Whether a chunk needs no fetch: at hand in memory or on its way; for prefetch, whose point is
 * the disk cache, also on disk (read-ahead reads it from disk into memory ahead of the reader).
 */
function atHand(layer: Layer, ref: ChunkRef, kind: BackgroundKind): boolean {
  return layer.atHand(ref, kind === 'prefetch');
}

/** One signal for every background request: each adds a listener, and there are many. */
function quietController(): AbortController {
  const c = new AbortController();
  setMaxListeners(0, c.signal);
  return c;
}
