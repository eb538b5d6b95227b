// The image's merged filesystem: one read-only view of all layers that both clients —
// the FUSE adapter and the sync walker — use. Metadata comes from the TOCs; bytes come
// from Layer.readChunks (cache first, then range fetches).
import { ErrorCodes, StargzError } from '../errors.js';
import type { ChunkRef } from '../estargz/index.js';
import type { Layer, ReadOptions } from '../layer/layer.js';
import { mergeLayers } from './merge.js';
import { statOf, visibleXattrs, type VNode, type VStat } from './node.js';

const MAX_SYMLINK_HOPS = 40; // as Linux's ELOOP limit

export class MergedFs {
  readonly root: VNode;
  readonly warnings: string[];
  private readonly byPath: Map<string, VNode>;

  constructor(readonly layers: readonly Layer[]) {
    const merged = mergeLayers(layers);
    this.root = merged.root;
    this.byPath = merged.byPath;
    this.warnings = merged.warnings;
  }

  /** Exact lookup of an absolute, normalized path (no symlink resolution): what FUSE asks. */
  get(path: string): VNode | undefined {
    return this.byPath.get(path);
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

  readlink(node: VNode): string {
    return node.inode.entry.linkName;
  }

  xattrs(node: VNode): Record<string, Buffer> {
    return visibleXattrs(node.inode.entry);
  }

  /** Pre-order walk of a subtree, directories before their contents, names sorted. */
  *walk(node: VNode): Generator<VNode> {
    yield node;
    if (node.children) for (const child of this.readdir(node)) yield* this.walk(child);
  }

  /** The chunks of a regular file that overlap [offset, offset + length). */
  chunksFor(node: VNode, offset = 0, length = Infinity): ChunkRef[] {
    const chunks = node.inode.entry.chunks;
    const end = offset + length;
    // Chunks are sorted and do not overlap (contiguous unless the file is sparse): binary-search
    // the first one that ends after offset.
    let lo = 0;
    let hi = chunks.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const c = chunks[mid]!;
      if (c.fileOffset + c.size <= offset) lo = mid + 1;
      else hi = mid;
    }
    const out: ChunkRef[] = [];
    for (let i = lo; i < chunks.length && chunks[i]!.fileOffset < end; i++) out.push(chunks[i]!);
    return out;
  }

  /** Up to `length` bytes of a regular file from `offset` (short at end of file). */
  async read(node: VNode, offset: number, length: number, options?: ReadOptions): Promise<Buffer> {
    const size = node.inode.entry.size;
    if (offset >= size || length <= 0) return Buffer.alloc(0);
    const want = Math.min(length, size - offset);
    // A sparse file's holes are the bytes no chunk covers: zeros.
    const out = node.inode.entry.sparse ? Buffer.alloc(want) : Buffer.allocUnsafe(want);
    const refs = this.chunksFor(node, offset, want);
    await node.inode.layer.readChunks(
      refs,
      (ref, data) => {
        // Copy the overlap of this chunk with [offset, offset + want).
        const from = Math.max(offset, ref.fileOffset);
        const to = Math.min(offset + want, ref.fileOffset + ref.size);
        if (to > from) data.copy(out, from - offset, from - ref.fileOffset, to - ref.fileOffset);
      },
      options,
    );
    return out;
  }
}

function notFound(path: string, why?: string): StargzError {
  return new StargzError(ErrorCodes.PATH_NOT_FOUND, `${path}: ${why ?? 'no such file or directory in the image'}`);
}
