// A plain layer's file index from its tar headers (the one builder, file-index/builder.ts),
// and the compact cache encoding of any layer's index.
import { crc32 } from 'node:zlib';
import { ErrorCodes, StargzError } from '../errors.js';
import { MAX_NAME_BYTES, normalizeEntryName } from '../file-index/names.js';
import { Entry, hasExtent, IndexBuilder, LazyChunk, NO_CHUNKS, NO_XATTRS, packDigest, Piece, type ChunkRef, type IndexEntry, type LayerIndex, type NodeType } from '../file-index/index.js';
import { MAX_TOC_ENTRIES, MAX_XATTR_NAME_BYTES, MAX_XATTR_VALUE_BYTES, MAX_XATTRS_PER_ENTRY } from '../estargz/toc.js';
import { dataRegionEnd, MAX_FOOTER_SIZE, type Footer } from '../estargz/footer.js';
import { MAX_CHUNK_SIZE, MAX_CHUNKS_PER_FILE, MAX_INDEX_ENTRIES, maxDecodedBytes } from '../estargz/layer-index.js';

function corrupt(message: string): StargzError {
  return new StargzError(ErrorCodes.CORRUPT_DATA, message);
}

/** As many paths as a TOC may declare (implicit parents included). */
export const MAX_TAR_INDEX_ENTRIES = 2 * MAX_TOC_ENTRIES;

export class LayerIndexBuilder {
  private readonly index = new IndexBuilder({ invalid: corrupt, maxEntries: MAX_TAR_INDEX_ENTRIES, missingLinkTarget: 'keep' });
  /** One string per user or group name, not one per header. */
  private readonly names = new Map<string, string>();

  private intern(name: string | undefined): string | undefined {
    if (!name) return undefined;
    const known = this.names.get(name);
    if (known !== undefined) return known;
    if (this.names.size < 4096) this.names.set(name, name);
    return name;
  }

  /** One tar entry, in stream order: `raw.path` as the header names it (normalized here). */
  add(raw: IndexEntry): void {
    checkChunks(raw);
    const path = normalizeEntryName(raw.path);
    const linkName = raw.type === 'hardlink' ? normalizeEntryName(raw.linkName, 'hardlink target') : raw.linkName;
    const chunks = raw.chunks.length === 0 ? NO_CHUNKS : raw.chunks.length === 1 ? [raw.chunks[0]!] : raw.chunks.slice();
    const e = new Entry(path, raw.type, raw.mode, raw.uid, raw.gid, raw.mtimeMs, raw.size, linkName, chunks);
    e.userName = this.intern(raw.userName);
    e.groupName = this.intern(raw.groupName);
    e.digest = raw.digest;
    // A one-piece file: its digest is the piece's; one string serves both.
    const only = chunks.length === 1 ? chunks[0] : undefined;
    if (only instanceof Piece && e.packedDigest !== undefined && only.packedDigest === e.packedDigest) only.packedDigest = e.packedDigest;
    if (raw.devMajor) e.devMajor = raw.devMajor;
    if (raw.devMinor) e.devMinor = raw.devMinor;
    if (Object.keys(raw.xattrs).length > 0) e.xattrs = raw.xattrs;
    if (raw.sparse) e.sparse = true;
    if (raw.implicit) e.implicit = true;
    this.index.add(e);
  }

  finish(): LayerIndex {
    return this.index.finish({ noPrefetch: true, compression: 'gzip', tocOffset: 0 });
  }
}

/**
 * Readers copy chunks into place and assume the rest is zeros only for a sparse file: the
 * chunks of any other file must tile [0, size), a sparse file's must stay within it in order.
 */
function checkChunks(e: IndexEntry): void {
  let at = 0;
  for (const c of e.chunks) {
    if (e.sparse ? c.fileOffset < at : c.fileOffset !== at) {
      throw corrupt(`${JSON.stringify(e.path)}: chunks leave a gap or overlap at file offset ${at}`);
    }
    at = c.fileOffset + c.size;
  }
  if (e.sparse ? at > e.size : at !== e.size && e.type === 'reg') {
    throw corrupt(`${JSON.stringify(e.path)}: chunks cover ${at} bytes of ${e.size}`);
  }
}

