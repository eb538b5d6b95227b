// The FUSE adapter: fuse-native operations over the merged VFS. Boring on purpose — look
// the path up, call the VFS, map the error to an errno, log why. The image is immutable:
// every operation that would change it answers EROFS.
import { posix } from 'node:path';
import { ErrorCodes, StargzError, redact, toStargzError } from '../errors.js';
import { chunkKey } from '../layer/layer.js';
import type { MergedFs } from '../vfs/merged-fs.js';
import { S_IFMT, type VNode } from '../vfs/node.js';
import { Errno, errnoFor, negErrno } from './errno.js';
import type { FuseOps, FuseStat, FuseStatfs } from './fuse-native.js';
import { DEFAULT_READ_AHEAD, ReadAhead, type ReadAheadOptions } from './read-ahead.js';

export interface AdapterOptions {
  /** A read that has not completed by then answers EIO (the kernel must not wait forever). */
  readDeadlineMs: number;
  /** Sequential read-ahead; false turns it off. */
  readAhead?: ReadAheadOptions | false;
  /** Whether a chunk is cached already (read-ahead skips those); default: never. */
  isCached?: (key: string) => boolean;
  /** One line per failure worth telling (an EIO and its cause). */
  log: (line: string) => void;
}

export const DEFAULT_READ_DEADLINE_MS = 20_000;
/**
 * After a failed read the kernel retries the page at once, synchronously: answering that
 * retry from the failure we just had keeps one `cat` bounded by one deadline, not two.
 */
const FAILURE_MEMO_MS = 2_000;

const O_ACCMODE = 0o3;
const O_TRUNC = 0o1000;
const W_OK = 2;
const ST_RDONLY = 1;
const BLOCK = 4096;
const S_IFLNK = 0o120000;

interface Handle {
  node: VNode;
  readAhead?: ReadAhead;
}

export interface FuseAdapter {
  ops: FuseOps;
  /** Open file handles right now (tests, diagnostics). */
  openHandles(): number;
}

