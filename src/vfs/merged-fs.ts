// The image's merged filesystem: one read-only view of all layers that both clients —
// the FUSE adapter and the sync walker — use. Metadata comes from the TOCs; bytes leave
// only through readCached/readInto/read/readFiles, which ask the image's one fetch scheduler
// (cache first, then range fetches), and fetchAhead queues background work there.
import { ErrorCodes, StargzError } from '../errors.js';
import type { ChunkRef } from '../estargz/index.js';
import type { Layer } from '../layer/layer.js';
import { FetchScheduler, type BackgroundKind } from '../layer/scheduler.js';
import type { FetchMetrics } from '../metrics/fetch-metrics.js';
import { allSettledOrThrow } from '../util/concurrent.js';
import { lowerBound } from '../util/sorted.js';
import { mergeLayers, type ImageTotals } from './merge.js';
import { decodeMergedTree, encodeMergedTree } from './merged-tree-codec.js';
import { statOf, visibleXattrs, type VNode, type VStat } from './node.js';

const MAX_SYMLINK_HOPS = 40; // as Linux's ELOOP limit

export class MergedFs {
  readonly root: VNode;
  readonly warnings: string[];
  /** What `df` shows: bytes of regular files and inodes, counted once each while merging. */
  readonly totals: ImageTotals;
  /** Every fetch of this image's bytes: on demand, read-ahead, walk-ahead and prefetch. */
  readonly scheduler: FetchScheduler;
  /** True when the tree came from `storedTree` rather than from merging the layers. */
  readonly treeFromStore: boolean;

  /**
   * `connections`: range requests the layers make at once (the default concurrency when unset).
   * `storedTree`: these layers' merged tree as encodeTree() gave it before; used when it decodes,
   * else the layers are merged. A stored tree decodes no layer index: nodes and their stat come
   * from it, and a layer's index is decoded when one of its files is first read (stored-tree.ts).
   */
  constructor(readonly layers: readonly Layer[], options: { connections?: number; metrics?: FetchMetrics; storedTree?: Buffer } = {}) {
    this.scheduler = new FetchScheduler(options.connections, options.metrics);
    const stored = options.storedTree && decodeMergedTree(options.storedTree, layers);
    this.treeFromStore = stored !== undefined;
    const merged = stored || mergeLayers(layers);
    this.root = merged.root;
    this.warnings = merged.warnings;
    this.totals = merged.totals;
  }

  /** The merged tree in its cached form (merged-tree-codec.ts), for the next open of the same layers. */
  encodeTree(): Buffer {
    return encodeMergedTree(this, this.layers);
  }

  /** Exact lookup of an absolute, normalized path (no symlink resolution): what FUSE asks. */
  get(path: string): VNode | undefined {
    if (!path.startsWith('/')) return undefined;
    if (path === '/') return this.root;
    let node: VNode | undefined = this.root;
    for (const part of path.slice(1).split('/')) {
      node = node.children?.get(part);
      if (!node) return undefined;
    }
    return node;
  }

  /**
   * Resolves a user-given path the way a chroot would: symlinks in intermediate components
   * are followed (relative to their directory, absolute ones from the image root, never
   * above it); the last component is followed only with followLast.
   */
  resolve(path: string, followLast = false): VNode {
    const parts = path.split('/').filter((p) => p !== '' && p !== '.');
    let stack: VNode[] = [this.root];
    let hops = 0;
    while (parts.length > 0) {
      const part = parts.shift()!;
      const dir = stack[stack.length - 1]!;
      if (part === '..') {
        if (stack.length > 1) stack.pop();
        continue;
      }
      if (!dir.children) throw notFound(path, `${dir.path} is not a directory`);
      const child = dir.children.get(part);
      if (!child) throw notFound(path);
      const isLast = parts.length === 0;
      if (child.inode.entry.type === 'symlink' && (!isLast || followLast)) {
        if (++hops > MAX_SYMLINK_HOPS) throw notFound(path, 'too many levels of symbolic links');
        const target = child.inode.entry.linkName;
        if (target.startsWith('/')) stack = [this.root];
        parts.unshift(...target.split('/').filter((p) => p !== '' && p !== '.'));
        continue;
      }
      stack.push(child);
    }
    return stack[stack.length - 1]!;
  }