// ---- The cached encoding: one compact buffer per layer index, read back in one pass ----
//
// A plain layer's index is stored by layer digest once its blob matched it; an eStargz layer's
// by the TOC digest that verified it, with its footer, so a later open reads neither the TOC
// nor its JSON (issue 13). The cached bytes are untrusted input all the same: versioned,
// checksummed (CRC-32 of the body: a torn or damaged record), and every field bound-checked
// as the TOC's was, so that a record that passes decodes to an index the builder accepts.
// Anything else reads as "not cached": the caller rebuilds from the verified TOC or blob.
//
// Layout (little-endian): 'SGIX', u32 version, u32 body length, u32 CRC-32 of the body; body:
//   u8 kind (0 plain, 1 lazy), str format, u8 compression, u8 flags (1 noPrefetch, 2 prefetchEnd),
//   f64 tocOffset, [f64 prefetchEnd], lazy: footer (u8 legacy, f64 footerSize, tocOffset,
//   tocLength, uncompressedTocLength or -1); u32 entries, each: u8 type, u8 flags (ENTRY_*),
//   u16 mode, f64 uid, gid, mtimeMs, size, str path, [str linkName], [str userName], [str
//   groupName], [f64 devMajor, devMinor], [u16 xattrs: (str name, bytes value)*], [digest],
//   regular files: u32 chunks, each f64 fileOffset, size, digest, lazy: f64 offset, end, innerOffset.
// str: u32 byte length + UTF-8; bytes: u32 length + bytes; digest: u8 length (0, 32, 48, 64) + raw.
// Implicit directories are not stored (the builder makes them again); nor a hardlink's chunks.
//
// Versions: 2: the tar reader of issue 8 (binary xattrs, sparse files, names tar-stream mangled).
// 3: the one index builder (an entry below a non-directory is refused, a hardlink carries its
//    target's size and digest, pieces have no compressed extent). 4: this binary form, for
//    eStargz indexes too. Records of any other version are rebuilt.
export const INDEX_CODEC_VERSION = 4;
const MAGIC = 0x58494753; // 'SGIX' read as a little-endian u32
const HEADER_BYTES = 16;
const TYPES: readonly NodeType[] = ['dir', 'reg', 'symlink', 'hardlink', 'char', 'block', 'fifo'];
const TYPE_CODE = new Map(TYPES.map((t, i) => [t, i]));
const ENTRY_DIGEST = 1;
const ENTRY_USER = 2;
const ENTRY_GROUP = 4;
const ENTRY_XATTRS = 8;
const ENTRY_DEVICE = 16;
const ENTRY_SPARSE = 32;
/** A packed digest (model.ts packDigest) is its raw bytes as a latin1 string: sha256, sha384, sha512. */
const DIGEST_LENGTHS = new Set([32, 48, 64]);

/** What an index was read from: 'tar+gzip' or an eStargz format; an eStargz index keeps its footer. */
export interface CachedIndex {
  index: LayerIndex;
  format: string;
  footer?: Footer;
}

/**
 * `format`: what the blob was (a plain tar+gzip, an eStargz blob read whole, or read lazily).
 * With `footer` the index is a lazy one (every chunk has its compressed extent). Throws
 * CORRUPT_DATA for an index it cannot represent (a digest that is not sha256/384/512).
 */
