// The file-system operations of `sync`, every one relative to a directory descriptor opened
// without following symlinks, on a single entry name (native/fs_at.c): nothing can lead a write,
// a chmod or a removal outside DEST, whatever the image or DEST already holds. Calls that
// allocate inodes run on the thread pool; every call in flight is tracked so that no
// descriptor is closed while the thread pool still uses it.
// A tree can have more directories than a process may hold descriptors, so idle directory
// descriptors beyond a budget are closed (least recently used first) and reopened when needed
// with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS) from DEST, then checked to be the very
// directory created (same device and inode): a name is never trusted to lead back to it.
import * as fs from 'node:fs';
import { readFileSync } from 'node:fs';
import { ErrorCodes, StargzError } from '../errors.js';
import { posixExtra, type PosixExtra } from '../util/native.js';
import { errnoCode } from '../util/errno-code.js';
import { tempName } from './dest-path.js';

/** A directory of DEST. Its descriptor is open (fd >= 0) or closed to save descriptors (fd = -1). */
export interface DirHandle {
  fd: number;
  /** Where it was created: reopened through these names from the nearest pinned ancestor. */
  parent: DirHandle | undefined;
  name: string;
  dev?: number;
  ino?: number;
  /** Calls using fd right now: it is not closed under them. */
  users?: number;
  /** Opened from the user's path (DEST or its parent): held for the whole run. */
  pinned?: boolean;
  reopening?: Promise<void>;
}

const MAX_TEMP_ATTEMPTS = 8;
/** Directory descriptors held at most (an eighth of the open-file limit, and no more than this). */
const MAX_HELD_DIRS = 4096;

const writeFd = (fd: number, buf: Buffer, off: number, len: number, pos: number): Promise<number> =>
  new Promise((resolve, reject) => fs.write(fd, buf, off, len, pos, (err, n) => (err ? reject(err) : resolve(n))));

/** The soft RLIMIT_NOFILE (Linux /proc), or a conservative guess. */
function openFileLimit(): number {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
    const soft = Number(line?.split(/\s{2,}/)[1]);
    if (Number.isSafeInteger(soft) && soft > 0) return soft;
  } catch {
    // not Linux, or no /proc: guess
  }
  return 1024;
}

export class DestFs {
  readonly native: PosixExtra;
  private readonly pending = new Set<Promise<unknown>>();
  /** Temporaries created and not yet renamed: removed (by descriptor) if the run fails. */
  private readonly temps = new Map<string, DirHandle>();
  /** Open directory descriptors, least recently used first. */
  private readonly open = new Map<DirHandle, true>();
  private readonly budget: number;
  /** After drain(): no new call starts, but during abandon()'s clean-up (cleanup calls only). */
  private closing = false;
  private cleaning = false;

  constructor(budget = Math.max(16, Math.min(MAX_HELD_DIRS, Math.floor(openFileLimit() / 8)))) {
    const native = posixExtra();
    if (!native) throw new StargzError(ErrorCodes.IO, 'native addon missing: sync needs it to write safely (run npm run build:native)');
    this.native = native;
    this.budget = budget;
  }

  private track<T>(start: () => Promise<T>, cleanup = false): Promise<T> {
    if (this.closing && !(cleanup && this.cleaning)) return Promise.reject(new StargzError(ErrorCodes.ABORTED, 'sync abandoned'));
    const p = start();
    this.pending.add(p);
    const forget = (): void => void this.pending.delete(p);
    p.then(forget, forget);
    return p;
  }

  /** DEST (or the directory the top entry goes in), opened by the caller from the user's path. */
  adopt(dir: DirHandle): void {
    dir.pinned = true;
    this.open.set(dir, true);
  }

  /** Runs fn with dir's descriptor, reopening it first if it was closed. */
  async use<T>(dir: DirHandle, fn: (fd: number) => T | Promise<T>): Promise<T> {
    while (dir.fd < 0) await (dir.reopening ??= this.reopen(dir).finally(() => (dir.reopening = undefined)));
    dir.users = (dir.users ?? 0) + 1;
    if (this.open.size > this.budget) {
      // Under pressure only: keep the least recently used first.
      this.open.delete(dir);
      this.open.set(dir, true);
    }
    try {
      return await fn(dir.fd);
    } finally {
      dir.users--;
      this.evict();
    }
  }

  private async reopen(dir: DirHandle): Promise<void> {
    const names: string[] = [];
    let base = dir;
    while (!base.pinned) {
      names.unshift(base.name);
      base = base.parent!;
    }
    const fd = await this.use(base, (baseFd) => this.track(() => this.native.openBeneath(baseFd, names.join('/')), true));
    const st = fs.fstatSync(fd);
    if (st.dev !== dir.dev || st.ino !== dir.ino) {
      fs.closeSync(fd);
      throw new StargzError(ErrorCodes.UNSAFE_PATH, `directory ${JSON.stringify(names.join('/'))} was replaced while sync wrote into it`);
    }
    dir.fd = fd;
    this.open.set(dir, true);
  }

