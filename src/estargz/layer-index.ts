// The per-layer file index built from a TOC: one entry per path (implicit parent directories
// included), each regular file with the list of compressed extents that rebuild it.
// A chunk's compressed extent runs from its offset to the next larger offset any entry has
// (or the end of the data region): that is the gzip member / zstd frame holding it.
import { ErrorCodes, StargzError } from '../errors.js';
import { dataRegionEnd, type Compression, type Footer } from './footer.js';
import { baseName, normalizeEntryName, parentPath } from './names.js';
import { MAX_TOC_ENTRIES, NO_XATTRS, type Toc, type TocEntry } from './toc.js';
import { TOC_TAR_NAME } from './toc-tar.js';

export type NodeType = 'dir' | 'reg' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo';

export interface ChunkRef {
  /** compressed byte range in the blob: [offset, end) */
  offset: number;
  end: number;
  innerOffset: number;
  /** position and length in the uncompressed file */
  fileOffset: number;
  size: number;
  /** 'sha256:..' of the uncompressed chunk, when the TOC has it */
  digest?: string;
}

export interface IndexEntry {
  /** normalized, no leading '/', '' for root, '/'-separated */
  path: string;
  type: NodeType;
  /** permission bits incl. setuid/setgid/sticky: mode & 0o7777 */
  mode: number;
  uid: number;
  gid: number;
  userName?: string;
  groupName?: string;
  mtimeMs: number;
  /** regular files (and hardlinks to them): file size; 0 otherwise */
  size: number;
  /** symlink target as is; hardlink target normalized like path */
  linkName: string;
  devMajor: number;
  devMinor: number;
  xattrs: Record<string, Buffer>;
  /** whole-file sha256 */
  digest?: string;
  /** sorted by fileOffset, contiguous, covering size — unless `sparse`. A hardlink shares its target's array. */
  chunks: ChunkRef[];
  /** the chunks cover only the data regions of a sparse file (sorted, not overlapping, within
   * size): every byte of [0, size) no chunk covers is a hole and reads as zero (plain layers
   * only; a TOC's chunks always tile the file) */
  sparse?: true;
  /** true for a directory the TOC did not list, created to hold entries below it (mode 0o755, mtime 0):
   * a merging layer above should not let it override a real directory's attributes */
  implicit?: boolean;
}

export interface LayerIndex {
  /** every path incl. implicit parent dirs and '' */
  entries: Map<string, IndexEntry>;
  /** dir path -> child base names, sorted */
  children: Map<string, string[]>;
  /** blob offset of .prefetch.landmark, when present: files whose chunks start before it are prioritized */
  prefetchEnd?: number;
  /** .no.prefetch.landmark present */
  noPrefetch: boolean;
  /** every chunk of the TOC sorted by (offset, innerOffset), as the overlap check left them (eStargz only) */
  chunksByOffset?: ChunkRef[];
  compression: Compression;
  tocOffset: number;
}

/** Shared by every entry without data: one frozen array, not one per entry. */
const NO_CHUNKS: ChunkRef[] = Object.freeze([]) as unknown as ChunkRef[];

export const PREFETCH_LANDMARK = '.prefetch.landmark';
export const NO_PREFETCH_LANDMARK = '.no.prefetch.landmark';
/** Implicit parent directories count too: a TOC of deep unique paths must not explode. */
export const MAX_INDEX_ENTRIES = 2 * MAX_TOC_ENTRIES;
export const MAX_CHUNKS_PER_FILE = 1 << 21;
/** One chunk is inflated into one Buffer. */
export const MAX_CHUNK_SIZE = 1 << 30;
export const MAX_HARDLINK_HOPS = 64;
/** Upper bounds of decoded bytes per compressed byte (deflate ~1032:1; zstd RLE blocks 32768:1). */
const MAX_RATIO: Record<Compression, number> = { gzip: 1100, zstd: 33000 };
const RATIO_SLACK = 4096;
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

export function buildLayerIndex(toc: Toc, footer: Footer): LayerIndex {
  if (toc.entries.length > MAX_TOC_ENTRIES) throw invalid(`TOC has more than ${MAX_TOC_ENTRIES} entries`);
  return new Builder(toc, footer).build();
}

interface Run {
  path: string;
  entry: IndexEntry;
}

class Builder {
  private readonly dataEnd: number;
  private readonly boundaries: Float64Array;
  private readonly entries = new Map<string, IndexEntry>();
  private readonly kids = new Map<string, Set<string>>();
  private readonly userNames = new Map<number, string>();
  private readonly groupNames = new Map<number, string>();
  private readonly allChunks: ChunkRef[] = [];
  private run: Run | undefined;
  private prefetchEnd: number | undefined;
  private noPrefetch = false;