  stat(node: VNode): VStat {
    return statOf(node);
  }

  /** Children sorted by name (whiteouts and bookkeeping files never appear). */
  readdir(node: VNode): VNode[] {
    if (!node.children) throw new StargzError(ErrorCodes.PATH_NOT_FOUND, `${node.path} is not a directory`);
    return [...node.children.keys()].sort().map((k) => node.children!.get(k)!);
  }

  /** A symlink's target; undefined for anything else. */
  readlink(node: VNode): string | undefined {
    return node.inode.entry.type === 'symlink' ? node.inode.entry.linkName : undefined;
  }

  xattrs(node: VNode): Record<string, Buffer> {
    return visibleXattrs(node.inode.entry);
  }

  /** Pre-order walk of a subtree, directories before their contents, names sorted. */
  *walk(node: VNode): Generator<VNode> {
    yield node;
    if (node.children) for (const child of this.readdir(node)) yield* this.walk(child);
  }

  /** A regular file's whole-file sha256 from the TOC ('sha256:…'); undefined for anything else, or when the layer's index has none (a plain layer's). */
  digestOf(node: VNode): string | undefined {
    return node.inode.entry.digest;
  }

  /** The layer whose blob holds the node's bytes (its metadata too). */
  layerOf(node: VNode): Layer {
    return node.inode.layer;
  }

  /** Bytes in a regular file (0 for anything else without data). */
  size(node: VNode): number {
    return node.inode.entry.size;
  }

  /** The chunks of a regular file that overlap [offset, offset + length), in file order. */
  chunksFor(node: VNode, offset = 0, length = Infinity): ChunkRef[] {
    const chunks = node.inode.entry.chunks;
    const end = offset + length;
    // Sorted and not overlapping (contiguous unless the file is sparse): the first that ends after offset.
    const out: ChunkRef[] = [];
    for (let i = lowerBound(chunks, (c) => c.fileOffset + c.size <= offset); i < chunks.length && chunks[i]!.fileOffset < end; i++) out.push(chunks[i]!);
    return out;
  }

  // The one byte path: file bytes leave the VFS only through the methods below (FUSE uses
  // readCached then readInto, a library user read, sync readFiles), all through the scheduler.

  /**
   * Copies up to `length` bytes of a regular file from `offset` into `buf` when every chunk
   * they need is in memory, synchronously; answers the count (short at end of file), or
   * undefined when a chunk must be read through the cache or fetched (see readInto).
   */
  readCached(node: VNode, buf: Buffer, offset: number, length: number): number | undefined {
    const want = this.prepare(node, buf, offset, length);
    return want === 0 || copyCached(node.inode.layer, this.chunksFor(node, offset, want), buf, offset, want) ? want : undefined;
  }

  /**
   * Copies up to `length` bytes of a regular file from `offset` into `buf`, reading through the
   * cache and fetching on demand; answers the count. Nothing is copied once `signal` fired, so a
   * caller that gave up may hand `buf` back.
   */
  async readInto(node: VNode, buf: Buffer, offset: number, length: number, signal?: AbortSignal): Promise<number> {
    const want = this.prepare(node, buf, offset, length);
    if (want === 0) return 0;
    const layer = node.inode.layer;
    const refs = this.chunksFor(node, offset, want);
    if (copyCached(layer, refs, buf, offset, want)) return want;
    // The window: a chunk too large for memory delivers only the part of it this read needs.
    await this.scheduler.read(layer, refs, (ref, data, at) => {
      if (!signal?.aborted) copyOverlap(ref, data, buf, offset, want, at);
    }, signal, { offset, length: want });
    return want;
  }

  /** Up to `length` bytes of a regular file from `offset` (short at end of file). */
  async read(node: VNode, offset: number, length: number, signal?: AbortSignal): Promise<Buffer> {
    const buf = Buffer.allocUnsafe(Math.max(0, Math.min(length, node.inode.entry.size - offset)));
    return buf.subarray(0, await this.readInto(node, buf, offset, length, signal));
  }

