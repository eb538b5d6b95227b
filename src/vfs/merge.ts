// Applies image layers bottom to top the way the OCI image spec (and umoci) does:
// later layers win, `.wh.NAME` deletes NAME from the layers below, `.wh..wh..opq` empties
// its directory of everything below (whatever its position in the layer), a path that
// changes type replaces the old subtree, and hardlinks share their target's inode.
import { ErrorCodes, StargzError } from '../errors.js';
import { implicitDir, type IndexEntry } from '../estargz/index.js';
import type { Layer } from '../layer/layer.js';
import type { Inode, VNode } from './node.js';

export const WHITEOUT_PREFIX = '.wh.';
export const OPAQUE_WHITEOUT = '.wh..wh..opq';

export interface MergeResult {
  root: VNode;
  /** Hardlinks whose target was missing: skipped, reported once. */
  warnings: string[];
  totals: ImageTotals;
}

/** What `df` shows for the image: bytes of regular files and inodes, each inode counted once. */
export interface ImageTotals {
  bytes: number;
  inodes: number;
}

function splitPath(path: string): { parent: string; name: string } {
  const i = path.lastIndexOf('/');
  return i < 0 ? { parent: '', name: path } : { parent: path.slice(0, i), name: path.slice(i + 1) };
}

function newInode(entry: IndexEntry, layer: Layer): Inode {
  return { ino: 0, entry, layer, nlink: 1 };
}

export function mergeLayers(layers: readonly Layer[]): MergeResult {
  if (layers.length === 0) throw new StargzError(ErrorCodes.MANIFEST_UNSUPPORTED, 'the image has no layers');
  const warnings: string[] = [];
  const rootEntry = layers[0]!.index.entries.get('') ?? implicitDir('');
  const root: VNode = { name: '', path: '/', inode: newInode(rootEntry, layers[0]!), children: new Map() };

  // Relative path ('' = root) -> node, kept in step with the tree while merging.
  const find = (rel: string): VNode | undefined => {
    if (rel === '') return root;
    let node: VNode | undefined = root;
    for (const part of rel.split('/')) {
      node = node?.children?.get(part);
      if (!node) return undefined;
    }
    return node;
  };
  // Passes 1 and 2 ask for each entry's parent in an order where siblings come together
  // (parents first, then by name), and change nodes only at the depth being applied: the
  // directory asked for last is mostly asked for again. Forgotten before each pass.
  let lastRel: string | undefined;
  let lastDir: VNode | undefined;
  const findParent = (rel: string): VNode | undefined => {
    if (rel !== lastRel) {
      lastDir = find(rel);
      lastRel = rel;
    }
    return lastDir;
  };

  for (const layer of layers) {
    const paths = sortParentsFirst([...layer.index.entries.keys()]);
    // Pass 1: opaque directories and whiteouts hide what the layers below put there.
    lastRel = undefined;
    for (const rel of paths) {
      const { parent, name } = splitPath(rel);
      if (name === OPAQUE_WHITEOUT) {
        const dir = findParent(parent);
        if (dir?.children) dir.children.clear();
      } else if (name.startsWith(WHITEOUT_PREFIX)) {
        findParent(parent)?.children?.delete(name.slice(WHITEOUT_PREFIX.length));
      }
    }
    // Pass 2: this layer's entries, parents before children.
    lastRel = undefined;
    for (const rel of paths) {
      const entry = layer.index.entries.get(rel)!;
      const { parent, name } = splitPath(rel);
      if (name.startsWith(WHITEOUT_PREFIX)) continue;
      if (rel === '') {
        if (!entry.implicit) root.inode = newInode(entry, layer);
        continue;
      }
      const dir = findParent(parent);
      if (!dir?.children) continue; // parent replaced by a non-directory in this same layer
      const existing = dir.children.get(name);
      const path = dir.path === '/' ? '/' + name : dir.path + '/' + name;
      if (entry.type === 'dir') {
        if (existing?.children) {
          // A directory again: keep its children, take the new metadata unless merely implied.
          if (!entry.implicit) existing.inode = newInode(entry, layer);
        } else {
          dir.children.set(name, { name, path, inode: newInode(entry, layer), children: new Map() });
        }
      } else if (entry.type === 'hardlink') {
        continue; // pass 3: the target may sort after the link
      } else {
        dir.children.set(name, { name, path, inode: newInode(entry, layer) });
      }
    }
    // Pass 3: hardlinks share the inode their target has once this layer is applied.
    for (const rel of paths) {
      const entry = layer.index.entries.get(rel)!;
      if (entry.type !== 'hardlink') continue;
      const { parent, name } = splitPath(rel);
      const dir = find(parent);
      const target = find(entry.linkName);
      if (!dir?.children || !target || target.children) {
        warnings.push(`hardlink /${rel} -> /${entry.linkName}: target missing, skipped`);
        continue;
      }
      const path = dir.path === '/' ? '/' + name : dir.path + '/' + name;
      dir.children.set(name, { name, path, inode: target.inode });
    }
  }

  const totals = numberInodes(root);
  return { root, warnings, totals };
}

/**
 * Sorted pre-order numbering: the same image always gets the same inode numbers (and the
 * totals are counted on the way). A file's
 * link count is counted as its names are met (no side table: at millions of entries a Map
 * of every inode would be one of the largest things a merge holds).
 */
function numberInodes(root: VNode): ImageTotals {
  let next = 1;
  let bytes = 0;
  const visit = (node: VNode): void => {
    const first = node.inode.ino === 0;
    if (first) {
      node.inode.ino = next++;
      bytes += node.inode.entry.size;
    }
    if (!node.children) {
      node.inode.nlink = first ? 1 : node.inode.nlink + 1;
      return;
    }
    let subdirs = 0;
    for (const name of [...node.children.keys()].sort()) {
      const child = node.children.get(name)!;
      // Re-home children moved under a replaced directory inode.
      child.path = node.path === '/' ? '/' + name : node.path + '/' + name;
      if (child.children) subdirs++;
      visit(child);
    }
    node.inode.nlink = 2 + subdirs;
  };
  visit(root);
  return { bytes, inodes: next - 1 };
}

/** Orders paths so that every directory comes before what it contains: by depth, then by name. */
function sortParentsFirst(paths: string[]): string[] {
  // Buckets by depth rather than one object per path to sort: a layer may hold millions.
  const byDepth: string[][] = [];
  for (const p of paths) {
    let d = p === '' ? 0 : 1;
    for (let i = 0; i < p.length; i++) if (p.charCodeAt(i) === 47) d++;
    (byDepth[d] ??= []).push(p);
  }
  const out: string[] = [];
  for (const bucket of byDepth) if (bucket) for (const p of bucket.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))) out.push(p);
  return out;
}
