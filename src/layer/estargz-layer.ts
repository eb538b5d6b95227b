// An eStargz layer read by rule (a) of the digest chain (trust.ts): the TOC is fetched once
// (footer and TOC tail in one request when the guess covers it) and cached by the TOC digest
// that verified it, and so is the index built from it (a later open reads that alone); file chunks are range-fetched on demand, merged into few requests,
// inflated, verified against their chunk digest and cached by it. A file whose chunks have no
// digest is fetched whole and checked against its file digest before any of it is served.
import { createHash } from 'node:crypto';
import { ErrorCodes, StargzError } from '../errors.js';
import {
  buildLayerIndexFromJson,
  DEFAULT_MAX_TOC_BYTES,
  maxTocRegionBytes,
  extractTocJson,
  MAX_FOOTER_SIZE,
  parseFooter,
  tocDigest,
  type LazyChunkRef as ChunkRef,
  type Footer,
  type LazyIndexEntry as IndexEntry,
  type LazyLayerIndex as LayerIndex,
} from '../estargz/index.js';
import type { Descriptor } from '../registry/manifest.js';
import type { BlobReader, BlobSource } from '../blob/blob-source.js';
import { chunksWithin, planRanges, type RangePlanOptions } from './range-plan.js';
import { allSettledOrThrow, mapConcurrent } from '../util/concurrent.js';
import { inflateInThread, type InflateItem } from './inflate-pool.js';
import { SingleFlight } from '../util/single-flight.js';
import { isChunkDigest } from '../cache/digest-key.js';
import { sha256Digest } from '../util/digest.js';
import { cacheable, chunkKey, inCache, peekMemory, type ChunkSink, type Layer, type LayerContext, type ReadOptions } from './layer.js';
import { layerRule, needsWholeFile, uncoveredFile, verifyToc, type LayerRule } from './trust.js';
import { encodeLayerIndex, openLayerIndex, type StoredIndex } from './index-codec.js';
import { deliverFromFile, streamChunkToFile } from './huge-chunk.js';
import { STREAM_PIECE_BYTES, STREAMED_CHUNK_SHARE } from '../config.js';
import { errnoCode } from '../util/errno-code.js';

/** A layer's footer, TOC JSON and the index built from it. */
export interface LoadedToc {
  footer: Footer;
  json: Buffer;
  index: LayerIndex;
}

/** Chunks inflated and handed to the sink at once per range: bounds memory and open files. */
const DELIVERY_CONCURRENCY = 16;

/** Resolves (data) or rejects (err) everyone waiting for a chunk key. */
type Settle = (key: string, data?: Buffer, err?: unknown) => void;

interface PendingChunk {
  /** Every requested ref with this cache key (the first one describes the extent). */
  refs: ChunkRef[];
  key: string;
  offset: number;
  end: number;
  /** Inflated size, so a merged range stays within the memory budget. */
  decoded: number;
}

/** A merged range inflates to at most this share of the memory budget: several fit at once. */
const RANGES_PER_BUDGET = 4;

/** Streamed chunks in flight per readChunks call. */
const STREAMS_AT_ONCE = 2;
/** What one stream holds: the compressed piece being inflated and the next one read ahead. */
const STREAM_HELD_BYTES = 2 * STREAM_PIECE_BYTES;

export class EstargzLayer implements Layer {
  readonly lazy = true;
  readonly format: Layer['format'];
  /** Chunks being fetched right now, so concurrent readers of one chunk share one fetch. */
  private readonly inflight = new Map<string, Promise<Buffer>>();

  /** Digest-less chunks -> the file whose digest vouches for them. */
  private readonly wholeFileOwner = new Map<ChunkRef, IndexEntry>();
  private readonly wholeFile = new SingleFlight<IndexEntry, void>();
  /** Chunks being streamed into the disk cache, by digest (huge-chunk.ts). */
  private readonly streamedFlight = new SingleFlight<string, string>();
  /** Opened on a TOC just read, whose index is not in the cache yet (storeIndex). */
  private indexUnstored = false;
  /** The index, or (fromIndexCache) what decodes it when it is first asked for. */
  private indexOrDecode: LayerIndex | (() => LayerIndex);

