// A layer that is not eStargz (plain tar+gzip, e.g. a base image never converted). It has
// no TOC, so it is streamed whole once: every file's bytes go into the content-addressed
// chunk cache in 1 MiB pieces, and the index built from the tar headers is cached by layer
// digest. From then on it is served from the cache like any other layer.
import { createHash } from 'node:crypto';
import { createGunzip } from 'node:zlib';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ErrorCodes, StargzError, toStargzError } from '../errors.js';
import type { ChunkRef, IndexEntry, LayerIndex, NodeType } from '../estargz/index.js';
import type { Descriptor } from '../registry/manifest.js';
import type { BlobSource } from '../blob/blob-source.js';
import { SingleFlight } from '../util/single-flight.js';
import { chunkKey, type ChunkSink, type Layer, type LayerContext, type ReadOptions } from './layer.js';
import { LayerIndexBuilder, decodeLayerIndex, encodeLayerIndex } from './index-codec.js';
import { PieceWriter } from './piece-writer.js';
import { tarSink, type EntryBody } from './tar-sink.js';
import type { TarEntry, TarEntryType } from '../tar/reader.js';

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
  readonly format = 'tar+gzip' as const;
  private readonly refetch = new SingleFlight<string, void>();

  private constructor(
    readonly descriptor: Descriptor,
    readonly index: LayerIndex,
    private readonly source: BlobSource | undefined,
    private readonly ctx: LayerContext,
  ) {}

  /** The cached index, or undefined when the layer has never been fetched. */
  static fromCache(descriptor: Descriptor, source: BlobSource | undefined, ctx: LayerContext): PlainLayer | undefined {
    const cached = ctx.disk?.getLayerIndex(descriptor.digest);
    if (!cached) return undefined;
    const index = decodeLayerIndex(cached);
    return index ? new PlainLayer(descriptor, index, source, ctx) : undefined;
  }

  /** An index-less stand-in, for `info`, which must not download a whole layer. */
  static probed(descriptor: Descriptor, ctx: LayerContext): PlainLayer {
    return new PlainLayer(descriptor, new LayerIndexBuilder().finish(), undefined, ctx);
  }

  static async open(descriptor: Descriptor, source: BlobSource | undefined, ctx: LayerContext): Promise<PlainLayer> {
    const cached = PlainLayer.fromCache(descriptor, source, ctx);
    if (cached) return cached;
    if (!source || ctx.offline) {
      throw new StargzError(ErrorCodes.OFFLINE_MISS, `layer ${descriptor.digest} (not eStargz) is not in the cache`);
    }
    ctx.notice(`layer ${descriptor.digest.slice(0, 19)} is not eStargz: fetching it whole (${descriptor.size} bytes)`);
    const index = await streamLayer(descriptor, source, ctx);
    return new PlainLayer(descriptor, index, source, ctx);
  }

  async readChunks(refs: readonly ChunkRef[], sink: ChunkSink, options: ReadOptions = {}): Promise<void> {
    const missing: ChunkRef[] = [];
    for (const ref of refs) {
      const data = await this.ctx.cache.get(chunkKey(this.descriptor.digest, ref));
      if (data) {
        this.ctx.stats.chunkCacheHits++;
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
      await streamLayer(this.descriptor, source, this.ctx, options.signal);
    });
    for (const ref of missing) {
      const data = await this.ctx.cache.get(chunkKey(this.descriptor.digest, ref));
      if (!data) throw new StargzError(ErrorCodes.CACHE, `the cache cannot hold layer ${this.descriptor.digest}; raise --cache-size`);
      await sink(ref, data);
    }
  }
}

/** Streams, verifies and indexes a whole plain layer, filling the chunk cache. */
async function streamLayer(descriptor: Descriptor, source: BlobSource, ctx: LayerContext, signal?: AbortSignal): Promise<LayerIndex> {
  const builder = new LayerIndexBuilder();
  const blobHash = createHash('sha256');
  const hashing = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      blobHash.update(chunk);
      cb(null, chunk);
    },
  });
  const extract = tarSink((entry) => addEntry(builder, entry, ctx));
  const input = await ctx.limiter.run(() => source.openStream(signal));
  const stages: NodeJS.ReadWriteStream[] = [hashing];
  if (!descriptor.mediaType.endsWith('.tar') && !descriptor.mediaType.endsWith('.tar+uncompressed')) stages.push(createGunzip());
  try {
    await pipeline([input, ...stages, extract], { signal });
  } catch (err) {
    const e = toStargzError(err, ErrorCodes.CORRUPT_DATA);
    throw e.code === ErrorCodes.IO ? new StargzError(ErrorCodes.CORRUPT_DATA, `layer ${descriptor.digest}: ${e.message}`, { cause: err }) : e;
  }
  const actual = 'sha256:' + blobHash.digest('hex');
  if (actual !== descriptor.digest) {
    throw new StargzError(ErrorCodes.DIGEST_MISMATCH, `layer blob has digest ${actual}, the manifest says ${descriptor.digest}`);
  }
  ctx.stats.bytesRequested += descriptor.size;
  const index = builder.finish();
  ctx.disk?.putLayerIndex(descriptor.digest, encodeLayerIndex(index));
  return index;
}

/** The index entry of one tar entry; regular files' data goes to the cache as it arrives. */
function addEntry(builder: LayerIndexBuilder, t: TarEntry, ctx: LayerContext): EntryBody | undefined {
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
  // A sparse file's holes are not data: its chunks cover the data regions only, and it has
  // no whole-file digest (hashing its holes would be unbounded work for a hostile size).
  if (t.sparse) entry.sparse = true;
  const pieces = new PieceWriter((digest, data) => ctx.cache.put(digest, data));
  const whole = t.sparse ? undefined : createHash('sha256');
  return {
    data: (offset, data) => {
      whole?.update(data);
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