export function encodeLayerIndex(index: LayerIndex, format: string, footer?: Footer): Buffer {
  const w = new Writer();
  const lazy = footer !== undefined;
  w.u8(lazy ? 1 : 0);
  w.str(format);
  w.u8(index.compression === 'zstd' ? 1 : 0);
  w.u8((index.noPrefetch ? 1 : 0) | (index.prefetchEnd !== undefined ? 2 : 0));
  w.f64(index.tocOffset);
  if (index.prefetchEnd !== undefined) w.f64(index.prefetchEnd);
  if (footer) {
    w.u8(footer.legacy ? 1 : 0);
    w.f64(footer.footerSize);
    w.f64(footer.tocOffset);
    w.f64(footer.tocLength);
    w.f64(footer.uncompressedTocLength ?? -1);
  }
  let stored = 0;
  for (const e of index.entries.values()) if (!e.implicit) stored++;
  w.u32(stored);
  for (const e of index.entries.values()) {
    if (e.implicit) continue;
    // A hardlink's size, digest, chunks and sparseness are its target's: the builder gives them again.
    const packed = e.type === 'reg' ? ((e as Partial<Entry>).packedDigest ?? packDigest(e.digest)) : undefined;
    const hasXattrs = e.xattrs !== NO_XATTRS && Object.keys(e.xattrs).length > 0;
    const hasDevice = e.devMajor !== 0 || e.devMinor !== 0;
    w.u8(TYPE_CODE.get(e.type)!);
    w.u8(
      (packed !== undefined ? ENTRY_DIGEST : 0) |
        (e.userName !== undefined ? ENTRY_USER : 0) |
        (e.groupName !== undefined ? ENTRY_GROUP : 0) |
        (hasXattrs ? ENTRY_XATTRS : 0) |
        (hasDevice ? ENTRY_DEVICE : 0) |
        (e.sparse && e.type === 'reg' ? ENTRY_SPARSE : 0),
    );
    w.u16(e.mode);
    w.f64(e.uid);
    w.f64(e.gid);
    w.f64(e.mtimeMs);
    w.f64(e.type === 'reg' ? e.size : 0);
    w.str(e.path);
    if (e.type === 'symlink' || e.type === 'hardlink') w.str(e.linkName);
    if (e.userName !== undefined) w.str(e.userName);
    if (e.groupName !== undefined) w.str(e.groupName);
    if (hasDevice) {
      w.f64(e.devMajor);
      w.f64(e.devMinor);
    }
    if (hasXattrs) {
      const names = Object.keys(e.xattrs);
      w.u16(names.length);
      for (const name of names) {
        w.str(name);
        w.bytes(e.xattrs[name]!);
      }
    }
    if (packed !== undefined) w.digest(packed);
    if (e.type !== 'reg') continue;
    w.u32(e.chunks.length);
    for (const c of e.chunks) {
      w.f64(c.fileOffset);
      w.f64(c.size);
      w.digest((c as Partial<Piece>).packedDigest ?? packDigest(c.digest) ?? '');
      if (lazy) {
        if (!hasExtent(c)) throw corrupt(`${JSON.stringify(e.path)}: a chunk of a lazy index has no compressed extent`);
        w.f64(c.offset);
        w.f64(c.end);
        w.f64(c.innerOffset);
      }
    }
  }
  const body = w.finish();
  const header = Buffer.alloc(HEADER_BYTES);
  header.writeUInt32LE(MAGIC, 0);
  header.writeUInt32LE(INDEX_CODEC_VERSION, 4);
  header.writeUInt32LE(body.length, 8);
  header.writeUInt32LE(crc32(body), 12);
  return Buffer.concat([header, body]);
}

/** The decoded index, or undefined when the cached bytes are of another version, damaged or out of bounds. */
export function decodeLayerIndex(data: Buffer): CachedIndex | undefined {
  if (data.length < HEADER_BYTES || data.readUInt32LE(0) !== MAGIC || data.readUInt32LE(4) !== INDEX_CODEC_VERSION) return undefined;
  const body = data.subarray(HEADER_BYTES);
  if (data.readUInt32LE(8) !== body.length || data.readUInt32LE(12) !== crc32(body)) return undefined;
  try {
    return decodeBody(new Reader(body));
  } catch {
    // Out of bounds, or refused by the builder: not an index we would have written.
    return undefined;
  }
}