  constructor(
    private readonly toc: Toc,
    private readonly footer: Footer,
  ) {
    this.dataEnd = dataRegionEnd(footer);
    this.boundaries = this.distinctOffsets();
    this.entries.set('', implicitDir(''));
    this.kids.set('', new Set());
  }

  build(): LayerIndex {
    const list = this.toc.entries;
    for (let i = 0; i < list.length; i++) this.add(list[i]!, i);
    this.closeRun();
    this.resolveHardlinks();
    this.checkOverlaps();
    const children = new Map<string, string[]>();
    for (const [dir, names] of this.kids) children.set(dir, [...names].sort());
    const index: LayerIndex = {
      entries: this.entries,
      children,
      noPrefetch: this.noPrefetch,
      compression: this.footer.compression,
      tocOffset: this.footer.tocOffset,
      chunksByOffset: this.allChunks,
    };
    if (this.prefetchEnd !== undefined) index.prefetchEnd = this.prefetchEnd;
    return index;
  }

  /** Sorted distinct data offsets: each chunk's extent ends at the next one. */
  private distinctOffsets(): Float64Array {
    const all = new Float64Array(this.toc.entries.length);
    let n = 0;
    for (const e of this.toc.entries) {
      if (e.offset === 0) continue;
      if (e.offset >= this.dataEnd) {
        throw invalid(`entry ${JSON.stringify(e.name)} has data offset ${e.offset}, outside the data region [0, ${this.dataEnd})`);
      }
      all[n++] = e.offset;
    }
    const sorted = all.subarray(0, n).sort();
    let m = 0;
    for (let i = 0; i < n; i++) if (m === 0 || sorted[i] !== sorted[m - 1]) sorted[m++] = sorted[i]!;
    return sorted.subarray(0, m);
  }

