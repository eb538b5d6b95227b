// What DEST already has in a directory sync writes: each name with its lstat, read through
// the directory's own descriptor. `/proc/self/fd/N` is the open directory itself (the kernel
// follows that link to the very inode the descriptor holds, no name is looked up again), and
// the entry's name is one component looked up with lstat or O_NOFOLLOW: nothing here follows
// a symlink DEST holds. Linux only, like the rest of sync's descriptor-relative I/O.
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import { mapConcurrent } from '../util/concurrent.js';
import { errnoCode } from '../util/errno-code.js';
import type { DestFs, DirHandle } from './dest-fs.js';

/** The entries of one DEST directory by name (`.` and `..` never appear). */
export type DestListing = Map<string, fs.Stats>;

const STAT_CONCURRENCY = 16;
const READ_FLAGS = fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK;

/** The path of entry `name` of the directory open as `dirfd`, resolved through the descriptor. */
export function entryPath(dirfd: number, name: string): string {
  return `/proc/self/fd/${dirfd}/${name}`;
}

/** Lists an open DEST directory: each entry with its lstat (an entry gone meanwhile is left out). */
export async function listDir(disk: DestFs, dir: DirHandle): Promise<DestListing> {
  return disk.use(dir, (fd) => listDirFd(fd));
}

export async function listDirFd(fd: number): Promise<DestListing> {
  const names = await fsp.readdir(`/proc/self/fd/${fd}`);
  const out: DestListing = new Map();
  await mapConcurrent(names, STAT_CONCURRENCY, async (name) => {
    try {
      out.set(name, await fsp.lstat(entryPath(fd, name)));
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw err;
    }
  });
  return out;
}

/**
 * Opens entry `name` of an open directory for reading, never following a symlink and never
 * blocking on a fifo, and checks it is still the regular file `expected` described (same
 * inode): the caller owns the descriptor. Undefined when it is not.
 */
export async function openRegular(dirfd: number, name: string, expected: fs.Stats): Promise<number | undefined> {
  let fd: number;
  try {
    fd = await new Promise<number>((res, rej) => fs.open(entryPath(dirfd, name), READ_FLAGS, (e, f) => (e ? rej(e) : res(f))));
  } catch (err) {
    const c = errnoCode(err);
    if (c === 'ENOENT' || c === 'ELOOP' || c === 'ENXIO' || c === 'EACCES') return undefined;
    throw err;
  }
  const st = fs.fstatSync(fd);
  if (!st.isFile() || st.ino !== expected.ino || st.dev !== expected.dev) {
    fs.closeSync(fd);
    return undefined;
  }
  return fd;
}

/** 'sha256:<hex>' of an open file's bytes, read in the thread pool as a stream (the descriptor stays open). */
export async function sha256OfFd(fd: number): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(fs.createReadStream('', { fd, autoClose: false, start: 0, highWaterMark: 1024 * 1024 }), hash);
  return 'sha256:' + hash.digest('hex');
}