  constructor(
    readonly descriptor: Descriptor,
    index: LayerIndex | (() => LayerIndex),
    private readonly footer: Footer,
    private readonly source: BlobSource | undefined,
    private readonly ctx: LayerContext,
    /** The TOC digest that verified `index`, or 'unverified' under --insecure-skip-toc-verify. */
    private readonly verifiedBy: string | 'unverified',
  ) {
    this.format = formatOf(footer);
    this.indexOrDecode = index;
    if (typeof index !== 'function') this.learnWholeFiles(index);
  }

  /**
   * Decoded on first use: a warm open that finds its merged tree stored reads no layer index
   * until a read, a digest or a chunk list needs it (issue 13).
   */
  get index(): LayerIndex {
    const known = this.indexOrDecode;
    if (typeof known !== 'function') return known;
    const index = known();
    this.indexOrDecode = index;
    this.learnWholeFiles(index);
    return index;
  }

  /** Which digest-less chunks wait for their file's digest, unless an earlier run verified the file. */
  private learnWholeFiles(index: LayerIndex): void {
    const ctx = this.ctx;
    for (const e of index.entries.values()) {
      if (!needsWholeFile(e)) continue;
      // Verified by an earlier run: the file's chunks are known by their content digests.
      const key = this.fileChunksKey(e);
      const known = key ? ctx.disk?.getFileChunks(key) : undefined;
      if (known && known.length === e.chunks.length && known.every(isChunkDigest)) e.chunks.forEach((c, i) => (c.digest ??= known[i]));
      else for (const c of e.chunks) if (c.digest === undefined) this.wholeFileOwner.set(c, e);
    }
  }

  /** Only under --insecure-skip-toc-verify: chunks nothing vouches for are served as they come. */
  private get unverifiedOk(): boolean {
    return this.verifiedBy === 'unverified';
  }

  private fileChunksKey(e: IndexEntry): string | undefined {
    return this.verifiedBy === 'unverified' ? undefined : `${this.verifiedBy}@${e.chunks[0]!.offset}`;
  }

  /**
   * Opens the layer lazily: on the index an earlier open stored, else on its TOC (no fallback
   * to rule (b): see openLayer).
   */
  static async open(descriptor: Descriptor, source: BlobSource | undefined, ctx: LayerContext, rule = layerRule(descriptor, ctx.insecureSkipTocVerify ?? false)): Promise<EstargzLayer> {
    return EstargzLayer.fromIndexCache(descriptor, source, ctx, rule) ?? EstargzLayer.onToc(descriptor, await EstargzLayer.loadToc(descriptor, source, ctx, rule), source, ctx, rule);
  }

  /**
   * The layer on the index stored under its TOC digest by an earlier open (index-codec.ts):
   * neither the TOC nor its JSON is read. Undefined when there is none or it does not decode
   * (another codec version, damaged, out of bounds): the caller reads the TOC again, whose
   * index then replaces the record. Only under rule 'toc': the record was built from a TOC
   * that matched that digest, and only for an index servable lazily (onToc stores no other).
   */
  static fromIndexCache(descriptor: Descriptor, source: BlobSource | undefined, ctx: LayerContext, rule: LayerRule): EstargzLayer | undefined {
    if (rule.kind !== 'toc') return undefined;
    const data = ctx.disk?.getTocIndex(rule.tocDigest);
    const stored = data && openLayerIndex(data);
    const footer = stored && stored.footer;
    if (!footer) return undefined;
    const layer: EstargzLayer = new EstargzLayer(descriptor, () => layer.decodeStored(stored, footer, rule.tocDigest), footer, source, ctx, rule.tocDigest);
    return layer;
  }