  private extentEnd(offset: number): number {
    const b = this.boundaries;
    let lo = 0;
    let hi = b.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (b[mid]! <= offset) lo = mid + 1;
      else hi = mid;
    }
    return lo < b.length ? b[lo]! : this.dataEnd;
  }

  private add(e: TocEntry, i: number): void {
    if (e.type === 'chunk') {
      const run = this.run;
      if (!run) throw invalid(`chunk entry ${i} (${JSON.stringify(e.name)}) does not follow a regular file`);
      if (normalizeEntryName(e.name) !== run.path) {
        throw invalid(`chunk entry ${i} is named ${JSON.stringify(e.name)} but follows ${JSON.stringify(run.path)}`);
      }
      this.addChunk(run.entry, e, false);
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
      this.run = { path, entry };
      if (entry.size > 0) this.addChunk(entry, e, true);
      else if (e.chunkSize > 0 || e.chunkOffset > 0) throw invalid(`empty file ${JSON.stringify(path)} has chunk fields`);
    }
    this.insert(path, entry);
  }

  private makeEntry(path: string, e: TocEntry): IndexEntry {
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
    // The writer omits a user/group name it already gave for the same id.
    if (e.userName) this.userNames.set(e.uid, e.userName);
    if (e.groupName) this.groupNames.set(e.gid, e.groupName);
    const userName = e.userName || this.userNames.get(e.uid);
    const groupName = e.groupName || this.groupNames.get(e.gid);
    const device = type === 'char' || type === 'block';
    const entry: IndexEntry = {
      path,
      type,
      mode: e.mode & 0o7777,
      uid: e.uid,
      gid: e.gid,
      mtimeMs: parseModtime(e.modtime),
      size: type === 'reg' ? e.size : 0,
      linkName,
      devMajor: device ? e.devMajor : 0,
      devMinor: device ? e.devMinor : 0,
      xattrs: e.xattrs,
      // Only regular files get chunks of their own (hardlinks take their target's array).
      chunks: type === 'reg' ? [] : NO_CHUNKS,
    };
    if (userName) entry.userName = userName;
    if (groupName) entry.groupName = groupName;
    if (type === 'reg' && e.digest) entry.digest = e.digest;
    return entry;
  }

  private addChunk(entry: IndexEntry, e: TocEntry, first: boolean): void {
    const what = `${JSON.stringify(entry.path)} chunk at file offset ${e.chunkOffset}`;
    if (entry.size === 0) throw invalid(`${what}: the file is empty`);
    if (e.offset === 0) throw invalid(`${what} has no data offset`);
    if (e.chunkOffset >= entry.size) throw invalid(`${what} is past the file size ${entry.size}`);
    // chunkSize 0: the rest of the file (the writer omits it on the last chunk)
    const size = e.chunkSize > 0 && (!first || e.chunkSize < entry.size) ? e.chunkSize : entry.size - e.chunkOffset;
    if (size > MAX_CHUNK_SIZE) throw invalid(`${what} is ${size} bytes, more than ${MAX_CHUNK_SIZE}`);
    if (entry.chunks.length >= MAX_CHUNKS_PER_FILE) throw invalid(`${JSON.stringify(entry.path)} has more than ${MAX_CHUNKS_PER_FILE} chunks`);
    const end = this.extentEnd(e.offset);
    if (e.innerOffset + size > (end - e.offset) * MAX_RATIO[this.footer.compression] + RATIO_SLACK) {
      throw invalid(`${what}: ${e.innerOffset + size} bytes cannot come out of ${end - e.offset} compressed bytes`);
    }
    const ref: ChunkRef = { offset: e.offset, end, innerOffset: e.innerOffset, fileOffset: e.chunkOffset, size };
    if (e.chunkDigest) ref.digest = e.chunkDigest;
    entry.chunks.push(ref);
    this.allChunks.push(ref);
  }

  /** The chunks of the file just finished must tile [0, size) exactly. */
  private closeRun(): void {
    const run = this.run;
    if (!run) return;
    this.run = undefined;
    const { entry } = run;
    const chunks = entry.chunks;
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
    // A single chunk is the whole file: the file digest is its digest.
    if (chunks.length === 1 && !chunks[0]!.digest && entry.digest) chunks[0]!.digest = entry.digest;
  }

  private insert(path: string, entry: IndexEntry): void {
    if (path === '') {
      if (entry.type !== 'dir') throw invalid('the root entry is not a directory');
      this.entries.set('', entry);
      return;
    }
    const parent = parentPath(path);
    this.ensureDir(parent);
    const old = this.entries.get(path);
    if (old && old.type === 'dir' && entry.type !== 'dir') this.removeSubtree(path);
    this.entries.set(path, entry);
    this.kids.get(parent)!.add(baseName(path));
    if (entry.type === 'dir' && !this.kids.has(path)) this.kids.set(path, new Set());
    if (this.entries.size > MAX_INDEX_ENTRIES) throw invalid(`layer has more than ${MAX_INDEX_ENTRIES} paths`);
  }

  /** Creates the missing directories down to `dir`; an existing non-directory on the way is refused. */
  private ensureDir(dir: string): void {
    const missing: string[] = [];
    let p = dir;
    let found = this.entries.get(p);
    while (!found) {
      missing.push(p);
      p = parentPath(p);
      found = this.entries.get(p);
    }
    if (found.type !== 'dir') throw invalid(`${JSON.stringify(p)} is not a directory but has entries below it`);
    for (let i = missing.length - 1; i >= 0; i--) {
      const d = missing[i]!;
      this.entries.set(d, implicitDir(d));
      this.kids.set(d, new Set());
      this.kids.get(parentPath(d))!.add(baseName(d));
    }
    if (this.entries.size > MAX_INDEX_ENTRIES) throw invalid(`layer has more than ${MAX_INDEX_ENTRIES} paths`);
  }

  /** A directory replaced by a non-directory takes its contents with it (tar semantics). */
  private removeSubtree(dir: string): void {
    const stack = [dir];
    while (stack.length > 0) {
      const d = stack.pop()!;
      const names = this.kids.get(d);
      this.kids.delete(d);
      if (!names) continue;
      for (const name of names) {
        const child = d + '/' + name;
        this.entries.delete(child);
        stack.push(child);
      }
    }
  }

  /** Hardlinks share their target's data: size, digest and chunks come from the final target. */
  private resolveHardlinks(): void {
    for (const entry of this.entries.values()) {
      if (entry.type !== 'hardlink') continue;
      let target = this.entries.get(entry.linkName);
      for (let hops = 0; target && target.type === 'hardlink'; hops++) {
        if (hops >= MAX_HARDLINK_HOPS) throw invalid(`hardlink ${JSON.stringify(entry.path)}: chain too long or cyclic`);
        target = this.entries.get(target.linkName);
      }
      if (!target) throw invalid(`hardlink ${JSON.stringify(entry.path)} points to missing ${JSON.stringify(entry.linkName)}`);
      if (target.type === 'dir') throw invalid(`hardlink ${JSON.stringify(entry.path)} points to a directory`);
      if (target.type === 'reg') {
        entry.size = target.size;
        entry.chunks = target.chunks;
        if (target.digest) entry.digest = target.digest;
      }
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
    const before = (a: ChunkRef, b: ChunkRef): number => a.offset - b.offset || a.innerOffset - b.innerOffset;
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
  }
}

/** A directory no entry describes: implied by a path below it (0755, owned by root, mtime 0). */
export function implicitDir(path: string): IndexEntry {
  return {
    path,
    type: 'dir',
    mode: 0o755,
    uid: 0,
    gid: 0,
    mtimeMs: 0,
    size: 0,
    linkName: '',
    devMajor: 0,
    devMinor: 0,
    xattrs: NO_XATTRS,
    chunks: NO_CHUNKS,
    implicit: true,
  };
}
