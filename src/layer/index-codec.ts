// A plain layer's file index from its tar headers (the one builder, file-index/builder.ts),
// and the compact cache encoding of any layer's index.
import { MAX_NAME_BYTES, normalizeEntryName } from '../file-index/names.js';
import { Entry, hasExtent, IndexBuilder, LazyChunk, NO_CHUNKS, NO_XATTRS, packDigest, Piece, type ChunkRef, type IndexEntry, type LayerIndex, type NodeType } from '../file-index/index.js';
import { MAX_TOC_ENTRIES, MAX_XATTR_NAME_BYTES, MAX_XATTR_VALUE_BYTES, MAX_XATTRS_PER_ENTRY } from '../estargz/toc.js';
import { dataRegionEnd, MAX_FOOTER_SIZE, type Compression, type Footer } from '../estargz/footer.js';
import { MAX_CHUNK_SIZE, MAX_CHUNKS_PER_FILE, MAX_INDEX_ENTRIES, maxDecodedBytes } from '../estargz/layer-index.js';
import { checkInt, corrupt, LITTLE_ENDIAN, openRecord, Reader, sealRecord, Writer } from '../util/binary-record.js';

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
// The body is columns, so that reading it is a few bulk copies and string decodes plus one
// loop that makes the entries (a CLI runs it once, cold: per-field reads cost more there):
//   meta   u8 kind (0 plain, 1 lazy), str format, u8 compression, u8 flags (1 noPrefetch,
//          2 prefetchEnd), f64 tocOffset, [f64 prefetchEnd], lazy: footer (u8 legacy, f64
//          footerSize, tocOffset, tocLength, uncompressedTocLength or -1)
//   counts u32 entries, chunks, digests, u8 digest length (32, 48 or 64; 0: none), u32 names
//   names  str each: the user and group names entries refer to
//   text   str: every path, each ended by NUL; str: symlink and hardlink targets, the same
//   table  u32 × 6 per entry: type | flags << 3 | mode << 9, user + 1, group + 1, chunks,
//          digest + 1, xattrs; f64 × 4 per entry: uid, gid, mtimeMs, size
//   more   f64 × 2 per device entry (major, minor); f64 × (lazy 5: fileOffset, size, offset,
//          end, innerOffset | plain 2) per chunk, u32 per chunk: digest + 1; digests, raw bytes
//          each; xattrs in entry order (str name, bytes value)
// str: u32 byte length + UTF-8; bytes and arrays: u32 byte length + bytes (little-endian).
// Implicit directories are not stored (the builder makes them again); nor a hardlink's size,
// digest or chunks (its target's, given again by the builder).
//
// Versions: 2: the tar reader of issue 8 (binary xattrs, sparse files, names tar-stream mangled).
// 3: the one index builder (an entry below a non-directory is refused, a hardlink carries its
//    target's size and digest, pieces have no compressed extent). 4: this binary form, for
//    eStargz indexes too. Records of any other version are rebuilt.
export const INDEX_CODEC_VERSION = 4;
const MAGIC = 0x58494753; // 'SGIX' read as a little-endian u32
const TYPES: readonly NodeType[] = ['dir', 'reg', 'symlink', 'hardlink', 'char', 'block', 'fifo'];
const TYPE_CODE = new Map(TYPES.map((t, i) => [t, i]));
const ENTRY_DEVICE = 1;
const ENTRY_SPARSE = 2;
const ENTRY_FLAGS = 3;
const ENTRY_U32 = 6;
const ENTRY_F64 = 4;
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
 * CORRUPT_DATA for an index it cannot represent (digests of mixed lengths, a big-endian host).
 */
