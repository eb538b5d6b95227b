// A TOC becomes a file index (src/file-index): the TOC's own rules are checked here (chunk
// runs, extents, expansion ratios, landmarks); paths, parents, replacements and hardlinks are
// the builder's, the same for every format.
// A chunk's compressed extent runs from its offset to the next larger offset any entry has
// (or the end of the data region): that is the gzip member / zstd frame holding it.
import { ErrorCodes, StargzError } from '../errors.js';
import { Entry, IndexBuilder, LazyChunk, NO_CHUNKS, NO_XATTRS, type LazyChunkRef, type LazyLayerIndex, type NodeType } from '../file-index/index.js';
import { lowerBound } from '../util/sorted.js';
import { dataRegionEnd, type Compression, type Footer } from './footer.js';
import { normalizeEntryName } from '../file-index/names.js';
import { MAX_TOC_ENTRIES, parseToc, scanTocEntries, type Toc, type TocEntry } from './toc.js';
import { TOC_TAR_NAME } from './toc-tar.js';

export const PREFETCH_LANDMARK = '.prefetch.landmark';
export const NO_PREFETCH_LANDMARK = '.no.prefetch.landmark';
/** Implicit parent directories count too: a TOC of deep unique paths must not explode. */
export const MAX_INDEX_ENTRIES = 2 * MAX_TOC_ENTRIES;
export const MAX_CHUNKS_PER_FILE = 1 << 21;
/** One chunk is inflated into one Buffer. */
export const MAX_CHUNK_SIZE = 1 << 30;
/** Upper bounds of decoded bytes per compressed byte (deflate ~1032:1; zstd RLE blocks 32768:1). */
const MAX_RATIO: Record<Compression, number> = { gzip: 1100, zstd: 33000 };
const RATIO_SLACK = 4096;

/** The most decoded bytes a compressed extent of this many bytes may yield (also what a cached index is held to). */
export function maxDecodedBytes(compressedBytes: number, compression: Compression): number {
  return compressedBytes * MAX_RATIO[compression] + RATIO_SLACK;
}
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

function invalid(message: string): StargzError {
  return new StargzError(ErrorCodes.TOC_INVALID, message);
}

export function parseModtime(modtime: string | undefined): number {
  if (modtime === undefined) return 0;
  const s = modtime.toUpperCase();
  if (!RFC3339.test(s)) return 0;
  const ms = Date.parse(s);
  return Number.isFinite(ms) ? ms : 0;
}

export function buildLayerIndex(toc: Toc, footer: Footer): LazyLayerIndex {
  if (toc.entries.length > MAX_TOC_ENTRIES) throw invalid(`TOC has more than ${MAX_TOC_ENTRIES} entries`);
  const builder = new Builder(footer);
  const list = toc.entries;
  for (let i = 0; i < list.length; i++) builder.add(list[i]!, i);
  return builder.build();
}

/**
 * The index straight from the TOC JSON text, in one pass (scanTocEntries): each entry is
 * parsed, checked and added alone; what needs the whole TOC (chunk extents end at the next
 * offset any entry has, the expansion ratios that depend on them) is kept as numbers and
 * checked at the end. Same verdicts as buildLayerIndex(parseToc(json)): a TOC the pass refuses
 * (or does not stream: an unusual shape) is decided by that whole-TOC path, so a hostile TOC
 * fails with the very message it always did (and costs the whole-TOC memory, as it always did).
 */
export function buildLayerIndexFromJson(json: Buffer, footer: Footer): LazyLayerIndex {
  try {
    return streamLayerIndex(json, footer);
  } catch {
    return buildLayerIndex(parseToc(json), footer);
  }
}

/** The one pass alone: throws on anything it does not accept (no whole-TOC fallback); for tests. */
export function streamLayerIndex(json: Buffer, footer: Footer): LazyLayerIndex {
  const builder = new Builder(footer);
  scanTocEntries(json, (e, i) => builder.add(e, i));
  return builder.build();
}

interface Run {
  path: string;
  entry: Entry<LazyChunkRef>;
  chunks: LazyChunk[];
}

class Builder {
  private readonly dataEnd: number;
  /** Every entry's non-zero data offset so far (numbers, not entries). */
  private offsets = new Float64Array(1024);
  private nOffsets = 0;
  private readonly index = new IndexBuilder<LazyChunkRef>({ invalid, maxEntries: MAX_INDEX_ENTRIES, missingLinkTarget: 'refuse' });
  /** id -> name: the writer omits a user/group name it already gave for the same id; one string per name. */
  private readonly userNames = new Map<number, string>();
  private readonly groupNames = new Map<number, string>();
  private readonly allChunks: LazyChunkRef[] = [];
  private run: Run | undefined;
  private prefetchEnd: number | undefined;
  private noPrefetch = false;

  constructor(private readonly footer: Footer) {
    this.dataEnd = dataRegionEnd(footer);
  }

