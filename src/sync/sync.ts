// `sync`: materializes one path of the merged image into a local directory exactly as an
// OCI unpacker would, fetching only the chunks that path needs. Files are written at a
// temporary name with positional writes as chunks arrive (in any order), and renamed to
// their final name only once complete and verified; directory metadata is applied last,
// deepest first, so that restrictive modes and mtimes are not disturbed by our own writes.
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import { promisify } from 'node:util';
import { basename, dirname } from 'node:path';
import { createHash } from 'node:crypto';
import { ErrorCodes, StargzError, toStargzError } from '../errors.js';
import type { ChunkRef } from '../estargz/index.js';
import type { Layer } from '../layer/layer.js';
import type { MergedFs } from '../vfs/merged-fs.js';
import { visibleXattrs, type Inode, type VNode } from '../vfs/node.js';
import { posixExtra } from '../util/native.js';
import { allSettledOrThrow, mapConcurrent } from '../util/concurrent.js';
import { safeChildPath, tempSibling } from './dest-path.js';

export interface SyncOptions {
  /** Set owners (default: only when running as root, like tar). */
  preserveOwners?: boolean;
  signal?: AbortSignal;
  onProgress?: (progress: SyncProgress) => void;
  /** Non-fatal problems (not root: owners and device nodes skipped...). */
  warn?: (message: string) => void;
}

export interface SyncProgress {
  filesDone: number;
  filesTotal: number;
  bytesDone: number;
  bytesTotal: number;
}

export interface SyncSummary {
  /** Where the synced path landed. */
  target: string;
  directories: number;
  files: number;
  symlinks: number;
  hardlinks: number;
  specials: number;
  bytesWritten: number;
}

interface FileJob {
  inode: Inode;
  finalPath: string;
  tmpPath: string;
  fd?: number;
  opening?: Promise<number>;
  remaining: number;
  /** End of the furthest byte written: a shorter file gets its (sparse) tail by truncation. */
  writtenEnd: number;
  /** Other paths in the synced tree that are hardlinks to this file. */
  links: string[];
  done: boolean;
}

// Raw descriptors rather than FileHandles: one file costs a handful of syscalls, and the
// per-handle bookkeeping of FileHandle is measurable over tens of thousands of files.
const openFd = promisify(fs.open);
const writeFd = (fd: number, buf: Buffer, off: number, len: number, pos: number): Promise<number> =>
  new Promise((resolve, reject) => fs.write(fd, buf, off, len, pos, (err, n) => (err ? reject(err) : resolve(n))));
const readFd = (fd: number, buf: Buffer, off: number, len: number, pos: number): Promise<number> =>
  new Promise((resolve, reject) => fs.read(fd, buf, off, len, pos, (err, n) => (err ? reject(err) : resolve(n))));

/** Entries created at once (each allocates an inode in the thread pool). */
const CREATE_CONCURRENCY = 16;

/** Directories grouped by depth, shallowest first: a level only needs the ones above. */
function byDepth<T extends { path: string }>(dirs: T[]): T[][] {
  const levels = new Map<number, T[]>();
  for (const d of dirs) {
    const depth = d.path.split('/').length;
    let level = levels.get(depth);
    if (!level) levels.set(depth, (level = []));
    level.push(d);
  }
  return [...levels.keys()].sort((a, b) => a - b).map((k) => levels.get(k)!);
}

const S_IFIFO = 0o010000;
const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;

export async function syncPath(fs: MergedFs, imagePath: string, dest: string, options: SyncOptions = {}): Promise<SyncSummary> {
  const run = new SyncRun(fs, options);
  return run.run(imagePath, dest);
}

class SyncRun {
  private readonly preserveOwners: boolean;
  private readonly warned = new Set<string>();
  private readonly tmpFiles = new Set<string>();
  /** Set when the run failed elsewhere: no new file is started. */
  private abandoned = false;
  private readonly summary: SyncSummary = { target: '', directories: 0, files: 0, symlinks: 0, hardlinks: 0, specials: 0, bytesWritten: 0 };
  private readonly progress: SyncProgress = { filesDone: 0, filesTotal: 0, bytesDone: 0, bytesTotal: 0 };

