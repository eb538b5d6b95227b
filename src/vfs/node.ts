// The merged tree's nodes. A VNode is a name in a directory; an Inode is the file it names.
// Hardlinks are several VNodes sharing one Inode, so they share an inode number, a link
// count and their bytes, as in a real file system.
import type { IndexEntry } from '../estargz/index.js';
import type { Layer } from '../layer/layer.js';

export interface Inode {
  /** Stable for a given image: assigned in sorted pre-order after merging. */
  ino: number;
  /** Metadata and chunks (for a hardlink: its target's entry). */
  entry: IndexEntry;
  /** The layer whose blob holds this file's bytes. */
  layer: Layer;
  /** Directory entries naming this inode (for a directory: 2 + subdirectories). */
  nlink: number;
}

export interface VNode {
  name: string;
  /** Absolute path inside the image, '/' for the root. */
  path: string;
  inode: Inode;
  /** Present for directories only, keyed by name. */
  children?: Map<string, VNode>;
}

export const S_IFMT = 0o170000;
const TYPE_BITS: Record<IndexEntry['type'], number> = {
  dir: 0o040000,
  reg: 0o100000,
  symlink: 0o120000,
  hardlink: 0o100000,
  char: 0o020000,
  block: 0o060000,
  fifo: 0o010000,
};

export interface VStat {
  ino: number;
  /** File type bits | permission bits (setuid/setgid/sticky included). */
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  size: number;
  mtimeMs: number;
  /** Device number (Linux encoding) for char/block devices, 0 otherwise. */
  rdev: number;
  blocks: number;
}

/** A regular file (a hardlink names one too): what has bytes to read. */
export function isFile(node: VNode): boolean {
  const t = node.inode.entry.type;
  return !node.children && (t === 'reg' || t === 'hardlink');
}

/** Linux's makedev, as the kernel and `stat` encode device numbers. */
export function makedev(major: number, minor: number): number {
  return ((major & 0xfff) << 8) | (minor & 0xff) | ((minor & ~0xff) << 12);
}

export function statOf(node: VNode): VStat {
  const { entry, ino, nlink } = node.inode;
  const type = entry.type; // an accessor on the compact index: read once
  const size = type === 'symlink' ? Buffer.byteLength(entry.linkName) : type === 'dir' ? 4096 : entry.size;
  return {
    ino,
    // Linux symlinks are always 0777 whatever the tar header says.
    mode: TYPE_BITS[type] | (type === 'symlink' ? 0o777 : entry.mode & 0o7777),
    nlink,
    uid: entry.uid,
    gid: entry.gid,
    size,
    mtimeMs: entry.mtimeMs,
    rdev: type === 'char' || type === 'block' ? makedev(entry.devMajor, entry.devMinor) : 0,
    // A sparse file occupies its data regions only, as `du` sees it on disk.
    blocks: Math.ceil((entry.sparse ? entry.chunks.reduce((n, c) => n + c.size, 0) : size) / 512),
  };
}

/**
 * The extended attributes a reader sees. An empty value is dropped: in a PAX header an
 * empty record deletes the keyword, so OCI unpackers (umoci, Go's archive/tar) never
 * create it, although the reference TOC writer copies it into the TOC.
 */
export function visibleXattrs(entry: IndexEntry): Record<string, Buffer> {
  let out: Record<string, Buffer> | undefined;
  for (const [name, value] of Object.entries(entry.xattrs)) {
    if (value.length === 0) {
      out ??= { ...entry.xattrs };
      delete out[name];
    }
  }
  return out ?? entry.xattrs;
}
