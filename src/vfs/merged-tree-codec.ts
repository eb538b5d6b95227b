// The cached form of an image's merged tree (issue 13): what mergeLayers made of its layers,
// stored once by the manifest digest, so that the next open of the image serves listings and
// stat from it alone: no layer is merged again and no layer index decoded (stored-tree.ts makes
// nodes from these columns as they are asked for; a layer's index is decoded at its first read).
//
// The record holds, for every visible node in the sorted pre-order that numbers the inodes, its
// depth, its name and its inode number; for every inode the layer holding it, the path of its
// entry in that layer's index, and what stat, readlink and getxattr answer. Like every cached
// record it is untrusted input: versioned, checksummed, and each node checked as the merge would
// have made it (a parent that is a directory, names sorted and so once per directory, well-formed
// names, inodes numbered in order, no hardlink to a directory, fields in bounds); anything else
// decodes to nothing and the layers are merged again. That each inode's entry exists in its layer
// as the tree says is checked when the entry is first needed (stored-tree.ts).
//
//   u32 nodes, inodes, warnings; str: names, each ended by NUL (the root's is empty); str: entry
//   paths per inode, each ended by NUL ('' when it is the path of its one node); str: symlink
//   targets in inode order, the same; str: warnings, the same; u32 × 2 per node: depth, inode
//   number; u32 × 3 per inode: layer, type | flags << 3 | mode << 9, xattrs; f64 × 4 per inode:
//   uid, gid, mtimeMs, size; f64 × 2 per device inode: major, minor; bytes: xattrs in inode order
import type { Layer } from '../layer/layer.js';
import { MAX_TAR_INDEX_ENTRIES, readXattrs } from '../layer/index-codec.js';
import { MAX_NAME_BYTES } from '../file-index/names.js';
import { NO_XATTRS, type NodeType } from '../file-index/index.js';
import { corrupt, openRecord, Reader, sealRecord, Writer } from '../util/binary-record.js';
import type { MergeResult } from './merge.js';
import type { Inode, VNode } from './node.js';
import { FLAG_IMPLICIT, FLAG_SPARSE, StoredTree } from './stored-tree.js';

export const MERGED_TREE_VERSION = 2;
const MAGIC = 0x54524753; // 'SGRT' read as a little-endian u32
const NODE_U32 = 2;
const INODE_U32 = 3;
const INODE_F64 = 4;
/** Bytes of one name or warning, as the index allows a path (file-index/names.ts bounds them too). */
const MAX_TEXT_BYTES = 64 * 1024;
const TYPES: readonly NodeType[] = ['dir', 'reg', 'symlink', 'hardlink', 'char', 'block', 'fifo'];
const TYPE_CODE = new Map(TYPES.map((t, i) => [t, i]));
const DEVICE_BIT = 4; // of the flags: FLAG_SPARSE, FLAG_IMPLICIT, then this

/** A growable column of u32 or f64. */
class Column<T extends Uint32Array | Float64Array> {
  private at = 0;
  constructor(private data: T) {}
  push(...values: number[]): void {
    if (this.at + values.length > this.data.length) {
      const bigger = new (this.data.constructor as new (n: number) => T)(Math.max(this.data.length * 2, this.at + values.length));
      bigger.set(this.data);
      this.data = bigger;
    }
    for (const v of values) this.data[this.at++] = v;
  }
  values(): T {
    return this.data.subarray(0, this.at) as T;
  }
}

