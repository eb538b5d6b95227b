// The file index of one layer, whatever its format: one entry per path (implicit parent
// directories included), each regular file with the chunks that rebuild it. An eStargz TOC
// (estargz/layer-index.ts) and a plain tar stream (layer/plain-layer.ts) both become this,
// through the one builder (builder.ts).
//
// Memory: issue 8 asks for a small, stated number of bytes per entry. For the mix of
// scripts/index-bytes.mjs (70% one-chunk files with file and chunk digests, 5% four-chunk
// files, 15% directories, 10% symlinks, 50-byte paths) the index retains about 325 bytes per
// path (727 before this model; heap after full collections, 200 k paths): the path string and
// its Map slot (~130), an eight-field Entry (~96), a five-field chunk per chunk, held bare for
// a one-chunk file (~70), and a digest packed to its 32 raw bytes, one string shared by a
// one-chunk file and its chunk (~48). Type, mode and mtime share small integers; owners are
// shared objects; defaults live on the prototype; children lists are built on first use.
// Numbers past 2^31 (sizes, blob offsets, times after 2038) are boxed: 16 bytes more each.
// README "Limits" states the figure; scripts/bench.ts checks `ls` against it.
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

const TYPES: readonly NodeType[] = ['dir', 'reg', 'symlink', 'hardlink', 'char', 'block', 'fifo'];
const TYPE_INDEX: Readonly<Record<NodeType, number>> = { dir: 0, reg: 1, symlink: 2, hardlink: 3, char: 4, block: 5, fifo: 6 };

/** Packed length of each digest algorithm, by the length of its 'algo:<hex>' form. */
const PACKABLE: ReadonlyMap<number, string> = new Map([
  [7 + 64, 'sha256:'],
  [7 + 96, 'sha384:'],
  [7 + 128, 'sha512:'],
]);

/**
 * A digest as few bytes as the index holds it: 'sha256:<hex>' (88 bytes as a string) becomes a
 * one-byte string of its 32 raw bytes (48 bytes); anything else is kept as given.
 */
export function packDigest(d: string | undefined): string | undefined {
  if (d === undefined) return undefined;
  const prefix = PACKABLE.get(d.length);
  if (prefix === undefined || !d.startsWith(prefix)) return d;
  for (let i = prefix.length; i < d.length; i++) {
    const c = d.charCodeAt(i);
    if (!((c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66))) return d; // lower-case hex only: unpacking gives it back exactly
  }
  return Buffer.from(d.slice(prefix.length), 'hex').toString('latin1');
}

export function unpackDigest(p: string | undefined): string | undefined {
  if (p === undefined) return undefined;
  const n = p.length;
  // A given digest is 'sha…:' plus twice as many hex digits: never 32, 48 or 64 characters.
  if (n !== 32 && n !== 48 && n !== 64) return p;
  return `sha${n * 8}:${Buffer.from(p, 'latin1').toString('hex')}`;
}

/** Whether an entry or chunk has a digest, without unpacking it (hot paths only ask that). */
export function hasDigest(ref: { digest?: string }): boolean {
  return ref instanceof PackedDigest ? ref.packedDigest !== undefined : ref.digest !== undefined;
}

/** Owner ids and names, shared by every entry with the same four (a layer has a handful). */
interface Owner {
  readonly uid: number;
  readonly gid: number;
  readonly userName: string | undefined;
  readonly groupName: string | undefined;
}
const ROOT: Owner = Object.freeze({ uid: 0, gid: 0, userName: undefined, groupName: undefined });
const owners = new Map<string, Owner>();
const MAX_OWNERS = 4096;
/** The owner asked for last: consecutive entries mostly share one, and then no key is built. */
let lastOwner = ROOT;

function ownerOf(uid: number, gid: number, userName: string | undefined, groupName: string | undefined): Owner {
  const l = lastOwner;
  if (l.uid === uid && l.gid === gid && l.userName === userName && l.groupName === groupName) return l;
  if (uid === 0 && gid === 0 && userName === undefined && groupName === undefined) return (lastOwner = ROOT);
  const key = `${uid}:${gid}:${userName ?? ''}:${groupName ?? ''}:${userName === undefined ? 0 : 1}${groupName === undefined ? 0 : 1}`;
  let o = owners.get(key);
  if (!o) {
    o = Object.freeze({ uid, gid, userName, groupName });
    // Bounded: a hostile layer with a million owners gets one object per entry, not a leak.
    if (owners.size < MAX_OWNERS) owners.set(key, o);
  }
  return (lastOwner = o);
}

