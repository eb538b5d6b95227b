// An eStargz layer: the TOC is fetched once (footer and TOC tail in one request when the
// guess covers it, cached by layer digest), and file chunks are range-fetched on demand,
// merged into few requests, inflated, verified against their chunk digest and cached.
import { ErrorCodes, StargzError } from '../errors.js';
import {
  buildLayerIndex,
  extractTocJson,
  MAX_FOOTER_SIZE,
  parseFooter,
  parseToc,
  tocDigest,
  type ChunkRef,
  type Footer,
  type LayerIndex,
} from '../estargz/index.js';
import type { Descriptor } from '../registry/manifest.js';
import type { BlobSource } from '../blob/blob-source.js';
import { planRanges } from './range-plan.js';
import { allSettledOrThrow, mapConcurrent } from '../util/concurrent.js';
import { inflateInThread, type InflateItem } from './inflate-pool.js';
import { chunkKey, type ChunkSink, type Layer, type LayerContext, type ReadOptions } from './layer.js';

/** Chunks inflated and handed to the sink at once per range: bounds memory and open files. */
const DELIVERY_CONCURRENCY = 16;

export const TOC_DIGEST_ANNOTATION = 'containerd.io/snapshot/stargz/toc.digest';

/** Resolves (data) or rejects (err) everyone waiting for a chunk key. */
type Settle = (key: string, data?: Buffer, err?: unknown) => void;

interface PendingChunk {
  /** Every requested ref with this cache key (the first one describes the extent). */
  refs: ChunkRef[];
  key: string;
  offset: number;
  end: number;
}

export class EstargzLayer implements Layer {
  readonly lazy = true;
  readonly format: Layer['format'];
  /** Chunks being fetched right now, so concurrent readers of one chunk share one fetch. */
  private readonly inflight = new Map<string, Promise<Buffer>>();

  private constructor(
    readonly descriptor: Descriptor,
    readonly index: LayerIndex,
    private readonly footer: Footer,
    private readonly source: BlobSource | undefined,
    private readonly ctx: LayerContext,
  ) {
    this.format = footer.compression === 'zstd' ? 'estargz-zstd' : footer.legacy ? 'estargz-legacy' : 'estargz';
  }

  /**
   * Opens the layer from the cached TOC or by fetching footer + TOC. Throws NOT_ESTARGZ
   * when the blob has no eStargz footer (the caller then treats it as a plain layer).
   */
  static async open(descriptor: Descriptor, source: BlobSource | undefined, ctx: LayerContext): Promise<EstargzLayer> {
    const expected = descriptor.annotations?.[TOC_DIGEST_ANNOTATION];
    const cached = ctx.disk?.getToc(descriptor.digest);
    if (cached) {
      const parsed = decodeCachedToc(cached);
      if (parsed && (!expected || tocDigest(parsed.json) === expected)) {
        return new EstargzLayer(descriptor, buildLayerIndex(parseToc(parsed.json), parsed.footer), parsed.footer, source, ctx);
      }
    }
    if (!source || ctx.offline) {
      throw new StargzError(ErrorCodes.OFFLINE_MISS, `the TOC of layer ${descriptor.digest} is not in the cache`);
    }
    // Without the annotation the layer may well be plain tar+gzip: probe the footer alone first.
    const { footer, json } = await fetchToc(source, ctx, expected ? ctx.tuning.tocTailGuess : MAX_FOOTER_SIZE);
    if (expected) {
      const actual = tocDigest(json);
      if (actual !== expected) {
        throw new StargzError(
          ErrorCodes.DIGEST_MISMATCH,
          `TOC of layer ${descriptor.digest} has digest ${actual}, but the manifest says ${expected}`,
        );
      }
    }
    const index = buildLayerIndex(parseToc(json), footer);
    ctx.disk?.putToc(descriptor.digest, encodeCachedToc(footer, json));
    return new EstargzLayer(descriptor, index, footer, source, ctx);
  }

  async readChunks(refs: readonly ChunkRef[], sink: ChunkSink, options: ReadOptions = {}): Promise<void> {
    // Group by cache key: identical chunks (of hardlinked or duplicate files) are fetched once.
    const byKey = new Map<string, PendingChunk>();
    const waits: Promise<void>[] = [];
    for (const ref of refs) {
      const key = chunkKey(this.descriptor.digest, ref);
      const joined = this.inflight.get(key);
      if (joined) {
        waits.push(joined.then((data) => sink(ref, data)));
        continue;
      }
      const group = byKey.get(key);
      if (group) group.refs.push(ref);
      else byKey.set(key, { refs: [ref], key, offset: ref.offset, end: ref.end });
    }
    const deliver = async (p: PendingChunk, data: Buffer): Promise<void> => {
      for (const ref of p.refs) await sink(ref, data);
    };

    // Every chunk this call will produce is registered as in flight before the first await,
    // cache lookups included: a concurrent reader of the same chunk joins instead of
    // looking it up and fetching it a second time.
    const resolvers = new Map<string, { resolve: (b: Buffer) => void; reject: (e: unknown) => void }>();
    for (const p of byKey.values()) {
      const promise = new Promise<Buffer>((resolve, reject) => resolvers.set(p.key, { resolve, reject }));
      promise.catch(() => undefined); // observed by whoever joins; this call reports its own failure
      this.inflight.set(p.key, promise);
    }
    const settle: Settle = (key, data, err) => {
      const r = resolvers.get(key);
      if (!r) return;
      resolvers.delete(key);
      this.inflight.delete(key);
      if (err !== undefined) r.reject(err);
      else r.resolve(data as Buffer);
    };

    try {
      // Cache lookups first; what is left is fetched in merged ranges.
      const toFetch: PendingChunk[] = [];
      await mapConcurrent(byKey.values(), DELIVERY_CONCURRENCY, async (p) => {
        const hit = await this.ctx.cache.get(p.key);
        if (hit) {
          this.ctx.stats.chunkCacheHits++;
          settle(p.key, hit);
          await deliver(p, hit);
        } else {
          toFetch.push(p);
        }
      });
      if (toFetch.length > 0) waits.push(this.fetchChunks(toFetch, deliver, settle, options));
      await allSettledOrThrow(waits);
    } finally {
      for (const key of [...resolvers.keys()]) settle(key, undefined, new StargzError(ErrorCodes.ABORTED, 'fetch abandoned'));
    }
  }

