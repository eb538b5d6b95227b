// What changed between two images, from their merged trees (the TOCs): docker diff's
// letters, A (added), C (changed), D (deleted), one per path, sorted by path in byte order.
// No I/O of its own: it reads the two trees through MergedFs's public methods only. The one
// exception is a regular file whose index has no content digest (a plain tar+gzip layer,
// which was fetched whole to be indexed): its bytes are hashed through MergedFs.read, which
// the cache serves.
//
// Semantics (README, "diff"):
// - C when type, permission bits, uid, gid, size, content digest, symlink target, device
//   numbers or visible xattrs differ; and mtime, for anything but a directory, unless
//   ignoreMtime. docker's and containerd's change walkers compare mtime the same way: a
//   directory's mtime follows its entries, so it tells nothing of its own.
// - A parent directory is not reported C merely because something below it changed (docker
//   does, for its tar export; a path below already says so).
// - A deleted directory is one D line; an added directory is an A line and one per entry
//   below it (as docker diff prints them).
// - A hardlink is a regular file here: compared by its content and metadata, not by which
//   names share its inode.
import { createHash } from 'node:crypto';
import { ErrorCodes, StargzError } from '../errors.js';
import type { Layer } from '../layer/layer.js';
import type { MergedFs } from '../vfs/merged-fs.js';
import { S_IFMT, type VNode } from '../vfs/node.js';

export type ChangeKind = 'A' | 'C' | 'D';

/** The fields a C change names, in this order. */
export const CHANGE_FIELDS = ['type', 'mode', 'uid', 'gid', 'size', 'digest', 'linkTarget', 'device', 'xattrs', 'mtime'] as const;
export type ChangeField = (typeof CHANGE_FIELDS)[number];

export interface Change {
  /** Absolute path inside the images. */
  path: string;
  change: ChangeKind;
  /** C only: what differs. */
  fields?: ChangeField[];
}

export interface DiffOptions {
  /** Compare this subtree only (an exact path, symlinks not followed); default the root. */
  path?: string;
  /** Do not count mtime (directories' never counts). */
  ignoreMtime?: boolean;
  signal?: AbortSignal;
}

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const HASH_PIECE = 1 << 20;

/** How many bottom layers two images share: equal digests at the same positions. */
export function sharedLayerCount(a: readonly string[], b: readonly string[]): number {
  let n = 0;
  while (n < a.length && n < b.length && a[n] === b[n]) n++;
  return n;
}

/** Same layer digests in the same order: the images' trees are equal, nothing to walk. */
export function sameLayers(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && sharedLayerCount(a, b) === a.length;
}

export function layerDigests(fs: MergedFs): string[] {
  return fs.layers.map((l) => l.descriptor.digest);
}

/** Byte order of UTF-8 paths (what `LC_ALL=C sort` gives), not JavaScript's UTF-16 order. */
export function comparePaths(x: string, y: string): number {
  return Buffer.compare(Buffer.from(x, 'utf8'), Buffer.from(y, 'utf8'));
}

function normalize(path: string): string {
  const parts = path.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw new StargzError(ErrorCodes.USAGE, `${path}: a diff path may not contain '..'`);
  return '/' + parts.join('/');
}

/**
 * The changes from image `a` to image `b` (A: only in b, D: only in a, C: in both, differing),
 * sorted by path. Layers both images share at the same position are compared by digest: equal
 * layer lists answer [] without walking, and an entry both trees take from the same shared
 * layer is not compared field by field.
 */
