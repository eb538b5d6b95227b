// Loads the small native addon (native/posix_extra.c glue, native/fs_at.c calls): file-system calls
// relative to a directory descriptor that never follow a symlink, and xattrs and device
// nodes, which Node's fs does not offer. `name` arguments are single directory entries (a
// '/' in one is refused with EINVAL). Errors carry `code` ('ELOOP'...) like Node's fs errors.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface PosixExtra {
  // Asynchronous (thread pool): these allocate or free inodes.
  /** mkdirat + an O_NOFOLLOW directory descriptor; an existing directory is reused, anything else in the way unlinked. */
  mkdirOpenAt(dirfd: number, name: string, mode: number): Promise<number>;
  /** The directory at a relative path below dirfd, with no symlink or '..' on the way (openat2 RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS). */
  openBeneath(dirfd: number, relativePath: string): Promise<number>;
  /** openat(O_CREAT|O_EXCL|O_WRONLY|O_NOFOLLOW): a new file's write descriptor. */
  createAt(dirfd: number, name: string, mode: number): Promise<number>;
  symlinkAt(target: string, dirfd: number, name: string): Promise<number>;
  /** mode includes S_IFCHR / S_IFBLK / S_IFIFO. */
  mknodAt(dirfd: number, name: string, mode: number, major: number, minor: number): Promise<number>;
  /** linkat without AT_SYMLINK_FOLLOW. */
  linkAt(dirfd: number, name: string, newDirfd: number, newName: string): Promise<number>;
  renameAt(dirfd: number, name: string, newDirfd: number, newName: string): Promise<number>;
  /** Removes name and, if it is a real directory, everything below it, each level by its own descriptor. */
  removeTreeAt(dirfd: number, name: string): Promise<number>;
  // Synchronous: metadata only.
  fsetxattr(fd: number, name: string, value: Buffer): void;
  /** For entries that cannot be opened (symlinks, devices, fifos): never follows `entry`. */
  lsetxattrAt(dirfd: number, entry: string, name: string, value: Buffer): void;
  lchownAt(dirfd: number, name: string, uid: number, gid: number): void;
  /** Fails on a symlink rather than following it. */
  chmodAt(dirfd: number, name: string, mode: number): void;
  lutimesAt(dirfd: number, name: string, seconds: number): void;
  /** mallopt: freed buffers of 64 KiB and more are unmapped at once instead of kept by glibc (process-wide). */
  returnFreedMemory(): void;
  /** Before a libfuse mount with auto_unmount: reserves a low fd, notes the open ones (native/unmount_socket.c). */
  unmountSocketGuard(): Buffer;
  /** After it: moves fusermount's socket below /dev/fuse, so a killed server's mount is cleaned up. */
  placeUnmountSocket(guard: Buffer): void;
}

let loaded: PosixExtra | null | undefined;

/** The addon, or null when it was not built. */
export function posixExtra(): PosixExtra | null {
  if (loaded === undefined) loaded = loadAddon<PosixExtra>('posix_extra');
  return loaded;
}

/** A target of native/binding.gyp (`name`.node, found above this file), or null when it was not built. */
export function loadAddon<T>(name: string): T | null {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, 'native', 'build', 'Release', `${name}.node`);
    if (existsSync(candidate)) return createRequire(import.meta.url)(candidate) as T;
    dir = dirname(dir);
  }
  return null;
}
