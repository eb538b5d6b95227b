// The one builder of a layer's file index, for both formats. Entries arrive in layer order and
// are applied the way an OCI unpacker (umoci, containerd's archive.Apply) applies a tar:
//   - a later entry for a path replaces the earlier one; a directory again keeps its contents;
//   - a directory replaced by a non-directory takes its contents with it;
//   - missing parent directories are implied (0755, root, mtime 0; `implicit`);
//   - an entry below a path that is not a directory is refused: umoci fails with "mkdir parent:
//     not a directory" and containerd with ENOTDIR, so no unpacker produces that tree;
//   - a hardlink takes its target's size, digest and chunks once the layer is complete.
import { baseName, parentEntryName } from './names.js';
import type { Compression } from '../estargz/footer.js';
import { implicitDir, type ChunkRef, type IndexEntry, type LayerIndex, type LazyChunkRef } from './model.js';

export const MAX_HARDLINK_HOPS = 64;

export interface BuilderOptions {
  /** Makes the format's error (TOC_INVALID for a TOC, CORRUPT_DATA for a tar stream). */
  invalid: (message: string) => Error;
  /** Most paths (implicit parents included) the index may hold. */
  maxEntries: number;
  /**
   * A hardlink whose target is not in this layer: 'refuse' (a TOC must be complete, as
   * estargz's reader requires), or 'keep' (a tar layer may link into a layer below; the
   * merge resolves it or skips it with a warning).
   */
  missingLinkTarget: 'refuse' | 'keep';
}

export interface IndexMeta {
  noPrefetch: boolean;
  prefetchEnd?: number;
  compression: Compression;
  tocOffset: number;
}

export class IndexBuilder<C extends ChunkRef = ChunkRef> {
  private readonly entries = new Map<string, IndexEntry<C>>();
  /** dir -> child names: made only once a directory is replaced, to remove its subtree. */
  private kids: Map<string, Set<string>> | undefined;

  constructor(private readonly opts: BuilderOptions) {
    this.entries.set('', implicitDir<C>(''));
  }

  get size(): number {
    return this.entries.size;
  }

  get(path: string): IndexEntry<C> | undefined {
    return this.entries.get(path);
  }

  /** Applies one entry; its path must be normalized (names.ts). */
  add(entry: IndexEntry<C>): void {
    const path = entry.path;
    if (path === '') {
      if (entry.type !== 'dir') throw this.opts.invalid('the root entry is not a directory');
      this.entries.set('', entry);
      return;
    }
    const parent = parentEntryName(path);
    this.ensureDir(parent);
    const old = this.entries.get(path);
    if (old && old.type === 'dir' && entry.type !== 'dir') this.removeSubtree(path);
    this.entries.set(path, entry);
    if (this.kids) {
      this.kids.get(parent)!.add(baseName(path));
      if (entry.type === 'dir' && !this.kids.has(path)) this.kids.set(path, new Set());
    }
    this.checkSize();
  }

  finish(meta: IndexMeta): LayerIndex<C> {
    this.resolveHardlinks();
    this.kids = undefined;
    return new FileIndex(this.entries, chunksByOffset(this.entries), meta);
  }

  private checkSize(): void {
    if (this.entries.size > this.opts.maxEntries) throw this.opts.invalid(`layer has more than ${this.opts.maxEntries} paths`);
  }

  /** Creates the missing directories down to `dir`; an existing non-directory on the way is refused. */
  private ensureDir(dir: string): void {
    let found = this.entries.get(dir);
    if (found?.type === 'dir') return;
    const missing: string[] = [];
    let p = dir;
    while (!found) {
      missing.push(p);
      p = parentEntryName(p);
      found = this.entries.get(p);
    }
    if (found.type !== 'dir') throw this.opts.invalid(`${JSON.stringify(p)} is not a directory but has entries below it`);
    for (let i = missing.length - 1; i >= 0; i--) {
      const d = missing[i]!;
      this.entries.set(d, implicitDir<C>(d));
      if (this.kids) {
        this.kids.set(d, new Set());
        this.kids.get(parentEntryName(d))!.add(baseName(d));
      }
    }
    this.checkSize();
  }

