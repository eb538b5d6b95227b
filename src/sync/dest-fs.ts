// The file-system operations of `sync`, every one relative to a directory descriptor opened
// without following symlinks, on a single entry name (native/fs_at.c): nothing can lead a write,
// a chmod or a removal outside DEST, whatever the image or DEST already holds. Calls that
// allocate inodes run on the thread pool; every call in flight is tracked so that no
// descriptor is closed while the thread pool still uses it.
import * as fs from 'node:fs';
import { ErrorCodes, StargzError } from '../errors.js';
import { posixExtra, type PosixExtra } from '../util/native.js';
import { tempName } from './dest-path.js';

/** A directory of DEST, open (O_NOFOLLOW) for the whole run. */
export interface DirHandle {
  fd: number;
}

const MAX_TEMP_ATTEMPTS = 8;

const writeFd = (fd: number, buf: Buffer, off: number, len: number, pos: number): Promise<number> =>
  new Promise((resolve, reject) => fs.write(fd, buf, off, len, pos, (err, n) => (err ? reject(err) : resolve(n))));

function code(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException).code;
}

export class DestFs {
  readonly native: PosixExtra;
  private readonly pending = new Set<Promise<unknown>>();
  /** Temporaries created and not yet renamed: removed (by descriptor) if the run fails. */
  private readonly temps = new Map<string, DirHandle>();
  private closing = false;

  constructor() {
    const native = posixExtra();
    if (!native) throw new StargzError(ErrorCodes.IO, 'native addon missing: sync needs it to write safely (run npm run build:native)');
    this.native = native;
  }

  private track<T>(start: () => Promise<T>): Promise<T> {
    if (this.closing) return Promise.reject(new StargzError(ErrorCodes.ABORTED, 'sync abandoned'));
    const p = start();
    this.pending.add(p);
    const forget = (): void => void this.pending.delete(p);
    p.then(forget, forget);
    return p;
  }

  /** A directory named `name` in dir (an existing one reused; a file or symlink there replaced), opened. */
  async mkdirOpen(dir: DirHandle, name: string): Promise<DirHandle> {
    return { fd: await this.track(() => this.native.mkdirOpenAt(dir.fd, name, 0o700)) };
  }

  /** Runs create(name) with fresh random names until one does not exist yet. */
  private async withTemp<T>(dir: DirHandle, create: (name: string) => Promise<T>): Promise<{ name: string; value: T }> {
    for (let attempt = 1; ; attempt++) {
      const name = tempName();
      try {
        const value = await this.track(() => create(name));
        this.temps.set(name, dir);
        return { name, value };
      } catch (err) {
        if (code(err) !== 'EEXIST' || attempt >= MAX_TEMP_ATTEMPTS) throw err;
      }
    }
  }

  /** A new temporary file in dir, open for writing. */
  async createTemp(dir: DirHandle): Promise<{ name: string; fd: number }> {
    const { name, value } = await this.withTemp(dir, (n) => this.native.createAt(dir.fd, n, 0o600));
    return { name, fd: value };
  }

  async symlinkTemp(dir: DirHandle, target: string): Promise<string> {
    return (await this.withTemp(dir, (n) => this.native.symlinkAt(target, dir.fd, n))).name;
  }

  async mknodTemp(dir: DirHandle, mode: number, major: number, minor: number): Promise<string> {
    return (await this.withTemp(dir, (n) => this.native.mknodAt(dir.fd, n, mode, major, minor))).name;
  }

  /** A new temporary hardlink in dir to the temporary `name` of srcDir. */
  async linkTemp(srcDir: DirHandle, name: string, dir: DirHandle): Promise<string> {
    return (await this.withTemp(dir, (n) => this.native.linkAt(srcDir.fd, name, dir.fd, n))).name;
  }

  /** Atomically puts the temporary at `name`; whatever is in the way (even a directory) is removed first, by descriptor. */
  async replace(dir: DirHandle, temp: string, name: string): Promise<void> {
    try {
      await this.track(() => this.native.renameAt(dir.fd, temp, dir.fd, name));
    } catch (err) {
      const c = code(err);
      if (c !== 'EISDIR' && c !== 'ENOTEMPTY' && c !== 'EEXIST' && c !== 'ENOTDIR') throw err;
      await this.track(() => this.native.removeTreeAt(dir.fd, name));
      await this.track(() => this.native.renameAt(dir.fd, temp, dir.fd, name));
    }
    this.temps.delete(temp);
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
    await Promise.all(left.map(([name, dir]) => this.native.removeTreeAt(dir.fd, name).catch(() => undefined)));
  }

  /** Waits for every call in flight; no new one starts. Then descriptors can be closed. */
  async drain(): Promise<void> {
    this.closing = true;
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }
}