function decodeBody(r: Reader): CachedIndex {
  const kind = r.u8();
  if (kind > 1) throw corrupt('unknown index kind');
  const lazy = kind === 1;
  const format = r.str(64);
  const compression = r.u8() === 1 ? 'zstd' : 'gzip';
  const flags = r.u8();
  if (flags > 3) throw corrupt('unknown index flags');
  const tocOffset = r.int();
  const prefetchEnd = flags & 2 ? r.int() : undefined;
  let footer: Footer | undefined;
  if (lazy) {
    footer = { compression, legacy: r.u8() === 1, footerSize: r.int(), tocOffset: r.int(), tocLength: r.int() };
    const uncompressed = r.f64();
    if (uncompressed !== -1) footer.uncompressedTocLength = checkInt(uncompressed);
    if (footer.tocOffset !== tocOffset || footer.footerSize > MAX_FOOTER_SIZE) throw corrupt('the footer does not match the index');
  }
  // What a chunk's extent must lie in, and what the chunks may claim in all (layer-index.ts).
  const dataEnd = footer ? dataRegionEnd(footer) : 0;
  let claimed = 0;
  const maxClaimed = maxDecodedBytes(dataEnd, compression);
  const builder = new IndexBuilder<ChunkRef>({ invalid: corrupt, maxEntries: lazy ? MAX_INDEX_ENTRIES : MAX_TAR_INDEX_ENTRIES, missingLinkTarget: lazy ? 'refuse' : 'keep' });
  const names = new Map<string, string>();
  const intern = (s: string): string => {
    const known = names.get(s);
    if (known !== undefined) return known;
    if (names.size < 4096) names.set(s, s);
    return s;
  };
  const count = r.u32();
  if (count > (lazy ? MAX_INDEX_ENTRIES : MAX_TAR_INDEX_ENTRIES)) throw corrupt('too many entries');
  for (let i = 0; i < count; i++) {
    const type = TYPES[r.u8()];
    if (type === undefined) throw corrupt('unknown entry type');
    const ef = r.u8();
    if (ef > 63) throw corrupt('unknown entry flags');
    const mode = r.u16();
    if (mode > 0o7777) throw corrupt('mode out of range');
    const uid = r.int();
    const gid = r.int();
    const mtimeMs = r.f64();
    if (!Number.isSafeInteger(mtimeMs)) throw corrupt('mtime out of range');
    const size = r.int();
    const path = checkPath(r.str(MAX_NAME_BYTES));
    if (builder.get(path) !== undefined && path !== '') throw corrupt(`${JSON.stringify(path)} twice`);
    let linkName = '';
    if (type === 'hardlink') linkName = checkPath(r.str(MAX_NAME_BYTES));
    else if (type === 'symlink') {
      linkName = r.str(MAX_NAME_BYTES);
      if (linkName.includes('\0')) throw corrupt('symlink target contains NUL');
    }
    const e = new Entry<ChunkRef>(path, type, mode, uid, gid, mtimeMs, type === 'reg' ? size : 0, linkName, NO_CHUNKS);
    if (ef & ENTRY_USER) e.userName = intern(r.str(MAX_NAME_BYTES));
    if (ef & ENTRY_GROUP) e.groupName = intern(r.str(MAX_NAME_BYTES));
    if (ef & ENTRY_DEVICE) {
      if (type !== 'char' && type !== 'block') throw corrupt('device numbers on a non-device');
      e.devMajor = r.int();
      e.devMinor = r.int();
    }
    if (ef & ENTRY_XATTRS) e.xattrs = readXattrs(r);
    if (ef & ENTRY_DIGEST) {
      if (type !== 'reg') throw corrupt('a digest on an entry that is not a regular file');
      e.packedDigest = r.digest();
    }
    if (ef & ENTRY_SPARSE) {
      if (lazy || type !== 'reg') throw corrupt('a sparse entry that is not a plain regular file');
      e.sparse = true;
    }
    if (type === 'reg') {
      const n = r.u32();
      if (n > MAX_CHUNKS_PER_FILE) throw corrupt('too many chunks');
      const chunks: ChunkRef[] = new Array(n);
      for (let j = 0; j < n; j++) {
        const fileOffset = r.int();
        const chunkSize = r.int();
        const digest = r.digest();
        if (lazy) {
          const offset = r.int();
          const end = r.int();
          const innerOffset = r.int();
          if (offset === 0 || offset >= end || end > dataEnd || chunkSize > MAX_CHUNK_SIZE) throw corrupt('chunk extent out of bounds');
          if (innerOffset + chunkSize > maxDecodedBytes(end - offset, compression)) throw corrupt('chunk expands too much');
          claimed += chunkSize;
          if (claimed > maxClaimed) throw corrupt('chunks claim too many decoded bytes');
          const c = new LazyChunk(offset, end, innerOffset, fileOffset, chunkSize, undefined);
          c.packedDigest = digest;
          chunks[j] = c;
        } else {
          if (digest === undefined) throw corrupt('a piece without a digest');
          const c = new Piece(fileOffset, chunkSize, 'sha256:');
          c.packedDigest = digest;
          chunks[j] = c;
        }
      }
      if (n > 0) e.chunks = chunks;
      checkChunks(e);
      // A one-piece file: its digest is the piece's; one string serves both (as the builders do).
      const only = n === 1 ? (chunks[0] as Piece | LazyChunk) : undefined;
      if (only && e.packedDigest !== undefined && only.packedDigest === e.packedDigest) only.packedDigest = e.packedDigest;
    }
    builder.add(e);
  }
  if (!r.atEnd()) throw corrupt('bytes after the last entry');
  const meta = { noPrefetch: (flags & 1) !== 0, compression, tocOffset } as const;
  return { index: builder.finish(prefetchEnd === undefined ? meta : { ...meta, prefetchEnd }), format, ...(footer ? { footer } : {}) };
}