export function encodeLayerIndex(index: LayerIndex, format: string, footer?: Footer): Buffer {
  if (!LITTLE_ENDIAN) throw corrupt('layer indexes are cached on little-endian hosts only');
  const lazy = footer !== undefined;
  const stored = [...index.entries.values()].filter((e) => !e.implicit);
  const names = new Map<string, number>();
  const nameOf = (n: string | undefined): number => {
    if (n === undefined) return 0;
    let k = names.get(n);
    if (k === undefined) names.set(n, (k = names.size));
    return k + 1;
  };
  const digests = new Map<string, number>();
  let digestLength = 0;
  const digestOf = (packed: string | undefined): number => {
    if (packed === undefined) return 0;
    if (digestLength === 0) digestLength = packed.length;
    if (packed.length !== digestLength || !DIGEST_LENGTHS.has(packed.length)) throw corrupt('only digests of one kind (sha256, sha384 or sha512) are cached');
    let k = digests.get(packed);
    if (k === undefined) digests.set(packed, (k = digests.size));
    return k + 1;
  };
  const table = new Uint32Array(stored.length * ENTRY_U32);
  const nums = new Float64Array(stored.length * ENTRY_F64);
  const paths: string[] = [];
  const links: string[] = [];
  const devices: number[] = [];
  const chunkNums: number[] = [];
  const chunkDigests: number[] = [];
  const xattrs = new Writer();
  stored.forEach((e, i) => {
    const reg = e.type === 'reg';
    const device = e.devMajor !== 0 || e.devMinor !== 0;
    const names = e.xattrs === NO_XATTRS ? [] : Object.keys(e.xattrs);
    const chunks = reg ? e.chunks : [];
    const t = i * ENTRY_U32;
    table[t] = TYPE_CODE.get(e.type)! | ((device ? ENTRY_DEVICE : 0) | (e.sparse && reg ? ENTRY_SPARSE : 0)) << 3 | (e.mode << 9);
    table[t + 1] = nameOf(e.userName);
    table[t + 2] = nameOf(e.groupName);
    table[t + 3] = chunks.length;
    table[t + 4] = reg ? digestOf((e as Partial<Entry>).packedDigest ?? packDigest(e.digest)) : 0;
    table[t + 5] = names.length;
    const f = i * ENTRY_F64;
    nums[f] = e.uid;
    nums[f + 1] = e.gid;
    nums[f + 2] = e.mtimeMs;
    nums[f + 3] = reg ? e.size : 0;
    paths.push(e.path);
    if (e.type === 'symlink' || e.type === 'hardlink') links.push(e.linkName);
    if (device) devices.push(e.devMajor, e.devMinor);
    for (const c of chunks) {
      chunkNums.push(c.fileOffset, c.size);
      if (lazy) {
        if (!hasExtent(c)) throw corrupt(`${JSON.stringify(e.path)}: a chunk of a lazy index has no compressed extent`);
        chunkNums.push(c.offset, c.end, c.innerOffset);
      }
      chunkDigests.push(digestOf((c as Partial<Piece>).packedDigest ?? packDigest(c.digest)));
    }
    for (const name of names) {
      xattrs.str(name);
      xattrs.bytes(e.xattrs[name]!);
    }
  });

  const w = new Writer();
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
  w.u32(stored.length);
  w.u32(chunkDigests.length);
  w.u32(digests.size);
  w.u8(digestLength);
  w.u32(names.size);
  for (const n of names.keys()) w.str(n);
  w.str(paths.join('\0') + (paths.length > 0 ? '\0' : ''));
  w.str(links.join('\0') + (links.length > 0 ? '\0' : ''));
  w.array(table);
  w.array(nums);
  w.array(Float64Array.from(devices));
  w.array(Float64Array.from(chunkNums));
  w.array(Uint32Array.from(chunkDigests));
  w.bytes(Buffer.from([...digests.keys()].join(''), 'latin1'));
  w.bytes(xattrs.finish());
  return sealRecord(MAGIC, INDEX_CODEC_VERSION, w.finish());
}

/**
 * A cached index whose record is intact (magic, version, length, CRC-32) and whose header is
 * read: what the blob was and, for a lazy layer, its footer. Its entries are decoded only when
 * `decode` is first called (a warm open that finds the merged tree needs none of them: issue 13).
 */
export interface StoredIndex {
  format: string;
  footer?: Footer;
  /** The index, or undefined when its entries are out of bounds (or on a second call): the bytes are let go. */
  decode(): LayerIndex | undefined;
}

/** The record's header, or undefined when the cached bytes are of another version, damaged or out of bounds. */
export function openLayerIndex(data: Buffer): StoredIndex | undefined {
  const body = openRecord(data, MAGIC, INDEX_CODEC_VERSION);
  if (!body) return undefined;
  let r: Reader | undefined = new Reader(body);
  let header: IndexHeader;
  try {
    header = decodeHeader(r);
  } catch {
    return undefined;
  }
  return {
    format: header.format,
    ...(header.footer ? { footer: header.footer } : {}),
    decode() {
      const entries = r;
      r = undefined;
      if (!entries) return undefined;
      try {
        return decodeEntries(entries, header);
      } catch {
        // Out of bounds, or refused by the builder: not an index we would have written.
        return undefined;
      }
    },
  };
}

/** The decoded index, or undefined when the cached bytes are of another version, damaged or out of bounds. */
export function decodeLayerIndex(data: Buffer): CachedIndex | undefined {
  const stored = openLayerIndex(data);
  const index = stored?.decode();
  return index && { index, format: stored!.format, ...(stored!.footer ? { footer: stored!.footer } : {}) };
}

