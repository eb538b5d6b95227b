// A layer read by rule (b) of the digest chain (trust.ts): plain tar+gzip, or an eStargz
// blob nothing lets us read lazily (no TOC annotation, or chunks no digest covers). It is
// streamed whole once and verified against the layer digest: every file's bytes go into the
// content-addressed chunk cache in 1 MiB pieces, and the index built from the tar headers is
// cached by layer digest once the blob matched it. From then on it is served from the cache.
// An eStargz blob is a valid tar.gz too: its bookkeeping entries are skipped, and its TOC
// must agree with the tar it came in.
import { createHash } from 'node:crypto';
import { createGunzip } from 'node:zlib';
import { pipeline } from 'node:stream/promises';
import { ErrorCodes, StargzError, toStargzError } from '../errors.js';
import {
  DEFAULT_MAX_TOC_BYTES,
  NO_PREFETCH_LANDMARK,
  normalizeEntryName,
  PREFETCH_LANDMARK,
  TOC_TAR_NAME,
} from '../estargz/index.js';
import type { ChunkRef, IndexEntry, LayerIndex, NodeType } from '../file-index/index.js';
import type { Descriptor } from '../registry/manifest.js';
import type { BlobSource } from '../blob/blob-source.js';
import { verifyingStream } from '../blob/verifying-stream.js';
import { SingleFlight } from '../util/single-flight.js';
import { chunkKey, inCache, peekMemory, type ChunkSink, type Layer, type LayerContext, type ReadOptions } from './layer.js';
import { LayerIndexBuilder, decodeLayerIndex, encodeLayerIndex } from './index-codec.js';
import type { LoadedToc } from './estargz-layer.js';
import { checkTocAgainstTar, type StreamedTocEvidence } from './trust.js';
import { PieceWriter } from './piece-writer.js';
import { tarSink, type EntryBody } from './tar-sink.js';
import type { TarEntry, TarEntryType } from '../tar/reader.js';

/** Entries of an eStargz blob that are its own bookkeeping, not files of the image. */
const BOOKKEEPING = new Set([TOC_TAR_NAME, PREFETCH_LANDMARK, NO_PREFETCH_LANDMARK]);

export { PLAIN_PIECE_SIZE } from './piece-writer.js';

const TAR_TYPES: Record<TarEntryType, NodeType | undefined> = {
  file: 'reg',
  hardlink: 'hardlink',
  symlink: 'symlink',
  dir: 'dir',
  char: 'char',
  block: 'block',
  fifo: 'fifo',
  other: undefined,
};

export class PlainLayer implements Layer {
  readonly lazy = false;
  private readonly refetch = new SingleFlight<string, void>();

  private constructor(
    readonly descriptor: Descriptor,
    readonly index: LayerIndex,
    readonly format: Layer['format'],
    private readonly source: BlobSource | undefined,
    private readonly ctx: LayerContext,
  ) {}

  /** The cached index (written only after the whole blob matched the layer digest), or undefined. */
  static fromCache(descriptor: Descriptor, source: BlobSource | undefined, ctx: LayerContext): PlainLayer | undefined {
    const cached = ctx.disk?.getLayerIndex(descriptor.digest);
    const decoded = cached && decodeLayerIndex(cached);
    return decoded && !decoded.footer ? new PlainLayer(descriptor, decoded.index, decoded.format as Layer['format'], source, ctx) : undefined;
  }

  /** An index-less stand-in, for `info`, which must not download a whole layer. */
  static probed(descriptor: Descriptor, ctx: LayerContext, format: Layer['format'] = 'tar+gzip'): PlainLayer {
    return new PlainLayer(descriptor, new LayerIndexBuilder().finish(), format, undefined, ctx);
  }

