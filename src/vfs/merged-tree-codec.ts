// The cached form of an image's merged tree (issue 13): what mergeLayers made of its layers,
// stored once by the manifest digest, so that the next open of the image names each node
// from it instead of sorting and merging every layer's paths again.
//
// The record names, for every visible node in the sorted pre-order that numbers the inodes:
// its depth, its name, and either the earlier inode it shares (a hardlink) or the layer and
// the path in that layer's index of the entry it shows. Everything else — metadata, chunks,
// link counts, totals — is taken again from the layer indexes, which are verified on their
// own (layer/index-codec.ts). Like every cached record it is untrusted input: versioned,
// checksummed, and each node checked as the merge would have made it (a parent that is a
// directory, a name once per directory, an entry that exists, no hardlink to a directory);
// anything else decodes to nothing and the layers are merged again.
//
//   u32 nodes, u32 warnings; str: names, each ended by NUL (the root's is empty);
//   str: entry paths of the new inodes, each ended by NUL ('' when it is the node's own path);
//   str: warnings, each ended by NUL; u32 × 3 per node: depth, shared inode number (0: a new
//   inode), layer (of a new inode)
import type { Layer } from '../layer/layer.js';
import { implicitDir, type IndexEntry } from '../estargz/index.js';
import { corrupt, openRecord, Reader, sealRecord, Writer } from '../util/binary-record.js';
import type { MergeResult } from './merge.js';
import type { Inode, VNode } from './node.js';

export const MERGED_TREE_VERSION = 1;
const MAGIC = 0x54524753; // 'SGRT' read as a little-endian u32
const NODE_U32 = 3;
/** Bytes of one name or warning, as the index allows a path (file-index/names.ts bounds them too). */
const MAX_TEXT_BYTES = 64 * 1024;

export function encodeMergedTree(tree: MergeResult, layers: readonly Layer[]): Buffer {
  // Built for trees of millions of nodes: no string per node (names are the nodes' own, a
  // path is compared in place), node fields straight into a typed array.
  const layerOf = new Map(layers.map((l, i) => [l, i]));
  const names: string[] = [];
  const entryPaths: string[] = [];
  let nodes = new Uint32Array(NODE_U32 * (tree.byPath.size + 1));
  let used = 0;
  const seen = new Set<Inode>();
  const visit = (node: VNode, depth: number): void => {
    names.push(node.name);
    const shared = seen.has(node.inode);
    if (!shared) {
      seen.add(node.inode);
      // '' when the entry's path is the node's own (node.path is '/' + it): the common case.
      const own = node.inode.entry.path;
      entryPaths.push(node.path.length === own.length + 1 && node.path.startsWith(own, 1) ? '' : own);
    }
    if (used + NODE_U32 > nodes.length) {
      const bigger = new Uint32Array(nodes.length * 2);
      bigger.set(nodes);
      nodes = bigger;
    }
    nodes[used++] = depth;
    nodes[used++] = shared ? node.inode.ino : 0;
    nodes[used++] = shared ? 0 : layerOf.get(node.inode.layer)!;
    if (node.children) for (const name of [...node.children.keys()].sort()) visit(node.children.get(name)!, depth + 1);
  };
  visit(tree.root, 0);
  const joined = (list: string[]): string => (list.length === 0 ? '' : list.join('\0') + '\0');
  const w = new Writer();
  w.u32(names.length);
  w.u32(tree.warnings.length);
  w.str(joined(names));
  w.str(joined(entryPaths));
  w.str(joined(tree.warnings));
  w.array(nodes.subarray(0, used));
  return sealRecord(MAGIC, MERGED_TREE_VERSION, w.finish());
}

/** The merged tree of `layers` as stored, or undefined when the record is of another version, damaged, or does not fit these layers. */
export function decodeMergedTree(data: Buffer, layers: readonly Layer[]): MergeResult | undefined {
  const body = openRecord(data, MAGIC, MERGED_TREE_VERSION);
  if (!body) return undefined;
  try {
    return decodeBody(new Reader(body), layers);
  } catch {
    return undefined;
  }
}

function decodeBody(r: Reader, layers: readonly Layer[]): MergeResult {
  // Every visible name is one entry of some layer (the root may be implied).
  const maxNodes = layers.reduce((n, l) => n + l.index.entries.size, 1);
  const count = r.u32();
  const nWarnings = r.u32();
  if (count === 0 || count > maxNodes || nWarnings > maxNodes) throw corrupt('counts out of range');
  const names = new Texts(r.str(count * (MAX_TEXT_BYTES + 1)));
  const entryPaths = new Texts(r.str(count * (MAX_TEXT_BYTES + 1)));
  const warningText = new Texts(r.str(nWarnings * (MAX_TEXT_BYTES + 1)));
  const table = r.u32s(count * NODE_U32);
  if (!r.atEnd()) throw corrupt('bytes after the last column');

  const inodes: Inode[] = [];
  const byPath = new Map<string, VNode>();
  const stack: VNode[] = [];
  let bytes = 0;
  for (let i = 0; i < count; i++) {
    const depth = table[i * NODE_U32]!;
    const sharedIno = table[i * NODE_U32 + 1]!;
    const name = names.next();
    if (depth > stack.length || (i === 0) !== (depth === 0) || (depth === 0) !== (name === '') || name.includes('/') || name === '.' || name === '..') {
      throw corrupt('a node out of place');
    }
    stack.length = depth;
    const parent = stack[depth - 1];
    if (parent && (!parent.children || parent.children.has(name))) throw corrupt('a name twice, or below a file');
    const path = !parent ? '/' : parent.path === '/' ? '/' + name : parent.path + '/' + name;
    let inode: Inode;
    if (sharedIno !== 0) {
      inode = inodes[sharedIno - 1]!;
      if (!inode || inode.entry.type === 'dir') throw corrupt('a hardlink to a directory or to nothing');
      inode.nlink++;
    } else {
      const layer = layers[table[i * NODE_U32 + 2]!];
      const own = entryPaths.next();
      const entry: IndexEntry | undefined = layer && (layer.index.entries.get(own === '' ? path.slice(1) : own) ?? (i === 0 && layer === layers[0] ? implicitDir('') : undefined));
      if (!layer || !entry || entry.type === 'hardlink' || (i === 0 && entry.type !== 'dir')) throw corrupt('an entry the layers do not have');
      inode = { ino: inodes.length + 1, entry, layer, nlink: entry.type === 'dir' ? 2 : 1 };
      inodes.push(inode);
      bytes += entry.size;
    }
    const node: VNode = inode.entry.type === 'dir' ? { name, path, inode, children: new Map() } : { name, path, inode };
    if (parent) {
      parent.children!.set(name, node);
      if (node.children) parent.inode.nlink++;
    }
    byPath.set(path, node);
    stack.push(node);
  }
  const warnings: string[] = [];
  for (let k = 0; k < nWarnings; k++) warnings.push(warningText.next());
  if (!names.atEnd() || !entryPaths.atEnd() || !warningText.atEnd()) throw corrupt('columns of different lengths');
  return { root: byPath.get('/')!, byPath, warnings, totals: { bytes, inodes: inodes.length } };
}

/** A run of strings, each ended by NUL, read in turn. */
class Texts {
  private at = 0;
  constructor(private readonly text: string) {}
  next(): string {
    const end = this.text.indexOf('\0', this.at);
    if (end < 0 || end - this.at > MAX_TEXT_BYTES) throw corrupt('strings out of range');
    const s = this.text.slice(this.at, end);
    this.at = end + 1;
    return s;
  }
  atEnd(): boolean {
    return this.at === this.text.length;
  }
}
