// A layer read by rule (b) of the digest chain (trust.ts): plain tar+gzip, or an eStargz
// blob nothing lets us read lazily (no TOC annotation, or chunks no digest covers). It is
// streamed whole once and verified against the layer digest: every file's bytes go into the
// content-addressed chunk cache in 1 MiB pieces, and the index built from the tar headers is
// cached by layer digest once the blob matched it. From then on it is served from the cache.
// An eStargz blob is a valid tar.gz too: its bookkeeping entries are skipped, and its TOC
// must agree with the tar it came in.
import { createHash } from 'node:crypto';
import { createGunzip } from 'node:zlib';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar-stream';
import { ErrorCodes, StargzError, toStargzError } from '../errors.js';
import {
  DEFAULT_MAX_TOC_BYTES,
  NO_PREFETCH_LANDMARK,
  normalizeEntryName,
  PREFETCH_LANDMARK,
  TOC_TAR_NAME,
  type ChunkRef,
  type IndexEntry,
  type LayerIndex,
  type NodeType,
} from '../estargz/index.js';
import type { Descriptor } from '../registry/manifest.js';
import type { BlobSource } from '../blob/blob-source.js';
import { SingleFlight } from '../util/single-flight.js';
import { chunkKey, type ChunkSink, type Layer, type LayerContext, type ReadOptions } from './layer.js';
import { LayerIndexBuilder, decodeLayerIndex, encodeLayerIndex } from './index-codec.js';
import type { LoadedToc } from './estargz-layer.js';
import { checkTocAgainstTar, type StreamedTocEvidence } from './trust.js';

/** Entries of an eStargz blob that are its own bookkeeping, not files of the image. */
const BOOKKEEPING = new Set([TOC_TAR_NAME, PREFETCH_LANDMARK, NO_PREFETCH_LANDMARK]);

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
    return decoded ? new PlainLayer(descriptor, decoded.index, decoded.format as Layer['format'], source, ctx) : undefined;
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
      await streamLayer(this.descriptor, source, this.ctx, { estargz: this.format !== 'tar+gzip' }, options.signal);
    });
    for (const ref of missing) {
      const data = await this.ctx.cache.get(chunkKey(this.descriptor.digest, ref));
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
  const builder = new LayerIndexBuilder();
  const seen: StreamedTocEvidence = { json: undefined, chunkDigests: new Map() };
  const blobHash = createHash('sha256');
  const hashing = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      blobHash.update(chunk);
      cb(null, chunk);
    },
  });
  const extract = tar.extract();
  extract.on('entry', (header, stream, next) => {
    const body = stream as unknown as Readable;
    const path = shape.estargz ? normalizeEntryName(header.name) : '';
    const work = !shape.estargz || !BOOKKEEPING.has(path)
      ? addEntry(builder, header, body, ctx, shape.toc, seen)
      : path === TOC_TAR_NAME
        ? readAll(body, DEFAULT_MAX_TOC_BYTES).then((json) => void (seen.json = json))
        : drain(body);
    work.then(() => next(), next);
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
  if (shape.toc) checkTocAgainstTar(descriptor.digest, shape.toc, index, seen);
  return index;
}

async function drain(stream: Readable): Promise<void> {
  stream.resume();
  await new Promise<void>((resolve, reject) => stream.on('end', resolve).on('error', reject));
}

async function readAll(stream: Readable, max: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const part of stream) {
    n += (part as Buffer).length;
    if (n > max) throw new StargzError(ErrorCodes.TOC_INVALID, `TOC JSON is more than the ${max} bytes allowed`);
    parts.push(part as Buffer);
  }
  return Buffer.concat(parts, n);
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

async function addEntry(
  builder: LayerIndexBuilder,
  header: tar.Header,
  stream: Readable,
  ctx: LayerContext,
  toc: LoadedToc | undefined,
  seen: StreamedTocEvidence,
): Promise<void> {
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
    const tocChunks = toc?.index.entries.get(normalizeEntryName(header.name))?.chunks;
    const cuts = tocChunks ? new BoundaryHashes(tocChunks) : undefined;
    if (cuts) seen.chunkDigests.set(normalizeEntryName(header.name), cuts.digests);
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
      cuts?.update(buf);
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
    await drain(stream);
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
