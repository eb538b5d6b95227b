// The merged tree as the walk read-ahead sees it: directories in readdir order (sorted, as
// the adapter lists them), built per directory on first use, so a mount pays nothing up front.
import type { MergedFs } from '../vfs/merged-fs.js';
import { isFile, type VNode } from '../vfs/node.js';
import { lowerBound } from '../util/sorted.js';
import type { WalkMode, WalkTree } from './walk-ahead.js';

export class VfsWalkTree implements WalkTree<VNode> {
  private readonly sorted = new WeakMap<VNode, VNode[]>();

  constructor(private readonly fs: MergedFs) {}

  /** A directory's children in readdir order (cached: the image never changes). */
  children(dir: VNode): VNode[] {
    let kids = this.sorted.get(dir);
    if (!kids) this.sorted.set(dir, (kids = this.fs.readdir(dir)));
    return kids;
  }

  size(node: VNode): number {
    return isFile(node) ? this.fs.size(node) : 0;
  }

  scopeOf(a: VNode, b: VNode): VNode {
    const pa = a.children ? a.path : parentPath(a.path);
    const pb = b.children ? b.path : parentPath(b.path);
    let common = pa;
    while (!(pb === common || pb.startsWith(common === '/' ? '/' : common + '/'))) common = parentPath(common);
    return this.fs.get(common) ?? this.fs.root;
  }

  filesAfter(node: VNode, mode: WalkMode, scope?: VNode): Iterator<VNode> {
    return mode === 'dir' ? this.laterSiblingFiles(node) : this.treeAfter(node, scope ?? this.fs.root);
  }

  private *laterSiblingFiles(node: VNode): Generator<VNode> {
    const parent = this.fs.get(parentPath(node.path));
    if (!parent) return;
    const kids = this.children(parent);
    const at = indexIn(kids, node.name);
    if (at < 0) return;
    for (let i = at + 1; i < kids.length; i++) if (isFile(kids[i]!)) yield kids[i]!;
  }

  private *treeAfter(node: VNode, scope: VNode): Generator<VNode> {
    let cur = node;
    while (cur !== scope && cur.path !== '/') {
      const parent = this.fs.get(parentPath(cur.path));
      if (!parent) return;
      const kids = this.children(parent);
      const at = indexIn(kids, cur.name);
      if (at < 0) return;
      for (let i = at + 1; i < kids.length; i++) yield* this.filesIn(kids[i]!);
      cur = parent;
    }
  }

  private *filesIn(node: VNode): Generator<VNode> {
    if (node.children) {
      for (const kid of this.children(node)) yield* this.filesIn(kid);
    } else if (isFile(node)) {
      yield node;
    }
  }
}

/** Position of `name` in children sorted as MergedFs.readdir sorts them (-1 when absent). */
function indexIn(kids: VNode[], name: string): number {
  const lo = lowerBound(kids, (k) => k.name < name);
  return lo < kids.length && kids[lo]!.name === name ? lo : -1;
}

export function parentPath(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}