interface IndexHeader {
  lazy: boolean;
  format: string;
  compression: Compression;
  flags: number;
  tocOffset: number;
  prefetchEnd: number | undefined;
  footer: Footer | undefined;
}

function decodeHeader(r: Reader): IndexHeader {
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
  return { lazy, format, compression, flags, tocOffset, prefetchEnd, footer };
}

function decodeEntries(r: Reader, { lazy, compression, flags, tocOffset, prefetchEnd, footer }: IndexHeader): LayerIndex {
  const maxEntries = lazy ? MAX_INDEX_ENTRIES : MAX_TAR_INDEX_ENTRIES;
  const count = r.u32();
  const nChunks = r.u32();
  const nDigests = r.u32();
  const digestLength = r.u8();
  const nNames = r.u32();
  if (count > maxEntries || (nDigests > 0 && !DIGEST_LENGTHS.has(digestLength)) || nNames > count * 2) throw corrupt('counts out of range');
  const names = new Array<string>(nNames);
  for (let k = 0; k < nNames; k++) names[k] = r.str(MAX_NAME_BYTES);
  const paths = r.str(count * (MAX_NAME_BYTES + 1));
  const links = r.str(count * (MAX_NAME_BYTES + 1));
  checkPaths(paths);
  const table = r.u32s(count * ENTRY_U32);
  const nums = r.f64s(count * ENTRY_F64);
  const devices = r.f64s(undefined);
  const chunkWidth = lazy ? 5 : 2;
  const chunkNums = r.f64s(nChunks * chunkWidth);
  const chunkDigests = r.u32s(nChunks);
  const digestText = r.latin1(nDigests * digestLength);
  const xattrs = new Reader(r.bytes(Number.MAX_SAFE_INTEGER));
  if (!r.atEnd()) throw corrupt('bytes after the last column');
  for (let k = 0; k < nums.length; k++) {
    const v = nums[k]!;
    // mtimeMs (every fourth from the third) may be before 1970; nothing else is negative.
    if (!Number.isSafeInteger(v) || (v < 0 && k % ENTRY_F64 !== 2)) throw corrupt('a number out of range');
  }
  for (const v of devices) checkInt(v);
  for (const v of chunkNums) checkInt(v);
  // One string per digest, shared by every entry and chunk that has it.
  const digestStrings = new Array<string | undefined>(nDigests);
  const digestAt = (k: number): string | undefined => {
    if (k === 0) return undefined;
    if (k > nDigests) throw corrupt('a digest out of range');
    return (digestStrings[k - 1] ??= digestText.slice((k - 1) * digestLength, k * digestLength));
  };

  // What a chunk's extent must lie in, and what the chunks may claim in all (layer-index.ts).
  const dataEnd = footer ? dataRegionEnd(footer) : 0;
  const maxClaimed = maxDecodedBytes(dataEnd, compression);
  let claimed = 0;
  const builder = new IndexBuilder<ChunkRef>({ invalid: corrupt, maxEntries, missingLinkTarget: lazy ? 'refuse' : 'keep' });
  let pathAt = 0;
  let linkAt = 0;
  let deviceAt = 0;
  let chunkAt = 0;
  for (let i = 0; i < count; i++) {
    const t = i * ENTRY_U32;
    const bits = table[t]!;
    const type = TYPES[bits & 7];
    const ef = (bits >>> 3) & 0o77;
    const mode = bits >>> 9;
    if (type === undefined || ef > ENTRY_FLAGS || mode > 0o7777) throw corrupt('an entry out of range');
    const pathEnd = paths.indexOf('\0', pathAt);
    if (pathEnd < 0 || pathEnd - pathAt > MAX_NAME_BYTES) throw corrupt('paths out of range');
    const path = paths.slice(pathAt, pathEnd);
    pathAt = pathEnd + 1;
    if (path === '' ? type !== 'dir' : builder.get(path) !== undefined) throw corrupt(`${JSON.stringify(path)} twice, or a root that is not a directory`);
    let linkName = '';
    if (type === 'symlink' || type === 'hardlink') {
      const linkEnd = links.indexOf('\0', linkAt);
      if (linkEnd < 0 || linkEnd - linkAt > MAX_NAME_BYTES) throw corrupt('link targets out of range');
      linkName = links.slice(linkAt, linkEnd);
      linkAt = linkEnd + 1;
      if (type === 'hardlink') checkPaths(linkName + '\0');
    }
    const f = i * ENTRY_F64;
    const reg = type === 'reg';
    const user = table[t + 1]!;
    const group = table[t + 2]!;
    if (user > nNames || group > nNames) throw corrupt('a name out of range');
    // The names go to the constructor: entries come in runs of one owner, and the owner lookup
    // (model.ts ownerOf) answers a run from the owner it gave last, without building a key.
    const e = new Entry<ChunkRef>(path, type, mode, nums[f]!, nums[f + 1]!, nums[f + 2]!, reg ? nums[f + 3]! : 0, linkName, NO_CHUNKS, user > 0 ? names[user - 1] : undefined, group > 0 ? names[group - 1] : undefined);
    if (ef & ENTRY_DEVICE) {
      if ((type !== 'char' && type !== 'block') || deviceAt + 2 > devices.length) throw corrupt('device numbers out of place');
      e.devMajor = devices[deviceAt++]!;
      e.devMinor = devices[deviceAt++]!;
    }
    const nx = table[t + 5]!;
    if (nx > 0) e.xattrs = readXattrs(xattrs, nx);
    const n = table[t + 3]!;
    const digest = table[t + 4]!;
    if (!reg) {
      if (n !== 0 || digest !== 0 || ef & ENTRY_SPARSE) throw corrupt('data on an entry that is not a regular file');
      builder.add(e);
      continue;
    }
    if (digest > 0) e.packedDigest = digestAt(digest);
    if (ef & ENTRY_SPARSE) {
      if (lazy) throw corrupt('a sparse file in a lazy index');
      e.sparse = true;
    }
    if (n > MAX_CHUNKS_PER_FILE || chunkAt + n > nChunks) throw corrupt('chunks out of range');
    if (n > 0) {
      const chunks: ChunkRef[] = new Array(n);
      for (let j = 0; j < n; j++, chunkAt++) {
        const c = chunkAt * chunkWidth;
        const fileOffset = chunkNums[c]!;
        const size = chunkNums[c + 1]!;
        const chunkDigest = digestAt(chunkDigests[chunkAt]!);
        if (lazy) {
          const offset = chunkNums[c + 2]!;
          const end = chunkNums[c + 3]!;
          const innerOffset = chunkNums[c + 4]!;
          if (offset === 0 || offset >= end || end > dataEnd || size > MAX_CHUNK_SIZE) throw corrupt('chunk extent out of bounds');
          if (innerOffset + size > maxDecodedBytes(end - offset, compression)) throw corrupt('chunk expands too much');
          claimed += size;
          if (claimed > maxClaimed) throw corrupt('chunks claim too many decoded bytes');
          const chunk = new LazyChunk(offset, end, innerOffset, fileOffset, size, undefined);
          chunk.packedDigest = chunkDigest;
          chunks[j] = chunk;
        } else {
          if (chunkDigest === undefined) throw corrupt('a piece without a digest');
          const piece = new Piece(fileOffset, size, 'sha256:');
          piece.packedDigest = chunkDigest;
          chunks[j] = piece;
        }
      }
      e.chunks = chunks;
    }
    checkChunks(e);
    builder.add(e);
  }
  if (pathAt !== paths.length || linkAt !== links.length || deviceAt !== devices.length || chunkAt !== nChunks || !xattrs.atEnd()) {
    throw corrupt('columns of different lengths');
  }
  const meta = { noPrefetch: (flags & 1) !== 0, compression, tocOffset } as const;
  return builder.finish(prefetchEnd === undefined ? meta : { ...meta, prefetchEnd });
}

/** Normalized entry names (names.ts), each ended by NUL: no empty, '.' or '..' parts, no leading or trailing '/'. */
function checkPaths(text: string): void {
  if (text !== '' && (!text.endsWith('\0') || NOT_NORMALIZED.test(text))) throw corrupt('a path that is not normalized');
}
const NOT_NORMALIZED = /(^|\0)\/|\/(\0|\/)|(^|\0|\/)\.\.?(\/|\0)/;

/** `n` xattrs as encodeXattrs wrote them, checked as toc.ts checks a TOC's. */
export function readXattrs(r: Reader, n: number): Record<string, Buffer> {
  if (n > MAX_XATTRS_PER_ENTRY) throw corrupt('xattr count out of range');
  const out: Record<string, Buffer> = {};
  for (let i = 0; i < n; i++) {
    const name = r.str(MAX_XATTR_NAME_BYTES);
    if (name === '' || name.includes('\0') || Object.hasOwn(out, name)) throw corrupt('an invalid xattr name');
    // defineProperty: a name like "__proto__" stays data (as toc.ts parses them)
    Object.defineProperty(out, name, { value: Buffer.from(r.bytes(MAX_XATTR_VALUE_BYTES)), enumerable: true, writable: true, configurable: true });
  }
  return out;
}
