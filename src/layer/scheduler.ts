// The one fetch scheduler of an image: every read of chunk bytes goes through it, by kind,
// most urgent first — on demand, then read-ahead within the file being read, then the next
// files of a directory walk, then the background prefetch.
// On-demand reads go straight to the layer, at the connection limiter's high priority, so they
// overtake everything queued here. Background work is planned by the layer into the range
// requests it will make (Layer.planFetch), and each range is one job: jobs go out most urgent
// kind first, most wanted range first within a fetch, and at most three quarters of the
// connections at once, so the rest stay free for on-demand reads. Handing a whole window to the
// layer at once would instead queue dozens of requests in blob order in front of the next one
// a reader waits for. Concurrent fetches of one chunk are joined by the layer (readChunks).
import { setMaxListeners } from 'node:events';
import { DEFAULT_OPTIONS } from '../config.js';
import { ErrorCodes, StargzError, toStargzError } from '../errors.js';
import type { ChunkRef } from '../estargz/index.js';
import { FetchMetrics } from '../metrics/fetch-metrics.js';
import { cacheable, type ChunkSink, type Layer, type ReadOptions } from './layer.js';

/** Why bytes are wanted. */
export type FetchKind = 'read' | BackgroundKind;
export type BackgroundKind = 'read-ahead' | 'walk-ahead' | 'prefetch';
/** Background kinds, most urgent first. */
const BACKGROUND: readonly BackgroundKind[] = ['read-ahead', 'walk-ahead', 'prefetch'];


interface Job {
  layer: Layer;
  refs: ChunkRef[];
  kind: BackgroundKind;
  signal: AbortSignal | undefined;
  /** With the chunks it asked the layer for, and the failure if any. */
  settle: (sent: ChunkRef[], err?: unknown) => void;
}

/** What a background fetch asked the layer for (the rest was at hand): chunks and their inflated bytes. */
export interface Fetched {
  chunks: number;
  bytes: number;
}

export class FetchScheduler {
  private readonly queues: Record<BackgroundKind, Job[]> = { 'read-ahead': [], 'walk-ahead': [], prefetch: [] };
  private active = 0;
  private abort = quietController();
  /** Background range requests in flight at once: a quarter of the connections stays free for reads. */
  private readonly maxInFlight: number;

  /**
   * `connections`: range requests the layers make at once (their limiter's concurrency).
   * `metrics`: where read latency, bytes read and background progress are counted.
   */
  constructor(
    connections = DEFAULT_OPTIONS.concurrency,
    readonly metrics = new FetchMetrics(),
  ) {
    if (!(connections >= 1)) throw new RangeError('connections must be at least 1');
    this.maxInFlight = Math.max(1, Math.floor((connections * 3) / 4));
    metrics.watchQueue(() => this.queued);
  }

  /** On demand: delivers `refs` to `sink`, before anything queued here (`window`: see ReadOptions). */
  read(layer: Layer, refs: readonly ChunkRef[], sink: ChunkSink, signal?: AbortSignal, window?: ReadOptions['window']): Promise<void> {
    const options: ReadOptions = { priority: 'high' };
    if (signal) options.signal = signal;
    if (window) options.window = window;
    // A lazy layer's chunks say what they fetch, so the read's progress can follow its compressed bytes.
    const counted = this.metrics.readStarted(layer.descriptor.digest, bytesOf(refs), layer.lazy ? compressedBytesOf(refs) : 0);
    return layer.readChunks(refs, (ref, data, at) => (counted.delivered(data.length), sink(ref, data, at)), options).then(
      () => counted.done(),
      (err: unknown) => {
        counted.done(toStargzError(err));
        throw err;
      },
    );
  }

