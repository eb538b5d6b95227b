// A merged tree opened from its cached form (merged-tree-codec.ts) without decoding any layer
// index (issue 13): columns of the record, checked once, with nodes made only when asked for.
// A directory's children become VNodes the first time its `children` is read; an inode's stat
// fields, symlink target and xattrs come from the columns; what only the layer index has (chunks,
// digests, owner names) is looked up there on first use, and then decodes that layer's index.
import { ErrorCodes, StargzError } from '../errors.js';
import { implicitDir, NO_CHUNKS, NO_XATTRS, type ChunkRef, type IndexEntry, type NodeType } from '../file-index/index.js';
import type { Layer } from '../layer/layer.js';
import type { Inode, VNode } from './node.js';

/** What the codec checked and hands over: one row per node (pre-order, children sorted) and per inode. */
export interface TreeColumns {
  layers: readonly Layer[];
  /** Every name, each ended by NUL; nameAt[i] is where node i's starts (nameAt[count] the end). */
  names: string;
  nameAt: Uint32Array;
  /** Node i's subtree is nodes [i, end[i]). */
  end: Uint32Array;
  /** Node i's inode number (1-based). */
  inoOf: Uint32Array;
  /** Per inode (index ino - 1): */
  layerOf: Uint32Array;
  types: readonly NodeType[];
  typeOf: Uint8Array;
  mode: Uint32Array;
  /** 1 sparse, 2 implicit. */
  flags: Uint8Array;
  nlink: Uint32Array;
  /** uid, gid, mtimeMs, size. */
  nums: Float64Array;
  /** major, minor per inode (zeros for all but devices). */
  devices: Float64Array | undefined;
  /** The entry's path in its layer's index, or undefined: the path of the node naming it (one name only). */
  entryPath: (ino: number) => string | undefined;
  linkName: (ino: number) => string;
  xattrs: ReadonlyMap<number, Record<string, Buffer>>;
}

export const FLAG_SPARSE = 1;
export const FLAG_IMPLICIT = 2;

export class StoredTree {
  private readonly inodes: Array<Inode | undefined>;
  readonly root: VNode;

  constructor(private readonly c: TreeColumns) {
    this.inodes = new Array<Inode | undefined>(c.layerOf.length);
    this.root = new StoredNode(this, 0, '', '/');
  }

  isDir(at: number): boolean {
    return this.c.types[this.c.typeOf[this.c.inoOf[at]! - 1]!] === 'dir';
  }

  inodeOf(at: number, path: string): Inode {
    const ino = this.c.inoOf[at]!;
    let inode = this.inodes[ino - 1];
    if (!inode) {
      const entry = new StoredEntry(this.c, ino, this.c.entryPath(ino) ?? path.slice(1));
      inode = { ino, entry, layer: this.c.layers[this.c.layerOf[ino - 1]!]!, nlink: this.c.nlink[ino - 1]! };
      this.inodes[ino - 1] = inode;
    }
    return inode;
  }

  childrenOf(parent: StoredNode, at: number): Map<string, VNode> {
    const { names, nameAt, end } = this.c;
    const kids = new Map<string, VNode>();
    const prefix = parent.path === '/' ? '/' : parent.path + '/';
    for (let i = at + 1; i < end[at]!; i = end[i]!) {
      const name = names.slice(nameAt[i]!, nameAt[i + 1]! - 1);
      kids.set(name, new StoredNode(this, i, name, prefix + name));
    }
    return kids;
  }
}

class StoredNode implements VNode {
  private kids: Map<string, VNode> | undefined;
  private ownInode: Inode | undefined;

  constructor(
    private readonly tree: StoredTree,
    private readonly at: number,
    readonly name: string,
    readonly path: string,
  ) {}

  get inode(): Inode {
    return (this.ownInode ??= this.tree.inodeOf(this.at, this.path));
  }

  get children(): Map<string, VNode> | undefined {
    if (this.kids) return this.kids;
    return this.tree.isDir(this.at) ? (this.kids = this.tree.childrenOf(this, this.at)) : undefined;
  }
}

/**
 * An inode's entry: the stat fields from the tree's columns; chunks, digest and owner names from
 * the layer's own entry, found on first use. That entry must be the kind of file the tree says
 * (same type, size and sparseness): a tree that names what its layer does not have is damaged,
 * and nothing of it is read (CORRUPT_DATA).
 */
class StoredEntry implements IndexEntry {
  private layerEntry: IndexEntry | undefined;

  constructor(
    private readonly c: TreeColumns,
    private readonly ino: number,
    readonly path: string,
  ) {}

  private num(k: number): number {
    return this.c.nums[(this.ino - 1) * 4 + k]!;
  }
  get type(): NodeType {
    return this.c.types[this.c.typeOf[this.ino - 1]!]!;
  }
  get mode(): number {
    return this.c.mode[this.ino - 1]!;
  }
  get uid(): number {
    return this.num(0);
  }
  get gid(): number {
    return this.num(1);
  }
  get mtimeMs(): number {
    return this.num(2);
  }
  get size(): number {
    return this.num(3);
  }
  get linkName(): string {
    return this.c.linkName(this.ino);
  }
  get devMajor(): number {
    return this.c.devices?.[(this.ino - 1) * 2] ?? 0;
  }
  get devMinor(): number {
    return this.c.devices?.[(this.ino - 1) * 2 + 1] ?? 0;
  }
  get xattrs(): Record<string, Buffer> {
    return this.c.xattrs.get(this.ino) ?? NO_XATTRS;
  }
  get sparse(): true | undefined {
    return this.c.flags[this.ino - 1]! & FLAG_SPARSE ? true : undefined;
  }
  get implicit(): boolean | undefined {
    return this.c.flags[this.ino - 1]! & FLAG_IMPLICIT ? true : undefined;
  }
  get chunks(): ChunkRef[] {
    return this.type === 'reg' ? this.full().chunks : NO_CHUNKS;
  }
  get digest(): string | undefined {
    return this.type === 'reg' ? this.full().digest : undefined;
  }
  get userName(): string | undefined {
    return this.full().userName;
  }
  get groupName(): string | undefined {
    return this.full().groupName;
  }

  private full(): IndexEntry {
    if (this.layerEntry) return this.layerEntry;
    const layer = this.c.layers[this.c.layerOf[this.ino - 1]!]!;
    // The first layer's root may be implied (merge.ts).
    const e = layer.index.entries.get(this.path) ?? (this.ino === 1 ? implicitDir('') : undefined);
    if (!e || e.type !== this.type || (this.type === 'reg' && (e.size !== this.size || Boolean(e.sparse) !== Boolean(this.sparse)))) {
      throw new StargzError(ErrorCodes.CORRUPT_DATA, `the cached merged tree names /${this.path}, which its layer does not have as it says: run \`stargz-get cache clear\``);
    }
    return (this.layerEntry = e);
  }
}