  build(): LazyLayerIndex {
    this.closeRun();
    this.finishExtents();
    this.checkOverlaps();
    const meta = { noPrefetch: this.noPrefetch, compression: this.footer.compression, tocOffset: this.footer.tocOffset };
    return this.index.finish(this.prefetchEnd === undefined ? meta : { ...meta, prefetchEnd: this.prefetchEnd });
  }

  private checkOffset(e: TocEntry): void {
    if (e.offset >= this.dataEnd) {
      throw invalid(`entry ${JSON.stringify(e.name)} has data offset ${e.offset}, outside the data region [0, ${this.dataEnd})`);
    }
  }

  private noteOffset(e: TocEntry): void {
    this.checkOffset(e);
    if (e.offset === 0) return;
    let o = this.offsets;
    if (this.nOffsets === o.length) {
      const grown = new Float64Array(o.length * 2);
      grown.set(o);
      this.offsets = o = grown;
    }
    o[this.nOffsets++] = e.offset;
  }

  /** Every offset is known now: each chunk's extent ends at the next one (or the data region's end). */
  private finishExtents(): void {
    const boundaries = distinct(this.offsets, this.nOffsets);
    this.offsets = new Float64Array(0);
    const ratio = MAX_RATIO[this.footer.compression];
    for (const c of this.allChunks) {
      const i = lowerBound(boundaries, (x) => x <= c.offset);
      const end = i < boundaries.length ? boundaries[i]! : this.dataEnd;
      c.end = end;
      if (c.innerOffset + c.size > (end - c.offset) * ratio + RATIO_SLACK) {
        throw invalid(`chunk at blob offset ${c.offset}: ${c.innerOffset + c.size} bytes cannot come out of ${end - c.offset} compressed bytes`);
      }
    }
  }

  add(e: TocEntry, i: number): void {
    this.noteOffset(e);
    if (e.type === 'chunk') {
      const run = this.run;
      if (!run) throw invalid(`chunk entry ${i} (${JSON.stringify(e.name)}) does not follow a regular file`);
      if (normalizeEntryName(e.name) !== run.path) {
        throw invalid(`chunk entry ${i} is named ${JSON.stringify(e.name)} but follows ${JSON.stringify(run.path)}`);
      }
      this.addChunk(run, e, false);
      return;
    }
    this.closeRun();
    const path = normalizeEntryName(e.name);
    if (path === PREFETCH_LANDMARK) {
      if (e.offset > 0) this.prefetchEnd = e.offset;
      return;
    }
    if (path === NO_PREFETCH_LANDMARK) {
      this.noPrefetch = true;
      return;
    }
    if (path === TOC_TAR_NAME) return;
    const entry = this.makeEntry(path, e);
    if (e.type === 'reg') {
      this.run = { path, entry, chunks: [] };
      if (entry.size > 0) this.addChunk(this.run, e, true);
      else if (e.chunkSize > 0 || e.chunkOffset > 0) throw invalid(`empty file ${JSON.stringify(path)} has chunk fields`);
    }
    this.index.add(entry);
  }

  private makeEntry(path: string, e: TocEntry): Entry<LazyChunkRef> {
    const type = e.type as NodeType;
    let linkName = '';
    if (type === 'hardlink') {
      linkName = normalizeEntryName(e.linkName, 'hardlink target');
      if (linkName === '') throw invalid(`hardlink ${JSON.stringify(path)} has no target`);
    } else if (type === 'symlink') {
      if (e.linkName.includes('\0')) throw invalid(`symlink ${JSON.stringify(path)} target contains NUL`);
      // Written to disk as UTF-8: a lone surrogate would silently become U+FFFD.
      if (!e.linkName.isWellFormed()) throw invalid(`symlink ${JSON.stringify(path)} target is not well-formed Unicode`);
      linkName = e.linkName;
    }
    // Only regular files get chunks of their own (hardlinks take their target's array).
    const entry = new Entry<LazyChunkRef>(
      path, type, e.mode & 0o7777, e.uid, e.gid, parseModtime(e.modtime), type === 'reg' ? e.size : 0, linkName, NO_CHUNKS,
      intern(this.userNames, e.uid, e.userName), intern(this.groupNames, e.gid, e.groupName),
    );
    if (type === 'char' || type === 'block') {
      if (e.devMajor !== 0) entry.devMajor = e.devMajor;
      if (e.devMinor !== 0) entry.devMinor = e.devMinor;
    }
    if (e.xattrs !== NO_XATTRS) entry.xattrs = e.xattrs;
    if (type === 'reg' && e.digest) entry.digest = e.digest;
    return entry;
  }

