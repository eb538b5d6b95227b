// The file index of one layer, whatever its format: one entry per path (implicit parent
// directories included), each regular file with the chunks that rebuild it. An eStargz TOC
// (estargz/layer-index.ts) and a plain tar stream (layer/plain-layer.ts) both become this,
// through the one builder (builder.ts).
//
// Memory: issue 8 asks for a small, stated number of bytes per entry. For the mix of
// scripts/index-bytes.mjs (70% one-chunk files with file and chunk digests, 5% four-chunk
// files, 15% directories, 10% symlinks, 50-byte paths) the index retains about 600 bytes per
// path (1077 before this model): the path string and its Map slot, one fixed-shape Entry, one
// fixed-shape chunk per chunk in an array of exactly its length, and one digest string shared
// by a one-chunk file and its chunk. Fields most entries leave at their default (device numbers,
// xattrs, sparse, implicit) live on the prototype; user and group names are interned; the
// children lists are built on first use. README "Limits" states the figure.
import type { Compression } from '../estargz/footer.js';

export type NodeType = 'dir' | 'reg' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo';

/**
 * A piece of a regular file. `offset`, `end` and `innerOffset` (the compressed extent holding
 * it) exist when the layer is read lazily (eStargz: LazyChunkRef); a plain layer's pieces are
 * named by their digest only.
 */
export interface ChunkRef {
  /** position and length in the uncompressed file */
  fileOffset: number;
  size: number;
  /** 'sha256:..' of the uncompressed chunk, when known (always, for a plain layer) */
  digest?: string;
  /** compressed byte range in the blob: [offset, end) */
  offset?: number;
  end?: number;
  /** where the chunk starts in the data inflated from `offset` */
  innerOffset?: number;
}

/** A chunk of a lazily read layer: its compressed extent is always known. */
export interface LazyChunkRef extends ChunkRef {
  offset: number;
  end: number;
  innerOffset: number;
}

export interface IndexEntry<C extends ChunkRef = ChunkRef> {
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
  chunks: C[];
  /** the chunks cover only the data regions of a sparse file (sorted, not overlapping, within
   * size): every byte of [0, size) no chunk covers is a hole and reads as zero (plain layers
   * only; a TOC's chunks always tile the file) */
  sparse?: true;
  /** true for a directory the layer did not list, created to hold entries below it (mode 0o755, mtime 0):
   * a merging layer above should not let it override a real directory's attributes */
  implicit?: boolean;
}

export interface LayerIndex<C extends ChunkRef = ChunkRef> {
  /** every path incl. implicit parent dirs and '' */
  entries: Map<string, IndexEntry<C>>;
  /** dir path -> child base names, sorted (built on first use) */
  readonly children: Map<string, string[]>;
  /**
   * Every chunk with a compressed extent, sorted by offset, one per distinct offset (chunks
   * shared by hardlinks or packed in one member appear once). Empty for a plain layer.
   */
  readonly chunksByOffset: readonly LazyChunkRef[];
  /** blob offset of .prefetch.landmark, when present: files whose chunks start before it are prioritized */
  prefetchEnd?: number;
  /** .no.prefetch.landmark present */
  noPrefetch: boolean;
  compression: Compression;
  tocOffset: number;
}

/** The index of a lazily read (eStargz) layer: every chunk has its compressed extent. */
export type LazyLayerIndex = LayerIndex<LazyChunkRef>;
export type LazyIndexEntry = IndexEntry<LazyChunkRef>;

/** Shared by every entry without xattrs (most of them): one object, not one per entry. */
export const NO_XATTRS: Record<string, Buffer> = Object.freeze({}) as Record<string, Buffer>;

/** Shared by every entry without data: one frozen array, not one per entry. */
export const NO_CHUNKS: never[] = Object.freeze([]) as unknown as never[];

/**
 * The entries the builder makes. Every instance has the same shape (one hidden class, fields
 * in the object); the fields most entries leave at their default are read from the prototype
 * until set.
 */
export class Entry<C extends ChunkRef = ChunkRef> implements IndexEntry<C> {
  declare devMajor: number;
  declare devMinor: number;
  declare xattrs: Record<string, Buffer>;
  declare sparse?: true;
  declare implicit?: boolean;
  userName: string | undefined;
  groupName: string | undefined;
  digest: string | undefined;

  constructor(
    public path: string,
    public type: NodeType,
    public mode: number,
    public uid: number,
    public gid: number,
    public mtimeMs: number,
    public size: number,
    public linkName: string,
    public chunks: C[],
  ) {
    this.userName = undefined;
    this.groupName = undefined;
    this.digest = undefined;
  }
}
for (const [key, value] of [
  ['devMajor', 0],
  ['devMinor', 0],
  ['xattrs', NO_XATTRS],
  ['sparse', undefined],
  ['implicit', undefined],
] as const) {
  Object.defineProperty(Entry.prototype, key, { value, writable: true, enumerable: false, configurable: true });
}

/** A chunk of a lazily read layer, fixed shape (see Entry). */
export class LazyChunk implements LazyChunkRef {
  digest: string | undefined;
  constructor(
    public offset: number,
    public end: number,
    public innerOffset: number,
    public fileOffset: number,
    public size: number,
    digest: string | undefined,
  ) {
    this.digest = digest;
  }
}

/** A directory no entry describes: implied by a path below it (0755, owned by root, mtime 0). */
export function implicitDir<C extends ChunkRef = ChunkRef>(path: string): IndexEntry<C> {
  const e = new Entry<C>(path, 'dir', 0o755, 0, 0, 0, 0, '', NO_CHUNKS);
  e.implicit = true;
  return e;
}

/** The field values of an entry, as a plain object (for encoders and tests: prototype defaults included). */
export function entryFields<C extends ChunkRef>(e: IndexEntry<C>): IndexEntry<C> {
  const out: IndexEntry<C> = {
    path: e.path,
    type: e.type,
    mode: e.mode,
    uid: e.uid,
    gid: e.gid,
    mtimeMs: e.mtimeMs,
    size: e.size,
    linkName: e.linkName,
    devMajor: e.devMajor,
    devMinor: e.devMinor,
    xattrs: e.xattrs,
    chunks: e.chunks,
  };
  if (e.userName !== undefined) out.userName = e.userName;
  if (e.groupName !== undefined) out.groupName = e.groupName;
  if (e.digest !== undefined) out.digest = e.digest;
  if (e.sparse) out.sparse = true;
  if (e.implicit) out.implicit = true;
  return out;
}
