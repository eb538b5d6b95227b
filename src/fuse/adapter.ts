// The FUSE adapter: fuse-native operations over the merged VFS. Boring on purpose — look
// the path up, call the VFS, map the error to an errno, log why. The image is immutable:
// every operation that would change it answers EROFS. Reads are reader.ts's business.
import type { MergedFs } from '../vfs/merged-fs.js';
import type { Inode, VNode } from '../vfs/node.js';
import { Errno, failureMapper, negErrno } from './errno.js';
import { encodeStat, WRITE_OPS, type EncodedDir, type FuseOps, type FuseStatfs } from './fuse-native.js';
import { createReader, type ReaderOptions } from './reader.js';
import { parentPath } from './vfs-walk.js';

export interface AdapterOptions extends Omit<ReaderOptions, 'fail'> {
  /** One line per failure worth telling (an EIO and its cause). */
  log: (line: string) => void;
}

export { DEFAULT_READ_DEADLINE_MS } from './reader.js';

const W_OK = 2;
const ST_RDONLY = 1;
const BLOCK = 4096;

export interface FuseAdapter {
  ops: FuseOps;
  /** Walks the walk read-ahead is following right now (tests, diagnostics). */
  activeWalks(): number;
  /** Drops queued background fetches (unmount). */
  stop(): void;
}

export function createFuseAdapter(fs: MergedFs, options: AdapterOptions): FuseAdapter {
  // The image never changes: each inode's wire stat and each directory's listing are built
  // once. `find` over 5k directories then costs two cheap calls per directory.
  const encodedStats = new WeakMap<Inode, Uint32Array>();
  const encodedDirs = new WeakMap<VNode, EncodedDir>();
  const statOf = (node: VNode): Uint32Array => {
    let st = encodedStats.get(node.inode);
    if (!st) encodedStats.set(node.inode, (st = encodeStat(fs.stat(node), BLOCK)));
    return st;
  };

  const ENOENT = negErrno(Errno.ENOENT);
  const EROFS = negErrno(Errno.EROFS);
  const ENOSYS = negErrno(Errno.ENOSYS);

  const fail = failureMapper(options.log);

  const reader = createReader(fs, { ...options, fail });

  const ops: FuseOps = {
    getattr(path) {
      const node = fs.get(path);
      return node ? statOf(node) : ENOENT;
    },

    access(path, mode, cb) {
      if (!fs.get(path)) return cb(ENOENT);
      cb(mode & W_OK ? EROFS : 0);
    },

    statfs(_path, cb) {
      const totals = fs.totals;
      cb(0, {
        bsize: BLOCK,
        frsize: BLOCK,
        blocks: Math.ceil(totals.bytes / BLOCK),
        bfree: 0,
        bavail: 0,
        files: totals.inodes,
        ffree: 0,
        favail: 0,
        fsid: 0,
        flag: ST_RDONLY,
        namemax: 255,
      } satisfies FuseStatfs);
    },

    // No opendir/releasedir: the kernel sends OPENDIR for directories only, and without
    // them libfuse answers both itself (two fewer trips to JS per directory).

    readdir(path) {
      const node = fs.get(path);
      if (!node) return ENOENT;
      if (!node.children) return negErrno(Errno.ENOTDIR);
      let dir = encodedDirs.get(node);
      if (!dir) {
        const kids = fs.readdir(node);
        const parent = fs.get(parentPath(path)) ?? node;
        const names = ['.', '..'];
        const stats = [statOf(node), statOf(parent)];
        for (const k of kids) {
          names.push(k.name);
          stats.push(statOf(k));
        }
        encodedDirs.set(node, (dir = { names, stats }));
      }
      return dir;
    },

    readlink(path, cb) {
      const node = fs.get(path);
      if (!node) return cb(ENOENT);
      const target = fs.readlink(node);
      if (target === undefined) return cb(negErrno(Errno.EINVAL));
      cb(0, target);
    },

    // Opening a file needs nothing from us: the mount is read-only (-o ro), so the kernel
    // refuses write opens itself, and reads find their file by path. ENOSYS tells the kernel
    // so once (Linux >= 3.14): it stops sending OPEN and RELEASE, and keeps the page cache
    // across opens (FOPEN_KEEP_CACHE is its default then): two fewer round trips per file.
    // (Not for directories: libfuse 2's readdir needs the handle its opendir makes.)
    open(_path, _flags, cb) {
      cb(ENOSYS);
    },

    read(path, _fd, buf, len, pos, cb) {
      const node = fs.get(path);
      if (!node) return cb(ENOENT);
      if (node.children) return cb(negErrno(Errno.EISDIR));
      reader.read(path, node, buf, len, pos, cb);
    },

    getxattr(path, name, _position, cb) {
      const node = fs.get(path);
      if (!node) return cb(ENOENT);
      const value = fs.xattrs(node)[name];
      if (value === undefined) return cb(negErrno(Errno.ENODATA));
      cb(0, value);
    },

    listxattr(path, cb) {
      const node = fs.get(path);
      if (!node) return cb(ENOENT);
      cb(0, Object.keys(fs.xattrs(node)));
    },
  };

  // Writes: the kernel mount is read-only too (-o ro), these answer whatever slips through.
  const refuse = (...args: unknown[]): void => {
    const cb = args[args.length - 1];
    if (typeof cb === 'function') (cb as (e: number) => void)(EROFS);
  };
  for (const name of WRITE_OPS) ops[name] = refuse;

  // An exception escaping into fuse-native would take the whole process (and mount) down:
  // answer it as a failed operation instead.
  const table = ops as Record<string, (...args: unknown[]) => unknown>;
  for (const [name, fn] of Object.entries(table)) {
    table[name] = (...args: unknown[]): unknown => {
      try {
        return fn(...args);
      } catch (err) {
        const res = fail(name, String(args[0]), err);
        const cb = args[args.length - 1];
        if (typeof cb === 'function') (cb as (e: number) => void)(res);
        return res; // the synchronous getattr and readdir answer with the errno
      }
    };
  }

  return { ops, activeWalks: () => reader.activeWalks(), stop: () => fs.scheduler.clear() };
}