  /** A directory replaced by a non-directory takes its contents with it (tar semantics). */
  private removeSubtree(dir: string): void {
    const kids = (this.kids ??= childSets(this.entries));
    const stack = [dir];
    while (stack.length > 0) {
      const d = stack.pop()!;
      const names = kids.get(d);
      kids.delete(d);
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
    const { invalid } = this.opts;
    for (const entry of this.entries.values()) {
      if (entry.type !== 'hardlink') continue;
      let target = this.entries.get(entry.linkName);
      for (let hops = 0; target && target.type === 'hardlink'; hops++) {
        if (hops >= MAX_HARDLINK_HOPS) throw invalid(`hardlink ${JSON.stringify(entry.path)}: chain too long or cyclic`);
        target = this.entries.get(target.linkName);
      }
      if (!target) {
        if (this.opts.missingLinkTarget === 'keep') continue;
        throw invalid(`hardlink ${JSON.stringify(entry.path)} points to missing ${JSON.stringify(entry.linkName)}`);
      }
      if (target.type === 'dir') throw invalid(`hardlink ${JSON.stringify(entry.path)} points to a directory`);
      if (target.type === 'reg') {
        entry.size = target.size;
        entry.chunks = target.chunks;
        if (target.digest) entry.digest = target.digest;
        if (target.sparse) entry.sparse = true;
      }
    }
  }
}

/** dir -> child names, for every directory. */
function childSets(entries: ReadonlyMap<string, IndexEntry<ChunkRef>>): Map<string, Set<string>> {
  const kids = new Map<string, Set<string>>();
  for (const [path, e] of entries) if (e.type === 'dir' && !kids.has(path)) kids.set(path, new Set());
  for (const path of entries.keys()) {
    if (path === '') continue;
    let set = kids.get(parentEntryName(path));
    if (!set) kids.set(parentEntryName(path), (set = new Set()));
    set.add(baseName(path));
  }
  return kids;
}

/** Every chunk with a compressed extent, by offset, one per distinct offset. */
export function chunksByOffset(entries: ReadonlyMap<string, IndexEntry<ChunkRef>>): LazyChunkRef[] {
  const all: LazyChunkRef[] = [];
  let sorted = true;
  for (const e of entries.values()) {
    if (e.type !== 'reg') continue; // a hardlink shares its target's chunks
    for (const c of e.chunks) {
      if (!hasExtent(c)) continue;
      if (all.length > 0 && c.offset < all[all.length - 1]!.offset) sorted = false;
      all.push(c);
    }
  }
  if (!sorted) all.sort((a, b) => a.offset - b.offset);
  let n = 0;
  for (const c of all) if (n === 0 || c.offset !== all[n - 1]!.offset) all[n++] = c;
  all.length = n;
  return all;
}

export function hasExtent(c: ChunkRef): c is LazyChunkRef {
  return c.offset !== undefined && c.end !== undefined;
}

/** A built index: the children lists are made on first use (most readers never ask). */
class FileIndex<C extends ChunkRef> implements LayerIndex<C> {
  declare prefetchEnd?: number;
  declare noPrefetch: boolean;
  declare compression: Compression;
  declare tocOffset: number;
  private lists: Map<string, string[]> | undefined;

  constructor(
    readonly entries: Map<string, IndexEntry<C>>,
    readonly chunksByOffset: readonly LazyChunkRef[],
    meta: IndexMeta,
  ) {
    Object.assign(this, meta);
  }

  get children(): Map<string, string[]> {
    if (!this.lists) {
      this.lists = new Map();
      for (const [dir, names] of childSets(this.entries)) this.lists.set(dir, [...names].sort());
    }
    return this.lists;
  }
}
