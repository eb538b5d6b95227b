// A layer that is not eStargz (plain tar+gzip, e.g. a base image never converted). It has
// no TOC, so it is streamed whole once: every file's bytes go into the content-addressed
// chunk cache in 1 MiB pieces, and the index built from the tar headers is cached by layer
// digest. From then on it is served from the cache like any other layer.
import { createHash } from 'node:crypto';
import { createGunzip } from 'node:zlib';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar-stream';
import { ErrorCodes, StargzError, toStargzError } from '../errors.js';
import type { ChunkRef, IndexEntry, LayerIndex, NodeType } from '../estargz/index.js';
import type { Descriptor } from '../registry/manifest.js';
import type { BlobSource } from '../blob/blob-source.js';
import { SingleFlight } from '../util/single-flight.js';
import { chunkKey, type ChunkSink, type Layer, type LayerContext, type ReadOptions } from './layer.js';
import { LayerIndexBuilder, decodeLayerIndex, encodeLayerIndex } from './index-codec.js';

/** Size of the pieces a plain layer's files are cached in. */
export const PLAIN_PIECE_SIZE = 1024 * 1024;

const TAR_TYPES: Record<string, NodeType | undefined> = {
  file: 'reg',
  'contiguous-file': 'reg',
  link: 'hardlink',
  symlink: 'symlink',
  directory: 'dir',
  'character-device': 'char',
  'block-device': 'block',
  fifo: 'fifo',
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
  const extract = tar.extract();
  extract.on('entry', (header, stream, next) => {
    addEntry(builder, header, stream as unknown as Readable, ctx).then(() => next(), next);
  });
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

async function addEntry(builder: LayerIndexBuilder, header: tar.Header, stream: Readable, ctx: LayerContext): Promise<void> {
  const type = TAR_TYPES[header.type];
  const pax = (header.pax ?? {}) as Record<string, string>;
  const xattrs: Record<string, Buffer> = {};
  for (const [k, v] of Object.entries(pax)) {
    // An empty PAX record deletes the keyword: no xattr.
    if (k.startsWith('SCHILY.xattr.') && v !== '') xattrs[k.slice('SCHILY.xattr.'.length)] = Buffer.from(v, 'utf8');
  }
  const chunks: ChunkRef[] = [];
  const whole = createHash('sha256');
  let size = 0;
  if (type === 'reg') {
    let piece: Buffer[] = [];
    let pieceLen = 0;
    const flush = async (): Promise<void> => {
      if (pieceLen === 0) return;
      const data = piece.length === 1 ? piece[0]! : Buffer.concat(piece, pieceLen);
      const digest = 'sha256:' + createHash('sha256').update(data).digest('hex');
      chunks.push({ offset: 0, end: 0, innerOffset: 0, fileOffset: size - pieceLen, size: pieceLen, digest });
      await ctx.cache.put(digest, data);
      piece = [];
      pieceLen = 0;
    };
    for await (const part of stream) {
      let buf = part as Buffer;
      whole.update(buf);
      while (buf.length > 0) {
        const take = Math.min(buf.length, PLAIN_PIECE_SIZE - pieceLen);
        piece.push(buf.subarray(0, take));
        pieceLen += take;
        size += take;
        buf = buf.subarray(take);
        if (pieceLen === PLAIN_PIECE_SIZE) await flush();
      }
    }
    await flush();
  } else {
    stream.resume();
    await new Promise<void>((resolve, reject) => stream.on('end', resolve).on('error', reject));
  }
  if (!type) return; // unknown entry types are skipped, as umoci does
  const mtime = pax.mtime !== undefined ? Math.floor(parseFloat(pax.mtime) * 1000) : header.mtime.getTime();
  const entry: IndexEntry = {
    path: header.name,
    type,
    mode: header.mode & 0o7777,
    uid: pax.uid !== undefined ? Number(pax.uid) : header.uid,
    gid: pax.gid !== undefined ? Number(pax.gid) : header.gid,
    userName: pax.uname ?? header.uname,
    groupName: pax.gname ?? header.gname,
    mtimeMs: Number.isFinite(mtime) ? mtime : 0,
    size,
    linkName: header.linkname ?? '',
    devMajor: header.devmajor ?? 0,
    devMinor: header.devminor ?? 0,
    xattrs,
    ...(type === 'reg' ? { digest: 'sha256:' + whole.digest('hex') } : {}),
    chunks,
  };
  builder.add(entry);
}