  /**
   * Streams and verifies the whole blob. `toc`: the blob is eStargz with this TOC (as its
   * footer points to it), which the stream must then confirm.
   */
  static async open(descriptor: Descriptor, source: BlobSource | undefined, ctx: LayerContext, toc?: { loaded: LoadedToc; format: Layer['format']; why: string }): Promise<PlainLayer> {
    const cached = PlainLayer.fromCache(descriptor, source, ctx);
    if (cached) return cached;
    if (!source || ctx.offline) {
      throw new StargzError(ErrorCodes.OFFLINE_MISS, `layer ${descriptor.digest} (read whole) is not in the cache`);
    }
    const why = toc ? toc.why : 'is not eStargz';
    ctx.notice(`layer ${descriptor.digest.slice(0, 19)} ${why}: fetching it whole to verify it (${descriptor.size} bytes)`);
    const format = toc?.format ?? 'tar+gzip';
    const index = await streamLayer(descriptor, source, ctx, { estargz: toc !== undefined, toc: toc?.loaded });
    ctx.disk?.putLayerIndex(descriptor.digest, encodeLayerIndex(index, format));
    return new PlainLayer(descriptor, index, format, source, ctx);
  }

  peek(ref: ChunkRef): Buffer | undefined {
    return peekMemory(this.ctx, ref);
  }

  atHand(ref: ChunkRef, onDisk = false): boolean {
    return inCache(this.ctx, ref, onDisk);
  }

  /** No ranges: the chunks come from the cache, or from streaming the layer again, all at once. */
  planFetch(refs: readonly ChunkRef[]): ChunkRef[][] {
    return refs.length > 0 ? [[...refs]] : [];
  }

  async readChunks(refs: readonly ChunkRef[], sink: ChunkSink, options: ReadOptions = {}): Promise<void> {
    const missing: ChunkRef[] = [];
    for (const ref of refs) {
      const data = await this.ctx.cache.get(chunkKey(this.descriptor.digest, ref), this.descriptor.digest);
      if (data) {
        await sink(ref, data);
      } else missing.push(ref);
    }
    if (missing.length === 0) return;
    // Evicted since the layer was streamed: stream it again (once, however many readers).
    if (!this.source || this.ctx.offline) {
      throw new StargzError(ErrorCodes.OFFLINE_MISS, `parts of layer ${this.descriptor.digest} are no longer in the cache`);
    }
    const source = this.source;
    await this.refetch.run('layer', async () => {
      await streamLayer(this.descriptor, source, this.ctx, { estargz: this.format !== 'tar+gzip' }, options.signal);
    });
    for (const ref of missing) {
      const data = await this.ctx.cache.get(chunkKey(this.descriptor.digest, ref), this.descriptor.digest);
      if (!data) throw new StargzError(ErrorCodes.CACHE, `the cache cannot hold layer ${this.descriptor.digest}; raise --cache-size`);
      await sink(ref, data);
    }
  }
}

interface StreamShape {
  /** Skip eStargz bookkeeping entries. */
  estargz: boolean;
  /** Check the blob against this TOC (its chunk boundaries are hashed as files go by). */
  toc?: LoadedToc;
}

/** Streams, verifies and indexes a whole layer blob, filling the chunk cache. */
async function streamLayer(descriptor: Descriptor, source: BlobSource, ctx: LayerContext, shape: StreamShape, signal?: AbortSignal): Promise<LayerIndex> {
  // One try per host: a blob whose digest does not match (or that does not inflate or parse)
  // from a mirror is streamed again, from scratch, from the next host. Safe because a try
  // leaves nothing under a final name: its file pieces go to the cache under their own
  // content digests, and the index is kept (by open) only once a whole blob matched.
  const { index, seen } = await source.verified(async (from) => {
    const builder = new LayerIndexBuilder();
    const seen: StreamedTocEvidence = { json: undefined, chunkDigests: new Map() };
    // Verified as it streams: the end of the blob fails the pipeline unless it is the layer's.
    const hashing = verifyingStream(descriptor, `layer blob ${descriptor.digest}`);
    const extract = tarSink((entry) => {
      const path = shape.estargz ? normalizeEntryName(entry.name) : '';
      if (!shape.estargz || !BOOKKEEPING.has(path)) return addEntry(builder, entry, ctx, shape.toc, seen);
      return path === TOC_TAR_NAME ? readAll(DEFAULT_MAX_TOC_BYTES, (json) => void (seen.json = json)) : undefined;
    });
    const input = await ctx.limiter.run(() => from.openStream(signal));
    const stages: NodeJS.ReadWriteStream[] = [hashing];
    if (!descriptor.mediaType.endsWith('.tar') && !descriptor.mediaType.endsWith('.tar+uncompressed')) stages.push(createGunzip());
    try {
      await pipeline([input, ...stages, extract], { signal });
    } catch (err) {
      const e = toStargzError(err, ErrorCodes.CORRUPT_DATA);
      throw e.code === ErrorCodes.IO ? new StargzError(ErrorCodes.CORRUPT_DATA, `layer ${descriptor.digest}: ${e.message}`, { cause: err }) : e;
    }
    return { index: builder.finish(), seen };
  }, signal);
  if (shape.toc) checkTocAgainstTar(descriptor.digest, shape.toc, index, seen);
  return index;
}