/**
 * A digest held packed (packDigest: its 32 raw bytes), read back as 'sha256:<hex>'. Entries,
 * lazy chunks and plain pieces all keep theirs this way; a one-chunk file shares one string
 * with its chunk through packedDigest.
 */
abstract class PackedDigest {
  declare protected packed: string | undefined;
  get digest(): string | undefined {
    return unpackDigest(this.packed);
  }
  set digest(v: string | undefined) {
    this.packed = packDigest(v);
  }
  get packedDigest(): string | undefined {
    return this.packed;
  }
  set packedDigest(v: string | undefined) {
    this.packed = v;
  }
}

/**
 * The entries the builder makes: eight fields, each a pointer or a small integer (no number
 * boxes while times, sizes and offsets stay below 2^31). The type, the mode and the
 * milliseconds of mtime share one integer; owners are shared objects; the digest is packed.
 * The fields most entries leave at their default (device numbers, xattrs, sparse, implicit)
 * are read from the prototype until set.
 */
export class Entry<C extends ChunkRef = ChunkRef> extends PackedDigest implements IndexEntry<C> {
  declare devMajor: number;
  declare devMinor: number;
  declare xattrs: Record<string, Buffer>;
  declare sparse?: true;
  declare implicit?: boolean;
  /** type index << 22 | (mtimeMs mod 1000) << 12 | mode & 0o7777 */
  private bits: number;
  /** floor(mtimeMs / 1000) */
  private sec: number;
  private own: Owner;
  /** The chunks; a file's only chunk is held bare (no array of one). */
  private c: C | C[];

  constructor(
    public path: string,
    type: NodeType,
    mode: number,
    uid: number,
    gid: number,
    mtimeMs: number,
    public size: number,
    public linkName: string,
    chunks: C[],
    userName?: string,
    groupName?: string,
  ) {
    super();
    this.c = chunks.length === 1 ? chunks[0]! : chunks;
    const sec = Math.floor(mtimeMs / 1000);
    this.bits = (TYPE_INDEX[type] << 22) | ((mtimeMs - sec * 1000) << 12) | (mode & 0o7777);
    this.sec = sec;
    this.own = ownerOf(uid, gid, userName || undefined, groupName || undefined);
    this.packed = undefined;
  }

  /** A one-chunk file's array is made when asked for (the chunk itself is the same object each time). */
  get chunks(): C[] {
    const c = this.c;
    return Array.isArray(c) ? c : [c];
  }
  set chunks(v: C[]) {
    this.c = v.length === 1 ? v[0]! : v;
  }
  get type(): NodeType {
    return TYPES[this.bits >>> 22]!;
  }
  get mode(): number {
    return this.bits & 0o7777;
  }
  get mtimeMs(): number {
    return this.sec * 1000 + ((this.bits >>> 12) & 0x3ff);
  }
  /** Takes the owner (ids and names) of an entry known to have the same four: one shared object, no lookup. */
  sameOwnerAs(other: Entry<ChunkRef>): void {
    this.own = other.own;
  }
  get uid(): number {
    return this.own.uid;
  }
  get gid(): number {
    return this.own.gid;
  }
  get userName(): string | undefined {
    return this.own.userName;
  }
  set userName(v: string | undefined) {
    const o = this.own;
    this.own = ownerOf(o.uid, o.gid, v || undefined, o.groupName);
  }
  get groupName(): string | undefined {
    return this.own.groupName;
  }
  set groupName(v: string | undefined) {
    const o = this.own;
    this.own = ownerOf(o.uid, o.gid, o.userName, v || undefined);
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

/** A chunk of a lazily read layer: five fields, the digest packed, innerOffset 0 unless set (see Entry). */
export class LazyChunk extends PackedDigest implements LazyChunkRef {
  declare innerOffset: number;
  constructor(
    public offset: number,
    public end: number,
    innerOffset: number,
    public fileOffset: number,
    public size: number,
    digest: string | undefined,
  ) {
    super();
    this.packed = packDigest(digest);
    if (innerOffset !== 0) this.innerOffset = innerOffset;
  }
}

Object.defineProperty(LazyChunk.prototype, 'innerOffset', { value: 0, writable: true, enumerable: false, configurable: true });

/** A piece of a plain layer's file: named by its digest only (packed, see Entry). */
export class Piece extends PackedDigest implements ChunkRef {
  constructor(
    public fileOffset: number,
    public size: number,
    digest: string,
  ) {
    super();
    this.packed = packDigest(digest);
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