/** A normalized entry name (names.ts): no empty, '.' or '..' parts, no NUL. */
function checkPath(p: string): string {
  if (p.includes('\0') || (p !== '' && (p.startsWith('/') || p.endsWith('/') || p.includes('//') || DOT_PART.test(p)))) throw corrupt('a path that is not normalized');
  return p;
}
const DOT_PART = /(^|\/)\.\.?(\/|$)/;

function readXattrs(r: Reader): Record<string, Buffer> {
  const n = r.u16();
  if (n === 0 || n > MAX_XATTRS_PER_ENTRY) throw corrupt('xattr count out of range');
  const out: Record<string, Buffer> = {};
  for (let i = 0; i < n; i++) {
    const name = r.str(MAX_XATTR_NAME_BYTES);
    if (name === '' || name.includes('\0') || Object.hasOwn(out, name)) throw corrupt('an invalid xattr name');
    // defineProperty: a name like "__proto__" stays data (as toc.ts parses them)
    Object.defineProperty(out, name, { value: r.bytes(MAX_XATTR_VALUE_BYTES), enumerable: true, writable: true, configurable: true });
  }
  return out;
}

function checkInt(v: number): number {
  if (!Number.isSafeInteger(v) || v < 0) throw corrupt('a number out of range');
  return v;
}

class Reader {
  private at = 0;
  constructor(private readonly buf: Buffer) {}
  private take(n: number): number {
    const at = this.at;
    if (n > this.buf.length - at) throw corrupt('truncated');
    this.at = at + n;
    return at;
  }
  atEnd(): boolean {
    return this.at === this.buf.length;
  }
  u8(): number {
    return this.buf[this.take(1)]!;
  }
  u16(): number {
    return this.buf.readUInt16LE(this.take(2));
  }
  u32(): number {
    return this.buf.readUInt32LE(this.take(4));
  }
  f64(): number {
    return this.buf.readDoubleLE(this.take(8));
  }
  /** A non-negative safe integer. */
  int(): number {
    return checkInt(this.f64());
  }
  str(maxBytes: number): string {
    const n = this.u32();
    if (n > maxBytes) throw corrupt('a string too long');
    const at = this.take(n);
    return this.buf.toString('utf8', at, at + n);
  }
  bytes(maxBytes: number): Buffer {
    const n = this.u32();
    if (n > maxBytes) throw corrupt('a value too long');
    const at = this.take(n);
    return Buffer.from(this.buf.subarray(at, at + n)); // a copy: the record's buffer is not kept
  }
  /** A packed digest, or undefined for none. */
  digest(): string | undefined {
    const n = this.u8();
    if (n === 0) return undefined;
    if (!DIGEST_LENGTHS.has(n)) throw corrupt('a digest of an unknown length');
    const at = this.take(n);
    return this.buf.toString('latin1', at, at + n);
  }
}

class Writer {
  private buf = Buffer.allocUnsafe(1 << 16);
  private at = 0;
  private room(n: number): number {
    if (this.at + n > this.buf.length) {
      const grown = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.at + n));
      this.buf.copy(grown, 0, 0, this.at);
      this.buf = grown;
    }
    const at = this.at;
    this.at += n;
    return at;
  }
  // room() may grow the buffer: take the offset before naming this.buf.
  u8(v: number): void {
    const at = this.room(1);
    this.buf[at] = v;
  }
  u16(v: number): void {
    const at = this.room(2);
    this.buf.writeUInt16LE(v, at);
  }
  u32(v: number): void {
    const at = this.room(4);
    this.buf.writeUInt32LE(v, at);
  }
  f64(v: number): void {
    const at = this.room(8);
    this.buf.writeDoubleLE(v, at);
  }
  str(s: string): void {
    const n = Buffer.byteLength(s);
    this.u32(n);
    const at = this.room(n);
    this.buf.write(s, at, n, 'utf8');
  }
  bytes(b: Buffer): void {
    this.u32(b.length);
    const at = this.room(b.length);
    b.copy(this.buf, at);
  }
  digest(packed: string): void {
    if (packed !== '' && !DIGEST_LENGTHS.has(packed.length)) throw corrupt('a digest that is not sha256, sha384 or sha512 cannot be cached');
    this.u8(packed.length);
    const at = this.room(packed.length);
    this.buf.write(packed, at, packed.length, 'latin1');
  }
  finish(): Buffer {
    return this.buf.subarray(0, this.at);
  }
}