export async function diffTrees(a: MergedFs, b: MergedFs, options: DiffOptions = {}): Promise<Change[]> {
  const digestsA = layerDigests(a);
  const digestsB = layerDigests(b);
  if (sameLayers(digestsA, digestsB)) {
    const path = normalize(options.path ?? '/');
    if (!a.get(path)) throw new StargzError(ErrorCodes.PATH_NOT_FOUND, `${path}: no such file or directory in either image`);
    return [];
  }
  const shared = sharedLayerCount(digestsA, digestsB);
  const positionA = new Map<Layer, number>(a.layers.map((l, i) => [l, i]));
  const positionB = new Map<Layer, number>(b.layers.map((l, i) => [l, i]));
  const out: Change[] = [];
  const signal = options.signal;

  // Everything compared comes from the node's inode (a hardlink's is its target's), and the
  // same layer at the same position holds the same TOC entry in both images.
  const fromSharedLayer = (na: VNode, nb: VNode): boolean => {
    const ia = positionA.get(a.layerOf(na))!;
    return ia < shared && ia === positionB.get(b.layerOf(nb));
  };
  const added = (fs: MergedFs, node: VNode): void => {
    for (const n of fs.walk(node)) out.push({ path: n.path, change: 'A' });
  };
  const compare = async (na: VNode, nb: VNode): Promise<void> => {
    signal?.throwIfAborted();
    if (!fromSharedLayer(na, nb)) {
      const fields = await differingFields(a, na, b, nb, options.ignoreMtime ?? false, signal);
      if (fields.length > 0) out.push({ path: na.path, change: 'C', fields });
    }
    if (na.children && nb.children) {
      const names = [...new Set([...na.children.keys(), ...nb.children.keys()])];
      for (const name of names) {
        const ca = na.children.get(name);
        const cb = nb.children.get(name);
        if (ca && cb) await compare(ca, cb);
        else if (ca) out.push({ path: ca.path, change: 'D' });
        else added(b, cb!);
      }
    } else if (na.children) {
      // A directory replaced by something else: the C above, and what it held is gone.
      for (const ca of na.children.values()) out.push({ path: ca.path, change: 'D' });
    } else if (nb.children) {
      for (const cb of nb.children.values()) added(b, cb);
    }
  };

  const path = normalize(options.path ?? '/');
  const na = a.get(path);
  const nb = b.get(path);
  if (na && nb) await compare(na, nb);
  else if (na) out.push({ path, change: 'D' });
  else if (nb) added(b, nb);
  else throw new StargzError(ErrorCodes.PATH_NOT_FOUND, `${path}: no such file or directory in either image`);
  // Each path encoded once, not once per comparison.
  return out
    .map((c) => ({ c, key: Buffer.from(c.path, 'utf8') }))
    .sort((x, y) => Buffer.compare(x.key, y.key))
    .map(({ c }) => c);
}

async function differingFields(a: MergedFs, na: VNode, b: MergedFs, nb: VNode, ignoreMtime: boolean, signal?: AbortSignal): Promise<ChangeField[]> {
  const sa = a.stat(na);
  const sb = b.stat(nb);
  const type = sa.mode & S_IFMT;
  const sameType = type === (sb.mode & S_IFMT);
  const fields: ChangeField[] = [];
  if (!sameType) fields.push('type');
  if ((sa.mode & 0o7777) !== (sb.mode & 0o7777)) fields.push('mode');
  if (sa.uid !== sb.uid) fields.push('uid');
  if (sa.gid !== sb.gid) fields.push('gid');
  if (sa.size !== sb.size) fields.push('size');
  if (sameType && type === S_IFREG) {
    // Different sizes are different contents; equal sizes need the digests.
    if (sa.size !== sb.size || (await contentDigest(a, na, signal)) !== (await contentDigest(b, nb, signal))) fields.push('digest');
  }
  if (a.readlink(na) !== b.readlink(nb)) fields.push('linkTarget');
  if (sa.rdev !== sb.rdev) fields.push('device');
  if (!sameXattrs(a.xattrs(na), b.xattrs(nb))) fields.push('xattrs');
  if (!ignoreMtime && !(sameType && type === S_IFDIR) && sa.mtimeMs !== sb.mtimeMs) fields.push('mtime');
  return fields;
}

function sameXattrs(x: Record<string, Buffer>, y: Record<string, Buffer>): boolean {
  const kx = Object.keys(x);
  if (kx.length !== Object.keys(y).length) return false;
  return kx.every((k) => y[k] !== undefined && x[k]!.equals(y[k]!));
}

/** The TOC's digest, or (an index without one: a plain layer's) the sha256 of the bytes, read through the cache. */
async function contentDigest(fs: MergedFs, node: VNode, signal?: AbortSignal): Promise<string> {
  const known = fs.digestOf(node);
  if (known) return known;
  const hash = createHash('sha256');
  const size = fs.size(node);
  for (let offset = 0; offset < size; offset += HASH_PIECE) {
    signal?.throwIfAborted();
    hash.update(await fs.read(node, offset, HASH_PIECE, signal));
  }
  return 'sha256:' + hash.digest('hex');
}