  private addChunk(run: Run, e: TocEntry, first: boolean): void {
    const { entry, chunks } = run;
    const what = `${JSON.stringify(entry.path)} chunk at file offset ${e.chunkOffset}`;
    if (entry.size === 0) throw invalid(`${what}: the file is empty`);
    if (e.offset === 0) throw invalid(`${what} has no data offset`);
    if (e.chunkOffset >= entry.size) throw invalid(`${what} is past the file size ${entry.size}`);
    // chunkSize 0: the rest of the file (the writer omits it on the last chunk)
    const size = e.chunkSize > 0 && (!first || e.chunkSize < entry.size) ? e.chunkSize : entry.size - e.chunkOffset;
    if (size > MAX_CHUNK_SIZE) throw invalid(`${what} is ${size} bytes, more than ${MAX_CHUNK_SIZE}`);
    if (chunks.length >= MAX_CHUNKS_PER_FILE) throw invalid(`${JSON.stringify(entry.path)} has more than ${MAX_CHUNKS_PER_FILE} chunks`);
    // A one-chunk file's chunk digest is its file digest: packed once, one string for both.
    const shared = first && e.chunkDigest !== undefined && e.chunkDigest === e.digest;
    // Its extent's end is set (and its ratio checked) once every offset is known (finishExtents).
    const ref = new LazyChunk(e.offset, 0, e.innerOffset, e.chunkOffset, size, shared ? undefined : e.chunkDigest);
    if (shared) ref.packedDigest = entry.packedDigest;
    chunks.push(ref);
    this.allChunks.push(ref);
  }

  /** The chunks of the file just finished must tile [0, size) exactly. */
  private closeRun(): void {
    const run = this.run;
    if (!run) return;
    this.run = undefined;
    const { entry, chunks } = run;
    for (let i = 1; i < chunks.length; i++) {
      if (chunks[i]!.fileOffset < chunks[i - 1]!.fileOffset) {
        chunks.sort((a, b) => a.fileOffset - b.fileOffset);
        break;
      }
    }
    let at = 0;
    for (const c of chunks) {
      if (c.fileOffset !== at) throw invalid(`${JSON.stringify(entry.path)}: chunks leave a gap or overlap at file offset ${at}`);
      at += c.size;
    }
    if (at !== entry.size) throw invalid(`${JSON.stringify(entry.path)}: chunks cover ${at} bytes of ${entry.size}`);
    if (chunks.length === 1) {
      const only = chunks[0]!;
      // A single chunk is the whole file: the file digest is its digest, and one string serves both.
      const d = entry.packedDigest;
      if (d !== undefined && (only.packedDigest === undefined || only.packedDigest === d)) only.packedDigest = d;
      entry.chunks = [only];
    } else if (chunks.length > 0) {
      // An array of exactly its length (a grown one keeps spare capacity).
      entry.chunks = chunks.slice();
    }
  }

  /**
   * Chunks sharing a compressed extent (packed small files) must not claim the same bytes
   * differently; an identical claim (a crafted duplicate file) is allowed, but every claim
   * counts towards the whole layer's expansion: at most MAX_RATIO decoded bytes per byte of
   * the data region. A writer emits each file's bytes once (estargz's minChunkSize packs small
   * files at distinct innerOffsets; zstd:chunked writes a frame per chunk; hardlinks share
   * their target's chunks without TOC chunks of their own), so its claims stay within the
   * per-extent ratio already checked and this cannot reject a real image; 16 chunks of 1 GiB
   * pointing at one 1 MiB member (16 GiB from 1 MiB) are refused.
   */
  private checkOverlaps(): void {
    const all = this.allChunks;
    const before = (a: LazyChunkRef, b: LazyChunkRef): number => a.offset - b.offset || a.innerOffset - b.innerOffset;
    for (let i = 1; i < all.length; i++) {
      if (before(all[i - 1]!, all[i]!) > 0) {
        all.sort(before);
        break;
      }
    }
    const limit = this.dataEnd * MAX_RATIO[this.footer.compression] + RATIO_SLACK;
    let claimed = all.length > 0 ? all[0]!.size : 0;
    for (let i = 1; i < all.length; i++) {
      const a = all[i - 1]!;
      const b = all[i]!;
      claimed += b.size;
      if (claimed > limit) {
        throw invalid(`the TOC's chunks claim more than ${limit} decoded bytes from a data region of ${this.dataEnd} compressed bytes`);
      }
      if (a.offset !== b.offset) continue;
      const same = a.innerOffset === b.innerOffset && a.size === b.size && a.digest === b.digest;
      if (!same && b.innerOffset < a.innerOffset + a.size) {
        throw invalid(`chunks overlap inconsistently in the compressed extent at blob offset ${a.offset}`);
      }
    }
    all.length = 0;
  }
}

/** The m sorted distinct values of a[0, n), in an array of exactly m (the scratch array is dropped). */
function distinct(a: Float64Array, n: number): Float64Array {
  const sorted = a.subarray(0, n).sort();
  let m = 0;
  for (let i = 0; i < n; i++) if (m === 0 || sorted[i] !== sorted[m - 1]) sorted[m++] = sorted[i]!;
  return sorted.slice(0, m);
}

/** The name given for this id, or the one given earlier; one string per id. */
function intern(names: Map<number, string>, id: number, name: string | undefined): string | undefined {
  const known = names.get(id);
  if (!name) return known;
  if (known === name) return known;
  names.set(id, name);
  return name;
}