  constructor(
    private readonly fs: MergedFs,
    private readonly options: SyncOptions,
  ) {
    const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
    this.preserveOwners = options.preserveOwners ?? isRoot;
  }

  async run(imagePath: string, dest: string): Promise<SyncSummary> {
    const top = this.fs.resolve(imagePath, false);
    // Like `cp -a`: a directory becomes DEST; anything else lands in DEST when DEST is an
    // existing directory, else becomes DEST.
    let target = dest;
    if (!top.children) {
      const st = await fsp.stat(dest).catch(() => undefined);
      if (st?.isDirectory()) target = safeChildPath(dest, top.name === '' ? 'root' : top.name);
      else await fsp.mkdir(dirname(dest), { recursive: true });
    }
    this.summary.target = target;
    try {
      await this.materialize(top, target);
    } catch (err) {
      await this.removeTemporaries();
      throw toStargzError(err);
    }
    return this.summary;
  }

  private async materialize(top: VNode, target: string): Promise<void> {
    // Plan: destination path of every node, files grouped by inode (hardlinks).
    const dirs: Array<{ node: VNode; path: string }> = [];
    const others: Array<{ node: VNode; path: string }> = [];
    const jobs = new Map<Inode, FileJob>();
    const plan = (node: VNode, path: string): void => {
      if (node.children) {
        dirs.push({ node, path });
        for (const child of this.fs.readdir(node)) plan(child, safeChildPath(path, child.name));
        return;
      }
      const type = node.inode.entry.type;
      if (type === 'reg' || type === 'hardlink') {
        const job = jobs.get(node.inode);
        if (job) {
          job.links.push(path);
          return;
        }
        jobs.set(node.inode, {
          inode: node.inode,
          finalPath: path,
          tmpPath: tempSibling(dirname(path), basename(path)),
          remaining: node.inode.entry.chunks.length,
          writtenEnd: 0,
          links: [],
          done: false,
        });
        this.progress.filesTotal++;
        this.progress.bytesTotal += node.inode.entry.size;
        return;
      }
      others.push({ node, path });
    };
    plan(top, target);

    // Creating an entry allocates an inode, which can take a millisecond on a busy ext4:
    // those calls go to the thread pool, many at once. Changing metadata of an existing
    // entry is cheap and stays synchronous.
    // 1. Directories, parents first (one depth level at a time), writable by us until their
    //    metadata is applied at the end.
    for (const level of byDepth(dirs)) await mapConcurrent(level, CREATE_CONCURRENCY, (d) => this.makeDir(d.path));
    this.summary.directories = dirs.length;

    // 2. Regular files: all chunks of a layer in one call, so neighbouring chunks of
    //    different files share range requests. Started first so that the fetches are in
    //    flight while links and special files are made.
    const files = this.writeFiles([...jobs.values()]);

    // 3. Symlinks, device nodes, fifos.
    try {
      await mapConcurrent(others, CREATE_CONCURRENCY, (o) => this.makeSpecial(o.node, o.path));
    } catch (err) {
      this.abandoned = true; // stop the file writers, then report this failure
      await files.catch(() => undefined);
      throw err;
    }
    await files;

    // 4. Directory metadata, deepest first (creating children changes a directory's mtime).
    for (let i = dirs.length - 1; i >= 0; i--) {
      const { node, path } = dirs[i]!;
      if (node.inode.entry.implicit) {
        // No entry in any layer (the image root, usually): a plain 0755 directory, as unpackers make it.
        fs.chmodSync(path, 0o755);
        continue;
      }
      this.applyMetadata(node.inode, path);
    }
  }