function readAll(max: number, done: (data: Buffer) => void): EntryBody {
  const parts: Buffer[] = [];
  let n = 0;
  return {
    data: (_offset, part) => {
      n += part.length;
      if (n > max) throw new StargzError(ErrorCodes.TOC_INVALID, `TOC JSON is more than the ${max} bytes allowed`);
      parts.push(part);
    },
    end: () => done(Buffer.concat(parts, n)),
  };
}

/** Hashes a file's bytes cut where the TOC's chunks end, each with its chunk digest's algorithm. */
class BoundaryHashes {
  readonly digests: string[] = [];
  private i = 0;
  private at = 0;
  private hash;

  constructor(private readonly chunks: readonly ChunkRef[]) {
    this.hash = this.start();
  }

  private algorithm(): string {
    const d = this.chunks[this.i]?.digest;
    return d ? d.slice(0, d.indexOf(':')) : 'sha256';
  }

  private start(): ReturnType<typeof createHash> {
    return createHash(this.algorithm());
  }

  update(buf: Buffer): void {
    while (buf.length > 0 && this.i < this.chunks.length) {
      const c = this.chunks[this.i]!;
      const take = Math.min(buf.length, c.fileOffset + c.size - this.at);
      this.hash.update(buf.subarray(0, take));
      this.at += take;
      buf = buf.subarray(take);
      if (this.at === c.fileOffset + c.size) {
        this.digests.push(`${this.algorithm()}:${this.hash.digest('hex')}`);
        this.i++;
        this.hash = this.start();
      }
    }
  }
}

/** The index entry of one tar entry; regular files' data goes to the cache as it arrives. */
function addEntry(
  builder: LayerIndexBuilder,
  t: TarEntry,
  ctx: LayerContext,
  toc: LoadedToc | undefined,
  seen: StreamedTocEvidence,
): EntryBody | undefined {
  const type = TAR_TYPES[t.type];
  if (!type) return undefined; // unknown entry types are skipped, as umoci does
  const entry: IndexEntry = {
    path: t.name,
    type,
    mode: t.mode & 0o7777,
    uid: t.uid,
    gid: t.gid,
    userName: t.uname,
    groupName: t.gname,
    mtimeMs: t.mtimeMs,
    size: type === 'reg' ? t.size : 0,
    linkName: t.linkName,
    devMajor: t.devMajor,
    devMinor: t.devMinor,
    xattrs: t.xattrs,
    chunks: [],
  };
  if (type !== 'reg') {
    builder.add(entry);
    return undefined;
  }
  const tocChunks = toc?.index.entries.get(normalizeEntryName(t.name))?.chunks;
  const cuts = tocChunks ? new BoundaryHashes(tocChunks) : undefined;
  if (cuts) seen.chunkDigests.set(normalizeEntryName(t.name), cuts.digests);
  // A sparse file's holes are not data: its chunks cover the data regions only, and it has
  // no whole-file digest (hashing its holes would be unbounded work for a hostile size).
  if (t.sparse) entry.sparse = true;
  const pieces = new PieceWriter((digest, data) => ctx.cache.put(digest, data));
  const whole = t.sparse ? undefined : createHash('sha256');
  return {
    data: (offset, data) => {
      whole?.update(data);
      cuts?.update(data);
      return pieces.write(offset, data);
    },
    end: async () => {
      await pieces.flush();
      entry.chunks = pieces.chunks;
      if (whole) entry.digest = 'sha256:' + whole.digest('hex');
      builder.add(entry);
    },
  };
}