export function createFuseAdapter(fs: MergedFs, options: AdapterOptions): FuseAdapter {
  const handles = new Map<number, Handle>();
  /** ino -> when its last failed read stops being answered from memory, and with what. */
  const recentFailures = new Map<number, { until: number; res: number }>();
  let nextHandle = 1;
  const readAheadOptions = options.readAhead === false ? undefined : (options.readAhead ?? DEFAULT_READ_AHEAD);
  const isCached = options.isCached ?? (() => false);
  const totals = imageTotals(fs);

  const ENOENT = negErrno(Errno.ENOENT);
  const EROFS = negErrno(Errno.EROFS);

  /** Maps a thrown error to a negative errno, logging anything that is not a plain ENOENT. */
  const fail = (op: string, path: string, err: unknown): number => {
    const e = toStargzError(err);
    const errno = errnoFor(e);
    if (errno !== Errno.ENOENT) options.log(`${op} ${path}: ${errnoName(errno)} (${e.code}: ${redact(e.message)})`);
    return negErrno(errno);
  };

  const allocHandle = (h: Handle): number => {
    // fuse-native carries handles as int32 and treats 0 as "none".
    for (;;) {
      const id = nextHandle;
      nextHandle = nextHandle >= 0x7fffffff ? 1 : nextHandle + 1;
      if (!handles.has(id)) {
        handles.set(id, h);
        return id;
      }
    }
  };

  const fetchAhead = (node: VNode, offset: number, length: number): void => {
    const layer = node.inode.layer;
    // Chunks without a digest are never cached: fetching them ahead would be wasted.
    const refs = fs.chunksFor(node, offset, length).filter((r) => r.digest !== undefined && !isCached(chunkKey(layer.descriptor.digest, r)));
    if (refs.length === 0) return;
    layer.readChunks(refs, () => undefined, { priority: 'low' }).catch(() => {
      // The on-demand read of these bytes will fetch them again and report a failure.
    });
  };

  const ops: FuseOps = {
    init(cb) {
      cb(0);
    },

    getattr(path, cb) {
      const node = fs.get(path);
      if (!node) return cb(ENOENT);
      cb(0, toFuseStat(fs, node));
    },

    fgetattr(path, _fd, cb) {
      ops.getattr!(path, cb);
    },

    access(path, mode, cb) {
      if (!fs.get(path)) return cb(ENOENT);
      cb(mode & W_OK ? EROFS : 0);
    },

    statfs(_path, cb) {
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

    opendir(path, _flags, cb) {
      const node = fs.get(path);
      if (!node) return cb(ENOENT);
      if (!node.children) return cb(negErrno(Errno.ENOTDIR));
      cb(0, 0);
    },

    releasedir(_path, _fd, cb) {
      cb(0);
    },

    readdir(path, cb) {
      const node = fs.get(path);
      if (!node) return cb(ENOENT);
      if (!node.children) return cb(negErrno(Errno.ENOTDIR));
      try {
        const kids = fs.readdir(node);
        const parent = path === '/' ? node : (fs.get(posix.dirname(path)) ?? node);
        const names = ['.', '..', ...kids.map((k) => k.name)];
        const stats = [node, parent, ...kids].map((k) => toFuseStat(fs, k));
        cb(0, names, stats);
      } catch (err) {
        cb(fail('readdir', path, err));
      }
    },

    readlink(path, cb) {
      const node = fs.get(path);
      if (!node) return cb(ENOENT);
      if (node.inode.entry.type !== 'symlink') return cb(negErrno(Errno.EINVAL));
      cb(0, fs.readlink(node));
    },

    open(path, flags, cb) {
      const node = fs.get(path);
      if (!node) return cb(ENOENT);
      if ((flags & O_ACCMODE) !== 0 || flags & O_TRUNC) return cb(EROFS);
      if (node.children) return cb(negErrno(Errno.EISDIR));
      const size = node.inode.entry.size;
      const h: Handle = { node };
      if (readAheadOptions && size > readAheadOptions.initialWindow) h.readAhead = new ReadAhead(size, readAheadOptions);
      cb(0, allocHandle(h));
    },

    release(_path, fd, cb) {
      handles.delete(fd);
      cb(0);
    },

    read(path, fd, buf, len, pos, cb) {
      const h = handles.get(fd);
      const node = h?.node ?? fs.get(path);
      if (!node) return cb(ENOENT);
      if (node.children) return cb(negErrno(Errno.EISDIR));
      const ino = node.inode.ino;
      const failed = recentFailures.get(ino);
      if (failed && failed.until > Date.now()) return cb(failed.res);
      recentFailures.delete(ino);
      const ahead = h?.readAhead?.onRead(pos, len);
      const controller = new AbortController();
      let answered = false;
      const answer = (res: number): void => {
        if (answered) return;
        answered = true;
        clearTimeout(timer);
        cb(res);
      };
      const timer = setTimeout(() => {
        const err = new StargzError(ErrorCodes.TIMEOUT, `no answer within ${options.readDeadlineMs} ms`);
        const res = fail('read', `${path} @${pos}+${len}`, err);
        recentFailures.set(ino, { until: Date.now() + FAILURE_MEMO_MS, res });
        answer(res);
        controller.abort(err);
      }, options.readDeadlineMs);
      fs.read(node, pos, len, { priority: 'high', signal: controller.signal }).then(
        (data) => {
          if (answered) return;
          data.copy(buf, 0, 0, Math.min(data.length, len));
          answer(Math.min(data.length, len));
        },
        (err: unknown) => {
          if (answered) return;
          const res = fail('read', `${path} @${pos}+${len}`, err);
          recentFailures.set(ino, { until: Date.now() + FAILURE_MEMO_MS, res });
          answer(res);
        },
      );
      // After the on-demand fetch was queued, so it goes first.
      if (ahead) fetchAhead(node, ahead.offset, ahead.length);
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
  for (const name of [
    'write', 'create', 'truncate', 'ftruncate', 'unlink', 'rename', 'link', 'symlink',
    'mkdir', 'rmdir', 'mknod', 'chmod', 'chown', 'utimens', 'setxattr', 'removexattr',
  ] as const) {
    ops[name] = refuse;
  }

  // An exception escaping into fuse-native would take the whole process (and mount) down:
  // answer it as a failed operation instead.
  const table = ops as Record<string, (...args: unknown[]) => void>;
  for (const [name, fn] of Object.entries(table)) {
    table[name] = (...args: unknown[]): void => {
      try {
        fn(...args);
      } catch (err) {
        const cb = args[args.length - 1];
        if (typeof cb === 'function') (cb as (e: number) => void)(fail(name, String(args[0]), err));
      }
    };
  }

  return { ops, openHandles: () => handles.size };
}

export function toFuseStat(fs: MergedFs, node: VNode): FuseStat {
  const st = fs.stat(node);
  // fuse-native carries times as unsigned milliseconds: clamp pre-1970 times to the epoch.
  const ms = Math.max(0, st.mtimeMs);
  // Linux ignores a symlink's permission bits and every file system reports 0777 (so does
  // an unpacked copy): the TOC's bits would only make `cp -a` and `ls -l` disagree with it.
  const mode = (st.mode & S_IFMT) === S_IFLNK ? S_IFLNK | 0o777 : st.mode;
  return {
    mode,
    uid: st.uid,
    gid: st.gid,
    size: st.size,
    dev: 0,
    nlink: st.nlink,
    ino: st.ino,
    rdev: st.rdev,
    blksize: BLOCK,
    blocks: st.blocks,
    atime: ms,
    mtime: ms,
    ctime: ms,
  };
}

/** Sizes for statfs: what `df` shows for the mount. */
function imageTotals(fs: MergedFs): { bytes: number; inodes: number } {
  const seen = new Set<number>();
  let bytes = 0;
  for (const node of fs.walk(fs.root)) {
    if (seen.has(node.inode.ino)) continue;
    seen.add(node.inode.ino);
    bytes += node.inode.entry.size;
  }
  return { bytes, inodes: seen.size };
}

function errnoName(errno: number): string {
  for (const [name, value] of Object.entries(Errno)) if (value === errno) return name;
  return `errno ${errno}`;
}