export function encodeMergedTree(tree: { root: VNode; warnings: readonly string[] }, layers: readonly Layer[]): Buffer {
  // Built for trees of millions of nodes: no string per node beyond its name, fields straight into typed arrays.
  const layerOf = new Map(layers.map((l, i) => [l, i]));
  const names: string[] = [];
  const entryPaths: string[] = [];
  const links: string[] = [];
  const nodes = new Column(new Uint32Array(1 << 12));
  const inodes = new Column(new Uint32Array(1 << 12));
  const nums = new Column(new Float64Array(1 << 12));
  const devices: number[] = [];
  const xattrs = new Writer();
  const seen = new Set<Inode>();
  const visit = (node: VNode, depth: number): void => {
    names.push(node.name);
    const inode = node.inode;
    if (!seen.has(inode)) {
      seen.add(inode);
      const e = inode.entry;
      const type = e.type;
      // '' when the entry's path is its one node's own (node.path is '/' + it): the common case.
      const own = e.path;
      const single = type === 'dir' || inode.nlink === 1;
      entryPaths.push(single && node.path.length === own.length + 1 && node.path.startsWith(own, 1) ? '' : own);
      if (type === 'symlink') links.push(e.linkName);
      const device = (type === 'char' || type === 'block') && (e.devMajor !== 0 || e.devMinor !== 0);
      if (device) devices.push(e.devMajor, e.devMinor);
      const flags = (e.sparse && type === 'reg' ? FLAG_SPARSE : 0) | (e.implicit ? FLAG_IMPLICIT : 0) | (device ? DEVICE_BIT : 0);
      const xattrNames = e.xattrs === NO_XATTRS ? [] : Object.keys(e.xattrs);
      inodes.push(layerOf.get(inode.layer)!, TYPE_CODE.get(type)! | (flags << 3) | (e.mode << 9), xattrNames.length);
      nums.push(e.uid, e.gid, e.mtimeMs, type === 'reg' ? e.size : 0);
      for (const name of xattrNames) {
        xattrs.str(name);
        xattrs.bytes(e.xattrs[name]!);
      }
    }
    nodes.push(depth, inode.ino);
    if (node.children) for (const name of [...node.children.keys()].sort()) visit(node.children.get(name)!, depth + 1);
  };
  visit(tree.root, 0);
  const joined = (list: readonly string[]): string => (list.length === 0 ? '' : list.join('\0') + '\0');
  const w = new Writer();
  w.u32(names.length);
  w.u32(seen.size);
  w.u32(tree.warnings.length);
  w.str(joined(names));
  w.str(joined(entryPaths));
  w.str(joined(links));
  w.str(joined(tree.warnings));
  w.array(nodes.values());
  w.array(inodes.values());
  w.array(nums.values());
  w.array(Float64Array.from(devices));
  w.bytes(xattrs.finish());
  return sealRecord(MAGIC, MERGED_TREE_VERSION, w.finish());
}

