// Typed access to fuse-native (a CommonJS module without types), loaded on first use so
// that commands other than `mount` work on hosts without libfuse. Also the two places where
// fuse-native 2.2's own behaviour is wrong for us, fixed in a subclass:
//  - its mount options lack use_ino/readdir_ino/ro/negative_timeout: appended here;
//  - its unmount runs `fusermount -uz` alone, and when that fails (the mount is already
//    gone, or there is only fusermount3) it never releases the libuv handle that keeps the
//    process alive: the caller's unmount (mount/unmount.ts: fallbacks, "nothing mounted"
//    is done) replaces it, so this binding needs nothing of the mount life cycle;
//  - getxattr/listxattr never answer ERANGE to a buffer that is too small (it truncates and
//    claims the full length, which the kernel rejects): callers like Python's os.getxattr,
//    which try a 128-byte buffer first, depend on ERANGE.
import { createRequire } from 'node:module';
import type { VStat } from '../vfs/node.js';
import { Errno, negErrno } from './errno.js';

export interface FuseStatfs {
  bsize: number;
  frsize: number;
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  favail: number;
  fsid: number;
  flag: number;
  namemax: number;
}

/** Callbacks take 0 or a negative errno first; read answers with the byte count instead. */
export type ErrCb = (err: number) => void;
/** Every operation that would change the file system (the adapter refuses them all). */
export const WRITE_OPS = [
  'write', 'create', 'truncate', 'ftruncate', 'unlink', 'rename', 'link', 'symlink',
  'mkdir', 'rmdir', 'mknod', 'chmod', 'chown', 'utimens', 'setxattr', 'removexattr',
] as const;
type Refuse = (...args: never[]) => void;

export interface FuseOps extends Partial<Record<(typeof WRITE_OPS)[number], Refuse>> {
  access?(path: string, mode: number, cb: ErrCb): void;
  statfs?(path: string, cb: (err: number, st?: FuseStatfs) => void): void;
  /**
   * Ours, not fuse-native's (the subclass below calls them): answered synchronously, stats in
   * fuse-native's wire layout (encodeStat), so the hot path builds no objects. Without
   * fgetattr, libfuse answers it through getattr.
   */
  getattr?(path: string): number | Uint32Array;
  readdir?(path: string): number | EncodedDir;
  readlink?(path: string, cb: (err: number, target?: string) => void): void;
  open?(path: string, flags: number, cb: (err: number, fd?: number) => void): void;
  read?(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (bytesOrErr: number) => void): void;
  getxattr?(path: string, name: string, position: number, cb: (err: number, value?: Buffer) => void): void;
  listxattr?(path: string, cb: (err: number, names?: string[]) => void): void;
}

/** A directory listing in wire layout: names[i] is described by stats[i]. */
export interface EncodedDir {
  names: string[];
  stats: Uint32Array[];
}

/**
 * A stat in fuse-native's layout (its private getStatArray): 18 uint32, 64-bit values as
 * low/high; times in milliseconds, unsigned (a pre-1970 time is the epoch).
 */
export function encodeStat(st: VStat, blksize: number): Uint32Array {
  const a = new Uint32Array(18);
  const ms = Math.max(0, st.mtimeMs);
  a[0] = st.mode;
  a[1] = st.uid;
  a[2] = st.gid;
  setUint64(a, 3, st.size);
  a[6] = st.nlink || 1;
  a[7] = st.ino;
  a[8] = st.rdev;
  a[9] = blksize;
  setUint64(a, 10, st.blocks);
  setUint64(a, 12, ms); // atime
  setUint64(a, 14, ms); // mtime
  setUint64(a, 16, ms); // ctime
  return a;
}

function setUint64(a: Uint32Array, i: number, n: number): void {
  a[i] = n % 4294967296;
  a[i + 1] = Math.floor(n / 4294967296);
}

/**
 * fuse-native arms a timer around every operation. Ours answer metadata synchronously, so
 * only reads (which fetch) get one: a per-operation map with every other operation of `ops` off.
 */
export function readOnlyTimeouts(ops: FuseOps, readMs: number): Record<string, number | false> {
  const out: Record<string, number | false> = { default: 30_000 };
  for (const name of Object.keys(ops)) out[name] = name === 'read' ? readMs : false;
  return out;
}