  private async fetchChunks(
    pending: PendingChunk[],
    deliver: (p: PendingChunk, data: Buffer) => Promise<void>,
    settle: Settle,
    options: ReadOptions,
  ): Promise<void> {
    const source = this.source;
    if (!source || this.ctx.offline) {
      throw new StargzError(ErrorCodes.OFFLINE_MISS, `chunks of layer ${this.descriptor.digest} are not in the cache`);
    }
    const ranges = planRanges(pending, this.ctx.tuning);
    let failed = false;
    await allSettledOrThrow(
      ranges.map((range) =>
        // Two bounds: `inMemory` on ranges held (fetched, being inflated or written), and
        // `limiter` on requests on the wire. A range frees its request slot as soon as its
        // bytes are in, so the next request starts while this one is still processed.
        this.ctx.inMemory.run(async () => {
          // After a failure, ranges not yet started are not fetched at all.
          if (failed || options.signal?.aborted) throw new StargzError(ErrorCodes.ABORTED, 'fetch abandoned');
          const length = range.end - range.offset;
          let compressed: Buffer;
          try {
            compressed = await this.ctx.limiter.run(() => {
              if (failed || options.signal?.aborted) throw new StargzError(ErrorCodes.ABORTED, 'fetch abandoned');
              this.ctx.stats.rangeRequests++;
              this.ctx.stats.bytesRequested += length;
              return source.readRange(range.offset, length, options.signal);
            }, options.priority);
          } catch (err) {
            failed = true;
            for (const item of range.items) settle(item.key, undefined, err);
            throw err;
          }
          const compression = this.footer.compression;
          const jobs: InflateItem[] = range.items.map((item) => ({
            start: item.offset - range.offset,
            end: item.end - range.offset,
            innerOffset: item.refs[0]!.innerOffset,
            size: item.refs[0]!.size,
            digest: item.refs[0]!.digest,
            what: `chunk at ${item.offset} of layer ${this.descriptor.digest}`,
          }));
          let outputs: Buffer[];
          try {
            outputs = this.ctx.inflater
              ? await this.ctx.inflater.inflate(compressed, compression, jobs)
              : await Promise.all(jobs.map((j) => inflateInThread(compressed.subarray(j.start, j.end), compression, j)));
          } catch (err) {
            failed = true;
            for (const item of range.items) settle(item.key, undefined, err);
            throw err;
          }
          this.ctx.stats.chunksFetched += outputs.length;
          await mapConcurrent(range.items.keys(), DELIVERY_CONCURRENCY, async (i) => {
            const item = range.items[i]!;
            const data = outputs[i]!;
            // Readers first; the cache write after (still awaited: it bounds memory).
            settle(item.key, data);
            await deliver(item, data);
            if (item.refs[0]!.digest) await this.ctx.cache.put(item.key, data);
          });
        }, options.priority),
      ),
    );
  }
}

/** Footer and TOC of a layer: the tail guess usually covers both in one request. */
async function fetchToc(source: BlobSource, ctx: LayerContext, tailGuess: number): Promise<{ footer: Footer; json: Buffer }> {
  const size = source.size;
  if (size < 40) throw new StargzError(ErrorCodes.NOT_ESTARGZ, `blob ${source.digest} is too small to be eStargz`);
  const tailLength = Math.min(size, Math.max(tailGuess, MAX_FOOTER_SIZE));
  const tailStart = size - tailLength;
  ctx.stats.rangeRequests++;
  ctx.stats.bytesRequested += tailLength;
  const tail = await ctx.limiter.run(() => source.readRange(tailStart, tailLength));
  const footer = parseFooter(tail.subarray(Math.max(0, tail.length - MAX_FOOTER_SIZE)), size);
  let region: Buffer;
  if (footer.tocOffset >= tailStart) {
    region = tail.subarray(footer.tocOffset - tailStart, footer.tocOffset - tailStart + footer.tocLength);
  } else {
    const headLength = tailStart - footer.tocOffset;
    ctx.stats.rangeRequests++;
    ctx.stats.bytesRequested += headLength;
    const head = await ctx.limiter.run(() => source.readRange(footer.tocOffset, headLength));
    region = Buffer.concat([head, tail]).subarray(0, footer.tocLength);
  }
  return { footer, json: extractTocJson(region, footer.compression) };
}

// The cached TOC keeps its footer in front (one JSON line), since chunk extents depend on it.
function encodeCachedToc(footer: Footer, json: Buffer): Buffer {
  return Buffer.concat([Buffer.from(JSON.stringify(footer) + '\n'), json]);
}

function decodeCachedToc(data: Buffer): { footer: Footer; json: Buffer } | undefined {
  const nl = data.indexOf(0x0a);
  if (nl < 0) return undefined;
  try {
    const footer = JSON.parse(data.subarray(0, nl).toString('utf8')) as Footer;
    return { footer, json: data.subarray(nl + 1) };
  } catch {
    return undefined;
  }
}