  /**
   * Fetches chunks of one layer into the cache, most wanted first (the order of `refs`).
   * Settles once every range is back; rejects with the first failure. Chunks at hand, and
   * chunks that are never cached, are not fetched. Once `signal` fired, nothing more goes out.
   */
  fetch(layer: Layer, refs: readonly ChunkRef[], kind: BackgroundKind, signal?: AbortSignal): Promise<Fetched> {
    const rank = new Map<ChunkRef, number>();
    for (const r of refs) if (cacheable(r) && !rank.has(r) && !atHand(layer, r, kind)) rank.set(r, rank.size);
    // A range is as urgent as the most wanted chunk in it.
    const ranked = layer.planFetch([...rank.keys()]).map((range) => ({ range, rank: Math.min(...range.map((r) => rank.get(r) ?? Infinity)) }));
    ranked.sort((a, b) => a.rank - b.rank);
    const fetched: Fetched = { chunks: 0, bytes: 0 };
    const settle = (resolve: () => void, reject: (err: unknown) => void) => (sent: ChunkRef[], err?: unknown) => {
      fetched.chunks += sent.length;
      for (const r of sent) fetched.bytes += r.size;
      if (err === undefined) resolve();
      else reject(err);
    };
    const digest = layer.descriptor.digest;
    const done = ranked.map(
      ({ range }) =>
        new Promise<void>((resolve, reject) => {
          const settled = settle(resolve, reject);
          const queuedBytes = bytesOf(range);
          this.metrics.backgroundQueuedBytes(digest, kind, queuedBytes);
          // Every queued byte settles once: sent (fetched or failed), or skipped as at hand or cancelled.
          const counted = (sent: ChunkRef[], err?: unknown): void => {
            const sentBytes = bytesOf(sent);
            this.metrics.backgroundSettled(digest, kind, 'skipped', queuedBytes - sentBytes);
            this.metrics.backgroundSettled(digest, kind, err === undefined ? 'fetched' : 'failed', sentBytes);
            if (err !== undefined && sent.length > 0) this.metrics.failed(kind, toStargzError(err).code);
            settled(sent, err);
          };
          this.queues[kind].push({ layer, refs: range, kind, signal, settle: counted });
        }),
    );
    this.pump();
    return Promise.all(done).then(() => fetched);
  }

  /** Range requests queued and not yet sent (tests, diagnostics). */
  get queued(): number {
    return BACKGROUND.reduce((n, k) => n + this.queues[k].length, 0);
  }

  /** Drops what has not gone out and abandons what has (unmount). */
  clear(): void {
    const dropped = new StargzError(ErrorCodes.ABORTED, 'fetch abandoned');
    for (const k of BACKGROUND) for (const job of this.queues[k].splice(0)) job.settle([], dropped);
    this.abort.abort(dropped);
    this.abort = quietController();
  }

  private pump(): void {
    while (this.active < this.maxInFlight) {
      const job = BACKGROUND.map((k) => this.queues[k]).find((q) => q.length > 0)?.shift();
      if (!job) return;
      // Queued while others ran, so this job may be partly done: what became at hand (read on
      // demand meanwhile, or queued twice) is dropped, and what is left is cut where chunks were
      // dropped, so the layer does not fetch their bytes again as a gap. An aborted job sends nothing.
      const runs: ChunkRef[][] = [];
      let run: ChunkRef[] | undefined;
      for (const r of job.signal?.aborted ? [] : job.refs) {
        if (atHand(job.layer, r, job.kind)) {
          run = undefined;
          continue;
        }
        if (!run) runs.push((run = []));
        run.push(r);
      }
      const sent = runs.flat();
      if (sent.length === 0) {
        job.settle(sent, job.signal?.reason);
        continue;
      }
      this.active++;
      const signal = job.signal ? AbortSignal.any([job.signal, this.abort.signal]) : this.abort.signal;
      const finish = (err?: unknown): void => {
        this.active--;
        job.settle(sent, err);
        this.pump();
      };
      Promise.all(runs.map((r) => job.layer.readChunks(r, () => undefined, { priority: 'low', signal, fetchOnly: true }))).then(() => finish(), finish);
    }
  }
}

/**
 * Whether a chunk needs no fetch: at hand in memory or on its way; for prefetch, whose point is
 * the disk cache, also on disk (read-ahead reads it from disk into memory ahead of the reader).
 */
function atHand(layer: Layer, ref: ChunkRef, kind: BackgroundKind): boolean {
  return layer.atHand(ref, kind === 'prefetch');
}

function bytesOf(refs: readonly ChunkRef[]): number {
  let n = 0;
  for (const r of refs) n += r.size;
  return n;
}

/** The compressed extents of `refs` (those that have one). */
function compressedBytesOf(refs: readonly ChunkRef[]): number {
  let n = 0;
  for (const r of refs) if (r.offset !== undefined && r.end !== undefined) n += r.end - r.offset;
  return n;
}

/** One signal for every background request: each adds a listener, and there are many. */
function quietController(): AbortController {
  const c = new AbortController();
  setMaxListeners(0, c.signal);
  return c;
}