/** fuse-native's constructor options that we use (see its README). */
export interface FuseNativeOptions {
  fsname?: string;
  subtype?: string;
  allowOther?: boolean;
  autoUnmount?: boolean;
  defaultPermissions?: boolean;
  kernelCache?: boolean;
  attrTimeout?: number;
  entryTimeout?: number;
  debug?: boolean;
  /** Milliseconds before fuse-native answers an operation ETIMEDOUT itself; per op or default. */
  timeout?: number | false | Record<string, number | false>;
  /** Ours: appended verbatim to the -o list. */
  extraOptions?: string[];
}

export interface FuseInstance {
  readonly mnt: string;
  mount(cb: (err: Error | null) => void): void;
  unmount(cb: (err: Error | null) => void): void;
}

interface FuseClass {
  new (mnt: string, ops: FuseOps, opts: FuseNativeOptions): FuseInstance;
  unmount(mnt: string, cb: (err: Error | null) => void): void;
}

// The parts of fuse-native's (private) handler interface the subclass overrides.
type Signal = (res: number, ...rest: unknown[]) => void;
interface FuseInternals {
  ops: FuseOps;
  opts: FuseNativeOptions;
  _fuseOptions(): string;
}

const EMPTY_STAT = new Uint32Array(18);

let loaded: FuseClass | undefined;

/** Detaches whatever is mounted at mnt; resolves once nothing is (at once if nothing was). */
export type UnmountFn = (mnt: string) => Promise<void>;

/**
 * The fuse-native class with our fixes; throws when fuse-native or libfuse cannot load.
 * `unmount` replaces fuse-native's own (see the top of this file); the first load fixes it.
 */
export function loadFuse(unmount: UnmountFn): FuseClass {
  if (loaded) return loaded;
  const Base = createRequire(import.meta.url)('fuse-native') as FuseClass;
  const proto = Base.prototype as unknown as FuseInternals;
  const baseOptions = proto._fuseOptions;
  // Called by fuse-native's close() as Fuse.unmount (the base class, not `this`): patch the base.
  Base.unmount = (mnt, cb) => {
    unmount(mnt).then(() => cb(null), (err: Error) => cb(err));
  };

  class StargzFuse extends Base {
    _fuseOptions(this: FuseInternals): string {
      const base = baseOptions.call(this);
      const extra = this.opts.extraOptions ?? [];
      if (extra.length === 0) return base;
      return base ? `${base},${extra.join(',')}` : `-o${extra.join(',')}`;
    }

    // getattr/readdir answered synchronously, in wire layout (see FuseOps).
    _op_getattr(this: FuseInternals, signal: Signal, path: string): void {
      const res = this.ops.getattr!(path);
      if (typeof res === 'number') signal(res, EMPTY_STAT);
      else signal(0, res);
    }

    _op_readdir(this: FuseInternals, signal: Signal, path: string): void {
      const res = this.ops.readdir!(path);
      if (typeof res === 'number') signal(res);
      else signal(0, res.names, res.stats);
    }

    _op_getxattr(this: FuseInternals, signal: Signal, path: string, name: string, valueBuf: Buffer, position: number): void {
      this.ops.getxattr!(path, name, position, (err, value) => {
        if (err) return signal(err, valueBuf.buffer);
        if (!value) return signal(negErrno(Errno.ENODATA), valueBuf.buffer);
        if (valueBuf.length === 0) return signal(value.length, valueBuf.buffer); // size query
        if (value.length > valueBuf.length) return signal(negErrno(Errno.ERANGE), valueBuf.buffer);
        value.copy(valueBuf);
        return signal(value.length, valueBuf.buffer);
      });
    }

    _op_listxattr(this: FuseInternals, signal: Signal, path: string, listBuf: Buffer): void {
      this.ops.listxattr!(path, (err, names) => {
        if (err || !names) return signal(err || negErrno(Errno.EIO), listBuf.buffer);
        const list = Buffer.concat(names.map((n) => Buffer.from(n + '\0')));
        if (listBuf.length === 0) return signal(list.length, listBuf.buffer); // size query
        if (list.length > listBuf.length) return signal(negErrno(Errno.ERANGE), listBuf.buffer);
        list.copy(listBuf);
        return signal(list.length, listBuf.buffer);
      });
    }
  }
  loaded = StargzFuse as unknown as FuseClass;
  return loaded;
}