  /** Closes idle directory descriptors, least recently used first, down to the budget. */
  private evict(): void {
    if (this.open.size <= this.budget) return;
    for (const dir of this.open.keys()) {
      if (this.open.size <= this.budget) break;
      if (dir.pinned || (dir.users ?? 0) > 0) continue;
      this.open.delete(dir);
      fs.closeSync(dir.fd);
      dir.fd = -1;
    }
  }

  /** Creates (or reuses) child.name in child.parent and opens it: an existing directory is kept, a file or symlink there replaced. */
  async mkdir(child: DirHandle): Promise<void> {
    const fd = await this.use(child.parent!, (parentFd) => this.track(() => this.native.mkdirOpenAt(parentFd, child.name, 0o700)));
    const st = fs.fstatSync(fd);
    child.fd = fd;
    child.dev = st.dev;
    child.ino = st.ino;
    this.open.set(child, true);
    this.evict();
  }

  /** Runs create(dirfd, name) with fresh random names until one does not exist yet. */
  private async withTemp<T>(dir: DirHandle, create: (fd: number, name: string) => Promise<T>): Promise<{ name: string; value: T }> {
    for (let attempt = 1; ; attempt++) {
      const name = tempName();
      try {
        const value = await this.use(dir, (fd) => this.track(() => create(fd, name)));
        this.temps.set(name, dir);
        return { name, value };
      } catch (err) {
        if (errnoCode(err) !== 'EEXIST' || attempt >= MAX_TEMP_ATTEMPTS) throw err;
      }
    }
  }

  /** A new temporary file in dir, open for writing. */
  async createTemp(dir: DirHandle): Promise<{ name: string; fd: number }> {
    const { name, value } = await this.withTemp(dir, (fd, n) => this.native.createAt(fd, n, 0o600));
    return { name, fd: value };
  }

  async symlinkTemp(dir: DirHandle, target: string): Promise<string> {
    return (await this.withTemp(dir, (fd, n) => this.native.symlinkAt(target, fd, n))).name;
  }

  async mknodTemp(dir: DirHandle, mode: number, major: number, minor: number): Promise<string> {
    return (await this.withTemp(dir, (fd, n) => this.native.mknodAt(fd, n, mode, major, minor))).name;
  }

  /** A new temporary hardlink in dir to the temporary `name` of srcDir. */
  async linkTemp(srcDir: DirHandle, name: string, dir: DirHandle): Promise<string> {
    return (await this.withTemp(dir, (fd, n) => this.use(srcDir, (srcFd) => this.native.linkAt(srcFd, name, fd, n)))).name;
  }

  /** Atomically puts the temporary at `name`; whatever is in the way (even a directory) is removed first, by descriptor. */
  async replace(dir: DirHandle, temp: string, name: string): Promise<void> {
    await this.use(dir, async (fd) => {
      try {
        await this.track(() => this.native.renameAt(fd, temp, fd, name));
      } catch (err) {
        const c = errnoCode(err);
        if (c !== 'EISDIR' && c !== 'ENOTEMPTY' && c !== 'EEXIST' && c !== 'ENOTDIR') throw err;
        await this.track(() => this.native.removeTreeAt(fd, name));
        await this.track(() => this.native.renameAt(fd, temp, fd, name));
      }
    });
    this.temps.delete(temp);
  }

  /** Removes the entry `name` of dir (a directory with everything below it); a symlink is
   * removed itself, never followed. For leftovers of killed runs and `--delete` (issue 11). */
  async removeEntry(dir: DirHandle, name: string): Promise<void> {
    await this.use(dir, (fd) => this.track(() => this.native.removeTreeAt(fd, name)));
  }

  async writeFully(fd: number, data: Buffer, position: number): Promise<void> {
    let off = 0;
    while (off < data.length) off += await this.track(() => writeFd(fd, data, off, data.length - off, position + off));
  }

  /** After a failure: lets every call in flight finish, then removes the temporaries left. */
  async abandon(): Promise<void> {
    await this.drain();
    const left = [...this.temps];
    this.temps.clear();
    this.cleaning = true;
    await Promise.all(left.map(([name, dir]) => this.use(dir, (fd) => this.track(() => this.native.removeTreeAt(fd, name), true)).catch(() => undefined)));
    this.cleaning = false;
    await this.drain();
  }

  /** Waits for every call in flight; no new one starts. Then descriptors can be closed. */
  async drain(): Promise<void> {
    this.closing = true;
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }

  /** Closes every directory descriptor (after drain). */
  closeAll(): void {
    for (const dir of this.open.keys()) {
      fs.closeSync(dir.fd);
      dir.fd = -1;
    }
    this.open.clear();
  }
}