  private async makeDir(path: string): Promise<void> {
    try {
      await fsp.mkdir(path, { mode: 0o700 });
      return;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') {
        await fsp.mkdir(path, { recursive: true, mode: 0o700 }); // DEST's own parents
        return;
      }
      if (code !== 'EEXIST') throw err;
    }
    if ((await fsp.lstat(path)).isDirectory()) return;
    await fsp.rm(path, { recursive: true, force: true }); // a file or symlink in the way: replace it, never follow it
    await fsp.mkdir(path, { mode: 0o700 });
  }

  private async makeSpecial(node: VNode, path: string): Promise<void> {
    const entry = node.inode.entry;
    const tmp = tempSibling(dirname(path), basename(path));
    this.tmpFiles.add(tmp);
    if (entry.type === 'symlink') {
      await fsp.symlink(entry.linkName, tmp);
      if (this.preserveOwners) fs.lchownSync(tmp, entry.uid, entry.gid);
      const t = entry.mtimeMs / 1000;
      fs.lutimesSync(tmp, t, t);
      this.summary.symlinks++;
    } else {
      const native = posixExtra();
      const typeBits = entry.type === 'fifo' ? S_IFIFO : entry.type === 'char' ? S_IFCHR : S_IFBLK;
      if (!native) {
        this.warnOnce('native', `native addon missing: ${entry.type} entries skipped (run npm run build:native)`);
        this.tmpFiles.delete(tmp);
        return;
      }
      try {
        native.mknod(tmp, typeBits | (entry.mode & 0o7777), entry.devMajor, entry.devMinor);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EPERM') {
          this.tmpFiles.delete(tmp);
          this.warnOnce('mknod', `not permitted to create device nodes (not root): ${entry.type} entries skipped`);
          return;
        }
        throw err;
      }
      this.applyMetadata(node.inode, tmp);
      this.summary.specials++;
    }
    await this.replace(tmp, path);
    this.tmpFiles.delete(tmp);
  }

  private async writeFiles(jobs: FileJob[]): Promise<void> {
    const byLayer = new Map<Layer, { refs: ChunkRef[]; owner: Map<ChunkRef, FileJob> }>();
    const empty: FileJob[] = [];
    for (const job of jobs) {
      if (job.remaining === 0) {
        empty.push(job);
        continue;
      }
      let group = byLayer.get(job.inode.layer);
      if (!group) byLayer.set(job.inode.layer, (group = { refs: [], owner: new Map() }));
      for (const ref of job.inode.entry.chunks) {
        group.refs.push(ref);
        group.owner.set(ref, job);
      }
    }
    await mapConcurrent(empty, 16, async (job) => {
      await this.openJob(job);
      await this.finishJob(job);
    });
    let failed = false;
    await allSettledOrThrow(
      [...byLayer].map(([layer, group]) =>
        layer.readChunks(
          group.refs,
          async (ref, data) => {
            // Once anything failed, no new file is started: the run is being abandoned.
            if (failed || this.abandoned) throw new StargzError(ErrorCodes.ABORTED, 'sync abandoned');
            const job = group.owner.get(ref)!;
            const fd = await this.openJob(job);
            await writeFully(fd, data, ref.fileOffset);
            job.writtenEnd = Math.max(job.writtenEnd, ref.fileOffset + data.length);
            this.summary.bytesWritten += data.length;
            this.progress.bytesDone += data.length;
            if (--job.remaining === 0) await this.finishJob(job);
          },
          { signal: this.options.signal },
        ).catch((err: unknown) => {
          failed = true;
          throw err;
        }),
      ),
    );
  }

  private openJob(job: FileJob): Promise<number> {
    if (job.fd !== undefined) return Promise.resolve(job.fd);
    if (!job.opening) {
      this.tmpFiles.add(job.tmpPath);
      const c = fs.constants;
      job.opening = openFd(job.tmpPath, c.O_CREAT | c.O_EXCL | c.O_WRONLY | c.O_NOFOLLOW, 0o600).then((fd) => {
        job.fd = fd;
        return fd;
      });
    }
    return job.opening;
  }

  private async finishJob(job: FileJob): Promise<void> {
    const fd = job.fd!;
    const entry = job.inode.entry;
    try {
      if (job.writtenEnd < entry.size) fs.ftruncateSync(fd, entry.size);
      // Every chunk was verified against its chunk digest as it arrived; a TOC without
      // chunk digests gets the whole-file digest checked instead.
      if (entry.digest && entry.chunks.some((c) => !c.digest)) await verifyFileDigest(fd, entry.digest, job.finalPath);
      // Metadata through the descriptor, synchronously: each call is a few microseconds,
      // cheaper than a trip through the thread pool.
      this.applyMetadata(job.inode, job.tmpPath, fd);
    } finally {
      fs.closeSync(fd);
      job.fd = undefined;
    }
    await this.replace(job.tmpPath, job.finalPath);
    this.tmpFiles.delete(job.tmpPath);
    this.summary.files++;
    for (const link of job.links) {
      const tmp = tempSibling(dirname(link), basename(link));
      this.tmpFiles.add(tmp);
      await fsp.link(job.finalPath, tmp);
      await this.replace(tmp, link);
      this.tmpFiles.delete(tmp);
      this.summary.hardlinks++;
    }
    this.progress.filesDone++;
    this.options.onProgress?.(this.progress);
  }

  /**
   * Owner, then mode (chown clears setuid), xattrs, and mtime last; through the descriptor
   * when the entry is a file we have open.
   */
  private applyMetadata(inode: Inode, path: string, fd?: number): void {
    const entry = inode.entry;
    const t = entry.mtimeMs / 1000;
    if (this.preserveOwners) {
      if (fd === undefined) fs.lchownSync(path, entry.uid, entry.gid);
      else fs.fchownSync(fd, entry.uid, entry.gid);
    } else if (entry.uid !== 0 || entry.gid !== 0) this.warnOnce('owner', 'not running as root: file owners are not preserved');
    if (fd === undefined) fs.chmodSync(path, entry.mode & 0o7777);
    else fs.fchmodSync(fd, entry.mode & 0o7777);
    this.setXattrs(entry, path);
    if (fd === undefined) fs.utimesSync(path, t, t);
    else fs.futimesSync(fd, t, t);
  }

  private setXattrs(entry: Inode['entry'], path: string): void {
    const xattrs = visibleXattrs(entry);
    const names = Object.keys(xattrs);
    if (names.length > 0) {
      const native = posixExtra();
      if (!native) this.warnOnce('xattr', 'native addon missing: extended attributes skipped');
      else {
        for (const name of names) {
          try {
            native.lsetxattr(path, name, xattrs[name]!);
          } catch (err) {
            const code = (err as NodeJS.ErrnoException).code;
            if (code === 'EPERM' || code === 'ENOTSUP') this.warnOnce('xattr:' + name.split('.')[0], `cannot set ${name.split('.')[0]}.* xattrs here (${code}): skipped`);
            else throw err;
          }
        }
      }
    }
  }

  /** Atomically puts tmp at path; a directory in the way is removed first. */
  private async replace(tmp: string, path: string): Promise<void> {
    try {
      await fsp.rename(tmp, path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EISDIR' && code !== 'ENOTEMPTY' && code !== 'EEXIST' && code !== 'ENOTDIR') throw err;
      await fsp.rm(path, { recursive: true, force: true });
      await fsp.rename(tmp, path);
    }
  }

  private async removeTemporaries(): Promise<void> {
    await Promise.all([...this.tmpFiles].map((p) => fsp.rm(p, { force: true }).catch(() => undefined)));
    this.tmpFiles.clear();
  }

  private warnOnce(key: string, message: string): void {
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.options.warn?.(message);
  }
}

async function writeFully(fd: number, data: Buffer, position: number): Promise<void> {
  let off = 0;
  while (off < data.length) off += await writeFd(fd, data, off, data.length - off, position + off);
}

async function verifyFileDigest(fd: number, expected: string, path: string): Promise<void> {
  const hash = createHash('sha256');
  const buf = Buffer.allocUnsafe(1 << 20);
  for (let pos = 0; ; ) {
    const bytesRead = await readFd(fd, buf, 0, buf.length, pos);
    if (bytesRead === 0) break;
    hash.update(buf.subarray(0, bytesRead));
    pos += bytesRead;
  }
  const actual = 'sha256:' + hash.digest('hex');
  if (actual !== expected) {
    throw new StargzError(ErrorCodes.DIGEST_MISMATCH, `${path}: content has digest ${actual}, the TOC says ${expected}`);
  }
}