  /**
   * Every chunk of the given regular files, to `sink` as it arrives, in no particular order
   * (sync writes them where they go). All chunks of one layer are asked for at once, so
   * neighbouring chunks of different files share range requests; once one layer failed, no
   * further chunk is delivered. A sparse file's holes are not delivered. A chunk too large for
   * memory arrives in pieces, in order, each awaited before the next; `chunkDone` is true with
   * the last (or only) piece of a chunk.
   */
  async readFiles(
    nodes: Iterable<VNode>,
    sink: (node: VNode, fileOffset: number, data: Buffer, chunkDone: boolean) => void | Promise<void>,
    signal?: AbortSignal,
  ): Promise<void> {
    const byLayer = new Map<Layer, { refs: ChunkRef[]; owner: Map<ChunkRef, VNode> }>();
    for (const node of nodes) {
      const layer = node.inode.layer;
      let group = byLayer.get(layer);
      if (!group) byLayer.set(layer, (group = { refs: [], owner: new Map() }));
      for (const ref of node.inode.entry.chunks) {
        group.refs.push(ref);
        group.owner.set(ref, node);
      }
    }
    let failed = false;
    await allSettledOrThrow(
      [...byLayer].map(([layer, { refs, owner }]) =>
        this.scheduler
          .read(layer, refs, (ref, data, at = 0) => {
            if (failed) throw new StargzError(ErrorCodes.ABORTED, 'read abandoned');
            return sink(owner.get(ref)!, ref.fileOffset + at, data, at + data.length >= ref.size);
          }, signal)
          .catch((err: unknown) => {
            failed = true;
            throw err;
          }),
      ),
    );
  }

  /**
   * Fetches byte ranges of files into the cache in the background, most wanted first. A
   * failure is not reported: the on-demand read of those bytes fetches them again.
   */
  fetchAhead(ranges: Iterable<{ node: VNode; offset: number; length: number }>, kind: BackgroundKind): void {
    const byLayer = new Map<Layer, ChunkRef[]>();
    for (const { node, offset, length } of ranges) {
      const layer = node.inode.layer;
      const refs = byLayer.get(layer) ?? byLayer.set(layer, []).get(layer)!;
      refs.push(...this.chunksFor(node, offset, length));
    }
    for (const [layer, refs] of byLayer) this.scheduler.fetch(layer, refs, kind).catch(() => undefined);
  }

  /** The bytes to read of [offset, offset + length) (short at end of file), a sparse file's holes zeroed in buf. */
  private prepare(node: VNode, buf: Buffer, offset: number, length: number): number {
    const size = node.inode.entry.size;
    const want = offset >= size || length <= 0 ? 0 : Math.min(length, size - offset);
    // A sparse file's holes are the bytes no chunk covers: zeros (buf is not zeroed to begin with).
    if (node.inode.entry.sparse) buf.fill(0, 0, want);
    return want;
  }
}

/** Copies [pos, pos + want) into buf if every chunk of it is in memory; false (and buf unspecified) if not. */
function copyCached(layer: Layer, refs: readonly ChunkRef[], buf: Buffer, pos: number, want: number): boolean {
  const found: Buffer[] = [];
  for (const ref of refs) {
    const data = layer.peek(ref);
    if (!data) return false;
    found.push(data);
  }
  refs.forEach((ref, i) => copyOverlap(ref, found[i]!, buf, pos, want));
  return true;
}

/**
 * Copies the overlap of chunk bytes with [pos, pos + want) of the file into buf (which starts at
 * pos); `data` starts `at` bytes into the chunk (a piece of a chunk too large for memory).
 */
function copyOverlap(ref: ChunkRef, data: Buffer, buf: Buffer, pos: number, want: number, at = 0): void {
  const start = ref.fileOffset + at;
  const from = Math.max(pos, start);
  const to = Math.min(pos + want, start + Math.min(data.length, ref.size - at));
  if (to > from) data.copy(buf, from - pos, from - start, to - start);
}

function notFound(path: string, why?: string): StargzError {
  return new StargzError(ErrorCodes.PATH_NOT_FOUND, `${path}: ${why ?? 'no such file or directory in the image'}`);
}