  /**
   * The stored index's entries, checked as fromIndexCache checked them before they were
   * decoded lazily. A record whose header passed but whose entries do not (out of bounds, or a
   * file that would need reading whole) is rebuilt from the cached TOC, verified by its digest,
   * and stored again; without that TOC the layer cannot be read (CORRUPT_DATA).
   */
  private decodeStored(stored: StoredIndex, footer: Footer, tocDigest: string): LayerIndex {
    const decoded = stored.decode() as LayerIndex | undefined;
    if (decoded && !uncoveredFile(decoded)) return decoded;
    const loaded = cachedToc(this.ctx, tocDigest);
    if (!loaded || uncoveredFile(loaded.index) || JSON.stringify(loaded.footer) !== JSON.stringify(footer)) {
      throw new StargzError(ErrorCodes.CORRUPT_DATA, `the cached index of layer ${this.descriptor.digest.slice(0, 19)} is damaged and its TOC is not cached: open the image again`);
    }
    this.ctx.notice(`the cached index of layer ${this.descriptor.digest.slice(0, 19)} is damaged: rebuilt from its TOC`);
    this.indexUnstored = true;
    return loaded.index;
  }

  /** The layer on a TOC just loaded; under rule 'toc' its index is to be stored for the next open (storeIndex). */
  static onToc(descriptor: Descriptor, loaded: LoadedToc, source: BlobSource | undefined, ctx: LayerContext, rule: LayerRule): EstargzLayer {
    const layer = new EstargzLayer(descriptor, loaded.index, loaded.footer, source, ctx, rule.kind === 'toc' ? rule.tocDigest : 'unverified');
    layer.indexUnstored = rule.kind === 'toc';
    return layer;
  }

  /**
   * Stores the index built from a verified TOC for fromIndexCache, once. Called when the
   * caller's first answer is out (a mount is up, a listing printed): encoding and writing it
   * is not worth delaying that. Chunk digests learned since from verified whole files go with
   * it: the next open would learn them from their records anyway. Best effort: the index is
   * a shortcut, its TOC stays cached.
   */
  storeIndex(): void {
    if (!this.indexUnstored || this.verifiedBy === 'unverified' || !this.ctx.disk || this.ctx.disk.readOnly) return;
    this.indexUnstored = false;
    try {
      this.ctx.disk.putTocIndex(this.verifiedBy, encodeLayerIndex(this.index, this.format, this.footer));
    } catch (err) {
      this.ctx.notice(`cannot store the index of layer ${this.descriptor.digest.slice(0, 19)} in the cache: ${(err as Error).message}`);
    }
  }

  /**
   * The TOC under rule 'toc' (verified against the annotation; cached by that digest) or
   * 'unverified-toc' (never cached). Throws NOT_ESTARGZ when the blob has no eStargz footer.
   */
  static async loadToc(descriptor: Descriptor, source: BlobSource | undefined, ctx: LayerContext, rule: LayerRule): Promise<LoadedToc> {
    const expected = rule.kind === 'toc' ? rule.tocDigest : undefined;
    const cached = expected ? cachedToc(ctx, expected) : undefined;
    if (cached) return cached;
    if (!source || ctx.offline) {
      throw new StargzError(ErrorCodes.OFFLINE_MISS, `the TOC of layer ${descriptor.digest} is not in the cache`);
    }
    // Verified per host: a TOC from a mirror that does not match its digest is fetched again from the next host.
    const { footer, json } = await fetchUntrustedToc(
      source,
      ctx,
      expected ? ctx.tuning.tocTailGuess : MAX_FOOTER_SIZE,
      expected ? (tocJson) => verifyToc(tocJson, expected, descriptor.digest) : undefined,
    );
    const index = buildLayerIndexFromJson(json, footer);
    if (expected) ctx.disk?.putToc(expected, encodeCachedToc(footer, json));
    return { footer, json, index };
  }

  peek(ref: ChunkRef): Buffer | undefined {
    return peekMemory(this.ctx, ref);
  }

  atHand(ref: ChunkRef, onDisk = false): boolean {
    return this.inflight.has(chunkKey(this.descriptor.digest, ref)) || inCache(this.ctx, ref, onDisk);
  }

  /** The one range planning: what fetchChunks requests, and what the scheduler queues as one job each. */
  private rangeOptions(): RangePlanOptions {
    return { ...this.ctx.tuning, maxDecodedBytes: Math.floor(this.ctx.memory.capacity / RANGES_PER_BUDGET) };
  }