/** The merged tree of `layers` as stored, or undefined when the record is of another version, damaged, or out of bounds. */
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
  const maxNodes = layers.length * MAX_TAR_INDEX_ENTRIES + 1;
  const count = r.u32();
  const nInodes = r.u32();
  const nWarnings = r.u32();
  if (count === 0 || count > maxNodes || nInodes === 0 || nInodes > count || nWarnings > maxNodes) throw corrupt('counts out of range');
  const names = r.str(count * (MAX_TEXT_BYTES + 1));
  if (names.includes('/')) throw corrupt('a name with a slash');
  const entryPaths = new Texts(r.str(nInodes * (MAX_NAME_BYTES + 1)), MAX_NAME_BYTES);
  const links = new Texts(r.str(nInodes * (MAX_NAME_BYTES + 1)), MAX_NAME_BYTES);
  const warningText = new Texts(r.str(nWarnings * (MAX_TEXT_BYTES + 1)), MAX_TEXT_BYTES);
  const nodes = r.u32s(count * NODE_U32);
  const inodeTable = r.u32s(nInodes * INODE_U32);
  const nums = r.f64s(nInodes * INODE_F64);
  const deviceNums = r.f64s(undefined);
  const xattrBytes = new Reader(r.bytes(Number.MAX_SAFE_INTEGER));
  if (!r.atEnd()) throw corrupt('bytes after the last column');

  // Per inode: its fields, checked.
  const layerOf = new Uint32Array(nInodes);
  const typeOf = new Uint8Array(nInodes);
  const mode = new Uint32Array(nInodes);
  const flags = new Uint8Array(nInodes);
  const entryPathAt = new Int32Array(nInodes + 1);
  const linkAt = new Int32Array(nInodes * 2);
  const devices = deviceNums.length > 0 ? new Float64Array(nInodes * 2) : undefined;
  const xattrs = new Map<number, Record<string, Buffer>>();
  let deviceAt = 0;
  let bytes = 0;
  for (let k = 0; k < nInodes; k++) {
    const layer = inodeTable[k * INODE_U32]!;
    const bits = inodeTable[k * INODE_U32 + 1]!;
    const nx = inodeTable[k * INODE_U32 + 2]!;
    const type = TYPES[bits & 7];
    const f = (bits >>> 3) & 0o77;
    const m = bits >>> 9;
    if (layer >= layers.length || type === undefined || type === 'hardlink' || m > 0o7777 || f > 7) throw corrupt('an inode out of range');
    if (f & FLAG_SPARSE && type !== 'reg') throw corrupt('a sparse file that is not a regular file');
    layerOf[k] = layer;
    typeOf[k] = bits & 7;
    mode[k] = m;
    flags[k] = f & (FLAG_SPARSE | FLAG_IMPLICIT);
    for (let j = 0; j < INODE_F64; j++) {
      const v = nums[k * INODE_F64 + j]!;
      // mtimeMs (the third) may be before 1970; nothing else is negative.
      if (!Number.isSafeInteger(v) || (v < 0 && j !== 2)) throw corrupt('a number out of range');
    }
    if (type !== 'reg' && nums[k * INODE_F64 + 3] !== 0) throw corrupt('a size on what is not a regular file');
    bytes += nums[k * INODE_F64 + 3]!;
    entryPathAt[k] = entryPaths.skip();
    if (type === 'symlink') {
      linkAt[k * 2] = links.skip();
      linkAt[k * 2 + 1] = links.at - 1;
    }
    if (f & DEVICE_BIT) {
      if ((type !== 'char' && type !== 'block') || deviceAt + 2 > deviceNums.length) throw corrupt('device numbers out of place');
      const major = deviceNums[deviceAt++]!;
      const minor = deviceNums[deviceAt++]!;
      if (!Number.isSafeInteger(major) || !Number.isSafeInteger(minor) || major < 0 || minor < 0) throw corrupt('a device number out of range');
      devices![k * 2] = major;
      devices![k * 2 + 1] = minor;
    }
    if (nx > 0) xattrs.set(k + 1, readXattrs(xattrBytes, nx));
  }
  entryPathAt[nInodes] = entryPaths.at;
  if (!entryPaths.atEnd() || !links.atEnd() || deviceAt !== deviceNums.length || !xattrBytes.atEnd()) throw corrupt('columns of different lengths');

  // Per node: in pre-order, under a directory, after its previous sibling, numbered in order.
  const nameAt = new Uint32Array(count + 1);
  const end = new Uint32Array(count);
  const inoOf = new Uint32Array(count);
  const nlink = new Uint32Array(nInodes);
  const names1 = new Uint8Array(nInodes); // inodes with one name so far (for entry paths given as '')
  const stack: number[] = []; // node indexes of the open directories
  const lastChild: number[] = []; // per depth: the previous sibling's node index, or -1
  let nameStart = 0;
  let nextIno = 1;
  for (let i = 0; i < count; i++) {
    const depth = nodes[i * NODE_U32]!;
    const ino = nodes[i * NODE_U32 + 1]!;
    const nameEnd = names.indexOf('\0', nameStart);
    if (nameEnd < 0 || nameEnd - nameStart > MAX_TEXT_BYTES) throw corrupt('names out of range');
    nameAt[i] = nameStart;
    if (depth > stack.length || (i === 0) !== (depth === 0) || (depth === 0) !== (nameEnd === nameStart) || !wellFormedName(names, nameStart, nameEnd)) {
      throw corrupt('a node out of place');
    }
    while (stack.length > depth) end[stack.pop()!] = i;
    if (depth > 0) {
      const parent = stack[depth - 1]!;
      if (TYPES[typeOf[inoOf[parent]! - 1]!] !== 'dir') throw corrupt('a name below a file');
      const prev = lastChild[depth]!;
      if (prev >= 0 && compareNames(names, nameAt[prev]!, nameAt[prev + 1]! - 1, nameStart, nameEnd) >= 0) throw corrupt('names unsorted, or a name twice');
    }
    if (ino === nextIno) {
      nextIno++;
    } else if (ino === 0 || ino > nextIno || TYPES[typeOf[ino - 1]!] === 'dir') {
      throw corrupt('inodes out of order, or a hardlink to a directory');
    }
    inoOf[i] = ino;
    nlink[ino - 1]!++;
    names1[ino - 1] = nlink[ino - 1] === 1 ? 1 : 0;
    if (i === 0 && TYPES[typeOf[0]!] !== 'dir') throw corrupt('a root that is not a directory');
    if (depth > 0 && TYPES[typeOf[ino - 1]!] === 'dir') nlink[inoOf[stack[depth - 1]!]! - 1]!++;
    nameStart = nameEnd + 1;
    if (TYPES[typeOf[ino - 1]!] === 'dir') {
      stack.push(i);
      lastChild[depth + 1] = -1;
    }
    lastChild[depth] = i;
  }
  nameAt[count] = nameStart;
  while (stack.length > 0) end[stack.pop()!] = count;
  for (let i = 0; i < count; i++) if (end[i] === 0) end[i] = i + 1; // files: a subtree of one
  if (nameStart !== names.length || nextIno !== nInodes + 1) throw corrupt('columns of different lengths');
  const ownPath = entryPaths.text;
  for (let k = 0; k < nInodes; k++) {
    const dir = TYPES[typeOf[k]!] === 'dir';
    // A directory's link count is 2 + its subdirectories (counted above from 1: its one name).
    if (dir) nlink[k]!++;
    if (entryPathAt[k] === entryPathAt[k + 1]! - 1 && !dir && !names1[k]) throw corrupt('a hardlinked inode without its entry path');
  }
  const warnings: string[] = [];
  for (let k = 0; k < nWarnings; k++) warnings.push(warningText.next());
  if (!warningText.atEnd()) throw corrupt('columns of different lengths');

  const linkText = links.text;
  const tree = new StoredTree({
    layers,
    names,
    nameAt,
    end,
    inoOf,
    layerOf,
    types: TYPES,
    typeOf,
    mode,
    flags,
    nlink,
    nums,
    devices,
    entryPath: (ino) => (entryPathAt[ino]! - 1 === entryPathAt[ino - 1]! ? undefined : ownPath.slice(entryPathAt[ino - 1]!, entryPathAt[ino]! - 1)),
    linkName: (ino) => (TYPES[typeOf[ino - 1]!] === 'symlink' ? linkText.slice(linkAt[(ino - 1) * 2]!, linkAt[(ino - 1) * 2 + 1]!) : ''),
    xattrs,
  });
  return { root: tree.root, warnings, totals: { bytes, inodes: nInodes } };
}

/** Not '.' or '..' (no name holds a '/': checked once for all; empty: the caller checks). */
function wellFormedName(s: string, from: number, to: number): boolean {
  const n = to - from;
  return !(s.charCodeAt(from) === 46 && (n === 1 || (n === 2 && s.charCodeAt(from + 1) === 46)));
}

/** Compares two names of one string in UTF-16 code unit order, as Array.prototype.sort orders them. */
function compareNames(s: string, a: number, aEnd: number, b: number, bEnd: number): number {
  for (; a < aEnd && b < bEnd; a++, b++) {
    const d = s.charCodeAt(a) - s.charCodeAt(b);
    if (d !== 0) return d;
  }
  return aEnd - a - (bEnd - b);
}

/** A run of strings, each ended by NUL, stepped through in turn. */
class Texts {
  at = 0;
  constructor(
    readonly text: string,
    private readonly maxBytes: number,
  ) {}
  /** Steps over the next string; answers where it starts. */
  skip(): number {
    const start = this.at;
    const end = this.text.indexOf('\0', start);
    if (end < 0 || end - start > this.maxBytes) throw corrupt('strings out of range');
    this.at = end + 1;
    return start;
  }
  next(): string {
    const start = this.skip();
    return this.text.slice(start, this.at - 1);
  }
  atEnd(): boolean {
    return this.at === this.text.length;
  }
}