  planFetch(refs: readonly ChunkRef[]): ChunkRef[][] {
    const extents = refs.map((ref) => ({ offset: ref.offset, end: ref.end, decoded: ref.size, ref }));
    return planRanges(extents, this.rangeOptions()).map((range) => {
      const out = range.items.map((i) => i.ref);
      if (range.items.length > 1) {
        // The bytes between the chunks are fetched anyway: inflate the whole chunks among them
        // too (files are rarely stored in readdir order; a walk wants them later).
        const have = new Set(out);
        for (const c of chunksWithin(this.index.chunksByOffset ?? [], range.offset, range.end)) if (cacheable(c) && !have.has(c)) out.push(c);
        out.sort((a, b) => a.offset - b.offset);
      }
      return out;
    });
  }

  async readChunks(refs: readonly ChunkRef[], sink: ChunkSink, options: ReadOptions = {}): Promise<void> {
    const direct: ChunkRef[] = [];
    const later: ChunkRef[] = [];
    const files = new Set<IndexEntry>();
    for (const ref of refs) {
      const owner = ref.digest === undefined ? this.wholeFileOwner.get(ref) : undefined;
      if (ref.digest !== undefined) direct.push(ref);
      else if (owner) {
        files.add(owner);
        later.push(ref);
      } else if (this.unverifiedOk) direct.push(ref);
      else throw new StargzError(ErrorCodes.DIGEST_MISMATCH, `chunk at ${ref.offset} of layer ${this.descriptor.digest} has no digest to verify it against`);
    }
    if (files.size === 0) return this.readDigested(direct, sink, options);
    // Once its file digest matched, every chunk of the file has its content digest: from then
    // on it is read like any other (from the cache, or fetched again and verified against it).
    // Shared by every reader of the file, so no one reader's abort (a FUSE read deadline) stops
    // it: a read that gave up is answered later from the verified chunks.
    const shared: ReadOptions = options.priority ? { priority: options.priority } : {};
    const whole = Promise.all([...files].map((f) => this.wholeFile.run(f, () => this.verifyWholeFile(f, shared)))).then(() =>
      this.readDigested(later, sink, options),
    );
    await allSettledOrThrow([this.readDigested(direct, sink, options), whole]);
  }

  /**
   * Streams a file's digest-less chunks in order, a few MiB at a time (never the whole file in
   * memory), hashing them and caching each under its own content digest (harmless: content
   * addressed); only when the file digest matches does the index learn those chunk digests.
   */
  private async verifyWholeFile(entry: IndexEntry, options: ReadOptions): Promise<void> {
    const expected = entry.digest!;
    const algorithm = expected.slice(0, expected.indexOf(':'));
    const chunks = entry.chunks;
    // Against one host at a time (BlobSource.verified): a mirror whose bytes do not add up to
    // the file digest is passed over and the file streamed again from the next host. The
    // chunks a failed try cached are harmless: they are stored under their own content digest.
    const attempt = async (from: BlobReader | undefined): Promise<string[]> => {
      const hash = createHash(algorithm);
      const digests: string[] = [];
      for (let i = 0; i < chunks.length; ) {
        const batch: ChunkRef[] = [];
        let bytes = 0;
        while (i < chunks.length && (batch.length === 0 || bytes + chunks[i]!.size <= this.ctx.tuning.maxRangeBytes)) {
          bytes += chunks[i]!.size;
          batch.push(chunks[i++]!);
        }
        const got = new Map<ChunkRef, Buffer>();
        const pending = batch.map((ref) => ({ refs: [ref], key: chunkKey(this.descriptor.digest, ref), offset: ref.offset, end: ref.end, decoded: ref.size }));
        await this.fetchChunks(pending, async (p, data) => void got.set(p.refs[0]!, data), () => undefined, options, from);
        for (const ref of batch) {
          const data = got.get(ref)!;
          hash.update(data);
          const digest = sha256Digest(data);
          digests.push(digest);
          await this.ctx.cache.put(digest, data);
        }
      }
      const actual = `${algorithm}:${hash.digest('hex')}`;
      if (actual !== expected) {
        throw new StargzError(ErrorCodes.DIGEST_MISMATCH, `${JSON.stringify(entry.path)} in layer ${this.descriptor.digest}: content has digest ${actual}, the TOC says ${expected}`);
      }
      return digests;
    };
    // Without a source (offline), fetchChunks reports the miss.
    const digests = this.source && !this.ctx.offline ? await this.source.verified(attempt, options.signal) : await attempt(undefined);
    chunks.forEach((c, n) => {
      if (c.digest === undefined) c.digest = digests[n];
      this.wholeFileOwner.delete(c);
    });
    const key = this.fileChunksKey(entry);
    if (key) this.ctx.disk?.putFileChunks(key, digests);
  }

  /** Above this inflated size a chunk is streamed to the disk cache, never held whole (config.ts STREAMED_CHUNK_SHARE). */
  private get streamedAbove(): number {
    return Math.floor(Math.min(this.ctx.cache.memory.maxBytes, this.ctx.memory.capacity) / STREAMED_CHUNK_SHARE);
  }

  /**
   * Whether the chunk goes through readStreamed. Without a disk cache that can take it (none,
   * read-only, or smaller than the chunk), a chunk within the memory budget is still read as
   * one Buffer (bounded by the budget, as before); one larger than the budget is refused there.
   */
  private streams(ref: ChunkRef): ref is ChunkRef & { digest: string } {
    if (!(ref.size > this.streamedAbove && cacheable(ref) && isChunkDigest(ref.digest))) return false;
    return (this.ctx.disk?.canStream(ref.size) ?? false) || ref.size > this.ctx.memory.capacity;
  }

  private async readDigested(refs: readonly ChunkRef[], sink: ChunkSink, options: ReadOptions): Promise<void> {
    if (refs.length === 0) return;
    if (refs.some((r) => this.streams(r))) {
      const streamed = refs.filter((r) => this.streams(r));
      const rest = refs.filter((r) => !this.streams(r));
      await allSettledOrThrow([this.readStreamed(streamed, sink, options), this.readDigested(rest, sink, options)]);
      return;
    }
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
      else byKey.set(key, { refs: [ref], key, offset: ref.offset, end: ref.end, decoded: ref.size });
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
        const hit = await this.ctx.cache.get(p.key, this.descriptor.digest);
        if (hit) {
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

  /**
   * Chunks too large for memory: each is streamed into the disk cache once (joined by every
   * reader of it), then its window is read back from the file by position (huge-chunk.ts).
   */
  private async readStreamed(refs: readonly (ChunkRef & { digest: string })[], sink: ChunkSink, options: ReadOptions): Promise<void> {
    await mapConcurrent(refs.values(), STREAMS_AT_ONCE, async (ref) => {
      for (let tries = 0; ; tries++) {
        const path = await this.streamedFile(ref, options);
        if (options.fetchOnly) return;
        try {
          return await deliverFromFile(path, ref, sink, options);
        } catch (err) {
          // Evicted (by us or another process) between lookup and open: fetch it again, once.
          if (tries > 0 || errnoCode(err) !== 'ENOENT') throw err;
        }
      }
    });
  }

  /** The cache file of a streamed chunk, streaming it in first when the cache lacks it. */
  private async streamedFile(ref: ChunkRef & { digest: string }, options: ReadOptions): Promise<string> {
    const disk = this.ctx.disk;
    const what = `chunk at ${ref.offset} of layer ${this.descriptor.digest}`;
    // Refused rather than streamed to a temporary file elsewhere: a chunk that large is worth
    // keeping, and there is no second place whose size and cleanup the user must manage.
    if (!disk || !disk.canStream(ref.size)) {
      throw new StargzError(
        ErrorCodes.CACHE,
        `${what} inflates to ${ref.size} bytes, more than the memory budget of ${this.ctx.memory.capacity} bytes, ` +
          (disk ? `and the disk cache (${disk.readOnly ? 'read-only' : `${disk.maxBytes} bytes`}) cannot hold it` : 'and there is no disk cache to stream it into'),
      );
    }
    const have = disk.streamedChunk(ref.digest);
    if (have) {
      this.ctx.metrics.chunksServed(this.descriptor.digest, 'disk');
      return have.path;
    }
    // Shared by every reader of the chunk, so no one reader's abort (a FUSE read deadline)
    // stops it: a read that gave up is answered later from the file.
    const shared: ReadOptions = options.priority ? { priority: options.priority } : {};
    return this.streamedFlight.run(ref.digest, async () => {
      const again = disk.streamedChunk(ref.digest); // streamed by a flight that just ended, or another process
      if (again) return again.path;
      const source = this.source;
      if (!source || this.ctx.offline) throw new StargzError(ErrorCodes.OFFLINE_MISS, `${what} is not in the cache`);
      // Verified per host: a mirror's bytes that do not match are streamed again from the next host.
      const tmp = await this.ctx.memory.run(
        STREAM_HELD_BYTES,
        () =>
          source.verified(async (from) => {
            const path = disk.streamTempPath();
            await streamChunkToFile(from, ref, this.footer.compression, path, this.ctx, shared, what);
            return path;
          }),
        shared.priority,
      );
      this.ctx.metrics.chunksServed(this.descriptor.digest, 'network');
      return disk.commitStreamedChunk(ref.digest, tmp, ref.size);
    });
  }

  private async fetchChunks(
    pending: PendingChunk[],
    deliver: (p: PendingChunk, data: Buffer) => Promise<void>,
    settle: Settle,
    options: ReadOptions,
    /** One host, when the caller verifies per host itself (verifyWholeFile); else each range is verified per host here. */
    pinned?: BlobReader,
  ): Promise<void> {
    const source = this.source;
    if (!source || this.ctx.offline) {
      throw new StargzError(ErrorCodes.OFFLINE_MISS, `chunks of layer ${this.descriptor.digest} are not in the cache`);
    }
    const ranges = planRanges(pending, this.rangeOptions());
    let failed = false;
    await allSettledOrThrow(
      ranges.map((range) =>
        // Two bounds: `memory` on bytes held (the range and the chunks inflated from it, until
        // delivered and cached), and `limiter` on requests on the wire. A range frees its
        // request slot as soon as its bytes are in, so the next request starts while this one
        // is still processed.
        this.ctx.memory.run(heldBytes(range), async () => {
          // After a failure, ranges not yet started are not fetched at all.
          if (failed || options.signal?.aborted) throw new StargzError(ErrorCodes.ABORTED, 'fetch abandoned');
          const length = range.end - range.offset;
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
            // Fetch, inflate and verify against one host at a time: chunks from a mirror that
            // do not verify are fetched again from the next host (BlobSource.verified).
            const fetchFrom = async (from: BlobReader): Promise<Buffer[]> => {
              const inflater = this.ctx.inflater;
              const fetchAndInflate = async (): Promise<Buffer[]> => {
                const compressed = await this.ctx.limiter.run(() => {
                  if (failed || options.signal?.aborted) throw new StargzError(ErrorCodes.ABORTED, 'fetch abandoned');
                  return from.readRange(range.offset, length, options.signal);
                }, options.priority);
                return inflater
                  ? await inflater.inflate(compressed, compression, jobs)
                  : await Promise.all(jobs.map((j) => inflateInThread(compressed.subarray(j.start, j.end), compression, j)));
              };
              // Not read further ahead of the inflater than its backlog (config.ts INFLATE_BACKLOG_BYTES).
              return inflater ? await inflater.ahead(length, fetchAndInflate, options.priority) : await fetchAndInflate();
            };
            outputs = pinned ? await fetchFrom(pinned) : await source.verified(fetchFrom, options.signal);
          } catch (err) {
            failed = true;
            for (const item of range.items) settle(item.key, undefined, err);
            throw err;
          }
          this.ctx.metrics.chunksServed(this.descriptor.digest, 'network', outputs.length);
          await mapConcurrent(range.items.keys(), DELIVERY_CONCURRENCY, async (i) => {
            const item = range.items[i]!;
            const data = outputs[i]!;
            // Readers first; the cache write after (still awaited: it bounds memory).
            settle(item.key, data);
            await deliver(item, data);
            if (cacheable(item.refs[0]!)) await this.ctx.cache.put(item.key, data, this.ctx.cacheFetchedChunks === false ? 'memory' : 'both');
          });
        }, options.priority),
      ),
    );
  }
}

/** Memory a range holds while processed: its compressed bytes and every chunk inflated from it. */
function heldBytes(range: { offset: number; end: number; items: PendingChunk[] }): number {
  let bytes = range.end - range.offset;
  for (const item of range.items) bytes += item.decoded;
  return bytes;
}

export function formatOf(footer: Footer): Layer['format'] {
  return footer.compression === 'zstd' ? 'estargz-zstd' : footer.legacy ? 'estargz-legacy' : 'estargz';
}

/** The footer alone (one small request), to name a format without trusting or fetching anything else. */
export async function probeFooter(source: BlobSource, ctx: LayerContext): Promise<Footer> {
  const length = Math.min(source.size, MAX_FOOTER_SIZE);
  const tail = await ctx.limiter.run(() => source.readRange(source.size - length, length));
  return parseFooter(tail, source.size);
}

/**
 * Footer and TOC as the registry serves them (untrusted): the tail guess usually covers both
 * in one request. With `verify` (the TOC digest check), footer, TOC and check run against one
 * host at a time, so a mirror's bad footer or TOC falls through to the next host; without it
 * nothing can prove a host wrong, and whichever answers is read.
 */
export async function fetchUntrustedToc(
  source: BlobSource,
  ctx: LayerContext,
  tailGuess: number,
  verify?: (json: Buffer) => void,
): Promise<{ footer: Footer; json: Buffer }> {
  const size = source.size;
  if (size < 40) throw new StargzError(ErrorCodes.NOT_ESTARGZ, `blob ${source.digest} is too small to be eStargz`);
  const fetchFrom = async (from: BlobReader): Promise<{ footer: Footer; json: Buffer }> => {
    const tailLength = Math.min(size, Math.max(tailGuess, MAX_FOOTER_SIZE));
    const tailStart = size - tailLength;
    const tail = await ctx.limiter.run(() => from.readRange(tailStart, tailLength));
    const footer = parseFooter(tail.subarray(Math.max(0, tail.length - MAX_FOOTER_SIZE)), size);
    // The TOC is held in memory, inflated: it must fit the budget, and its region the bound that
    // follows from that, checked before the region is fetched (a footer may point anywhere).
    const maxJson = Math.min(DEFAULT_MAX_TOC_BYTES, ctx.memory.capacity);
    const maxRegion = maxTocRegionBytes(maxJson);
    if (footer.tocLength > maxRegion) {
      throw new StargzError(
        ErrorCodes.TOC_INVALID,
        `the footer of blob ${source.digest} puts the TOC at offset ${footer.tocOffset}: ${footer.tocLength} bytes, more than the ${maxRegion} a TOC of at most ${maxJson} bytes can take (memory budget ${ctx.memory.capacity})`,
      );
    }
    let region: Buffer;
    if (footer.tocOffset >= tailStart) {
      region = tail.subarray(footer.tocOffset - tailStart, footer.tocOffset - tailStart + footer.tocLength);
    } else {
      const headLength = tailStart - footer.tocOffset;
      const head = await ctx.limiter.run(() => from.readRange(footer.tocOffset, headLength));
      region = Buffer.concat([head, tail]).subarray(0, footer.tocLength);
    }
    return { footer, json: extractTocJson(region, footer.compression, maxJson) };
  };
  if (!verify) return fetchFrom(source);
  return source.verified(async (from) => {
    const toc = await fetchFrom(from);
    verify(toc.json);
    return toc;
  });
}

// The cached TOC keeps its footer in front (one JSON line), since chunk extents depend on it.
function encodeCachedToc(footer: Footer, json: Buffer): Buffer {
  return Buffer.concat([Buffer.from(JSON.stringify(footer) + '\n'), json]);
}

/** The TOC cached under `expected` when it still matches that digest, with its index built again. */
function cachedToc(ctx: LayerContext, expected: string): LoadedToc | undefined {
  const data = ctx.disk?.getToc(expected);
  const parsed = data && decodeCachedToc(data);
  return parsed && tocDigest(parsed.json) === expected ? { ...parsed, index: buildLayerIndexFromJson(parsed.json, parsed.footer) } : undefined;
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
