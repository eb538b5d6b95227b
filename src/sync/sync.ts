// `sync`: materializes one path of the merged image into a local directory exactly as an
// OCI unpacker would, fetching only the chunks that path needs. Files are written at a
// random temporary name with positional writes as chunks arrive (in any order), and renamed
// to their final name only once complete; directory metadata is applied last, deepest
// first, so that restrictive modes and mtimes are not disturbed by our own writes.
// Below DEST, every operation goes through a directory descriptor opened without following
// symlinks (dest-fs.ts), and metadata through the entry's own descriptor: no path string is
// ever resolved again, so nothing the image or DEST holds can redirect a write outside DEST.
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { ErrorCodes, StargzError, toStargzError } from '../errors.js';
import type { MergedFs } from '../vfs/merged-fs.js';
import { isFile, visibleXattrs, type Inode, type VNode } from '../vfs/node.js';
import { mapConcurrent } from '../util/concurrent.js';
import { checkEntryName, NameSet } from './dest-path.js';
import { DestFs, type DirHandle } from './dest-fs.js';
import { DestReuse, sameMetadata, type ReuseCounts, type ReuseOptions } from './reuse.js';

export interface SyncOptions {
  /** Set owners (default: only when running as root, like tar). */
  preserveOwners?: boolean;
  signal?: AbortSignal;
  onProgress?: (progress: SyncProgress) => void;
  /** Non-fatal problems (not root: owners and device nodes skipped...). */
  warn?: (message: string) => void;
  /** what DEST already has is reused; --delete, --quick (reuse.ts). */
  reuse?: ReuseOptions;
  /** Called once, after the pre-pass, when some file is to be fetched (the CLI starts the inflate workers then). */
  beforeFetch?: () => void;
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
  /** files DEST already had, leftovers removed, extra entries deleted or kept. */
  dest?: ReuseCounts;
}

/** A directory to create (or DEST itself): its handle is filled in once it is open. */
interface DirPlan extends DirHandle {
  node: VNode | undefined;
  parent: DirPlan | undefined;
  name: string;
  depth: number;
}

/** One name in a planned directory. */
interface Place {
  dir: DirPlan;
  name: string;
}

interface FileJob extends Place {
  /** The first of the file's names met (what it is read by). */
  node: VNode;
  inode: Inode;
  tmp?: string;
  fd?: number;
  opening?: Promise<number>;
  remaining: number;
  /** End of the furthest byte written: a shorter file gets its (sparse) tail by truncation. */
  writtenEnd: number;
  /** Other places in the synced tree that are hardlinks to this file. */
  links: Place[];
}

/** Entries created at once (each allocates an inode in the thread pool). */
const CREATE_CONCURRENCY = 16;

/** Directories grouped by depth, shallowest first: a level only needs the ones above. */
function byDepth(dirs: DirPlan[]): DirPlan[][] {
  const levels: DirPlan[][] = [];
  for (const d of dirs) (levels[d.depth] ??= []).push(d);
  return levels.filter((l) => l !== undefined);
}

const S_IFIFO = 0o010000;
const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
const DIR_OPEN = fs.constants.O_RDONLY | fs.constants.O_DIRECTORY;

export async function syncPath(image: MergedFs, imagePath: string, dest: string, options: SyncOptions = {}): Promise<SyncSummary> {
  const run = new SyncRun(image, options);
  return run.run(imagePath, dest);
}

class SyncRun {
  private readonly preserveOwners: boolean;
  private readonly warned = new Set<string>();
  private readonly disk = new DestFs();
  private readonly jobs: FileJob[] = [];
  /** Set when the run failed elsewhere: no new file is started. */
  private abandoned = false;
  private readonly summary: SyncSummary = { target: '', directories: 0, files: 0, symlinks: 0, hardlinks: 0, specials: 0, bytesWritten: 0 };
  private readonly progress: SyncProgress = { filesDone: 0, filesTotal: 0, bytesDone: 0, bytesTotal: 0 };
  private readonly dest: DestReuse;

  constructor(
    private readonly image: MergedFs,
    private readonly options: SyncOptions,
  ) {
    const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
    this.preserveOwners = options.preserveOwners ?? isRoot;
    this.dest = new DestReuse(this.disk, options.reuse ?? {}, this.preserveOwners, (inode, fd) => this.applyMetadata(inode, fd));
  }

  async run(imagePath: string, dest: string): Promise<SyncSummary> {
    const top = this.image.resolve(imagePath, false);
    try {
      const root = await this.openRoot(top, dest);
      await this.materialize(top, root);
    } catch (err) {
      this.abandoned = true;
      await this.disk.abandon();
      throw toStargzError(err);
    } finally {
      await this.disk.drain();
      for (const job of this.jobs) if (job.fd !== undefined) fs.closeSync(job.fd);
      this.disk.closeAll();
    }
    this.summary.dest = this.dest.counts;
    return this.summary;
  }

  /**
   * DEST is the user's path and is followed as typed. Like `cp -a`: a directory becomes
   * DEST; anything else lands in DEST when DEST is an existing directory, else becomes DEST.
   * Returns the directory the top entry is created in (or DEST itself, for a directory).
   */
  private async openRoot(top: VNode, dest: string): Promise<DirPlan> {
    const open = (path: string, node: VNode | undefined, name: string): DirPlan => {
      const d: DirPlan = { fd: fs.openSync(path, DIR_OPEN), node, parent: undefined, name, depth: 0 };
      this.disk.adopt(d);
      return d;
    };
    if (top.children) {
      const st = await fsp.stat(dest).catch(() => undefined);
      if (!st?.isDirectory()) {
        await fsp.rm(dest, { force: true }); // a file (or dangling symlink) where the directory goes: replaced
        await fsp.mkdir(dest, { recursive: true, mode: 0o700 });
      }
      this.summary.target = dest;
      return open(dest, top, '');
    }
    const st = await fsp.stat(dest).catch(() => undefined);
    if (st?.isDirectory()) {
      const name = top.name === '' ? 'root' : top.name;
      checkEntryName(name);
      this.summary.target = join(dest, name);
      return open(dest, undefined, name);
    }
    await fsp.mkdir(dirname(dest), { recursive: true });
    this.summary.target = dest;
    return open(dirname(dest), undefined, basename(dest));
  }

  private async materialize(top: VNode, root: DirPlan): Promise<void> {
    // Plan: the place of every node, files grouped by inode (hardlinks).
    const dirs: DirPlan[] = [];
    const others: Array<Place & { node: VNode }> = [];
    const byInode = new Map<Inode, FileJob>();
    const plan = (node: VNode, place: Place | undefined): void => {
      if (node.children) {
        const dir: DirPlan = place
          ? { fd: -1, node, parent: place.dir, name: place.name, depth: place.dir.depth + 1 }
          : root; // the top directory is DEST itself
        dirs.push(dir);
        const names = new NameSet();
        for (const child of this.image.readdir(node)) {
          names.add(child.name, node.path);
          plan(child, { dir, name: child.name });
        }
        return;
      }
      const at = place!;
      if (isFile(node)) {
        const job = byInode.get(node.inode);
        if (job) {
          job.links.push(at);
          return;
        }
        byInode.set(node.inode, { ...at, node, inode: node.inode, remaining: this.image.chunksFor(node).length, writtenEnd: 0, links: [] });
        this.progress.filesTotal++;
        this.progress.bytesTotal += this.image.size(node);
        return;
      }
      others.push({ ...at, node });
    };
    plan(top, top.children ? undefined : { dir: root, name: root.name });
    this.jobs.push(...byInode.values());

    // Creating an entry allocates an inode, which can take a millisecond on a busy ext4:
    // those calls go to the thread pool, many at once. Changing metadata of an existing
    // entry is cheap and stays synchronous.
    // 1. Directories, parents first (one depth level at a time), writable by us until their
    //    metadata is applied at the end.
    for (const level of byDepth(dirs)) {
      await mapConcurrent(level, CREATE_CONCURRENCY, async (d) => {
        if (d.pinned) return; // DEST itself
        await this.disk.mkdir(d);
      });
    }
    this.summary.directories = dirs.length;

    // pre-pass: leftover temporaries removed, files DEST already has settled
    // (metadata made exact) and taken out of the fetch plan.
    const settled = await this.dest.prepass(dirs, this.jobs);
    for (const job of settled) {
      this.summary.files++;
      this.summary.hardlinks += job.links.length;
      this.progress.filesTotal--;
      this.progress.bytesTotal -= job.inode.entry.size;
    }

    // 2. Regular files: all chunks of a layer in one call, so neighbouring chunks of
    //    different files share range requests. Started first so that the fetches are in
    //    flight while links and special files are made.
    const toWrite = this.jobs.filter((job) => !settled.has(job));
    if (toWrite.some((job) => job.remaining > 0)) this.options.beforeFetch?.();
    const files = this.writeFiles(toWrite);
    files.catch(() => undefined); // awaited below; a failure while step 3 runs is not unhandled

    // 3. Symlinks, device nodes, fifos.
    try {
      await mapConcurrent(others, CREATE_CONCURRENCY, (o) => this.makeSpecial(o.node, o));
    } catch (err) {
      this.abandoned = true; // stop the file writers, then report this failure
      await files.catch(() => undefined);
      throw err;
    }
    await files;

    // post-pass: entries DEST has beyond the path, removed (--delete) or counted,
    // before directory metadata (a removal changes its directory's mtime).
    await this.dest.postpass(dirs);

    // 4. Directory metadata through each directory's descriptor, deepest first (creating
    //    children changes a directory's mtime).
    for (let i = dirs.length - 1; i >= 0; i--) {
      const d = dirs[i]!;
      await this.disk.use(d, (fd) => {
        const st = fs.fstatSync(fd);
        // No entry in any layer (the image root, usually): a plain 0755 directory, as unpackers make it.
        if (d.node!.inode.entry.implicit) {
          if ((st.mode & 0o7777) !== 0o755) fs.fchmodSync(fd, 0o755);
        } else if (!sameMetadata(st, d.node!.inode.entry, this.preserveOwners)) {
          this.applyMetadata(d.node!.inode, fd); // a directory already right is not written (an identical re-sync changes no ctime)
        }
      });
    }
  }

  private async makeSpecial(node: VNode, at: Place): Promise<void> {
    const entry = node.inode.entry;
    const native = this.disk.native;
    let tmp: string;
    if (entry.type === 'symlink') {
      const setMetadata = (fd: number, name: string): void => {
        if (this.preserveOwners) native.lchownAt(fd, name, entry.uid, entry.gid);
        native.lutimesAt(fd, name, entry.mtimeMs / 1000);
      };
      this.summary.symlinks++;
      // a symlink DEST already has with the same target stays (owner, mtime set in place).
      if (await this.dest.keepSymlink(at.dir, at.name, entry, setMetadata)) return;
      const link = (tmp = await this.disk.symlinkTemp(at.dir, entry.linkName));
      await this.disk.use(at.dir, (fd) => setMetadata(fd, link));
    } else {
      const typeBits = entry.type === 'fifo' ? S_IFIFO : entry.type === 'char' ? S_IFCHR : S_IFBLK;
      try {
        tmp = await this.disk.mknodTemp(at.dir, typeBits | (entry.mode & 0o7777), entry.devMajor, entry.devMinor);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EPERM') {
          this.warnOnce('mknod', `not permitted to create device nodes (not root): ${entry.type} entries skipped`);
          return;
        }
        throw err;
      }
      // Not opened (opening a device has effects): metadata by name, on the temporary we just made.
      const made = tmp;
      await this.disk.use(at.dir, (fd) => this.applyMetadataAt(node.inode, fd, made));
      this.summary.specials++;
    }
    await this.disk.replace(at.dir, tmp, at.name);
  }

  private async writeFiles(jobs: FileJob[]): Promise<void> {
    const byNode = new Map<VNode, FileJob>();
    const empty: FileJob[] = [];
    for (const job of jobs) {
      if (job.remaining === 0) empty.push(job);
      else byNode.set(job.node, job);
    }
    await mapConcurrent(empty, CREATE_CONCURRENCY, async (job) => {
      await this.openJob(job);
      await this.finishJob(job);
    });
    await this.image.readFiles(
      byNode.keys(),
      async (node, fileOffset, data, chunkDone) => {
        // Once anything failed, no new file is started: the run is being abandoned.
        if (this.abandoned) throw new StargzError(ErrorCodes.ABORTED, 'sync abandoned');
        const job = byNode.get(node)!;
        const fd = await this.openJob(job);
        await this.disk.writeFully(fd, data, fileOffset);
        job.writtenEnd = Math.max(job.writtenEnd, fileOffset + data.length);
        this.summary.bytesWritten += data.length;
        this.progress.bytesDone += data.length;
        // A chunk too large for memory arrives in pieces: it counts as done with its last.
        if (chunkDone && --job.remaining === 0) await this.finishJob(job);
      },
      this.options.signal,
    );
  }

  private openJob(job: FileJob): Promise<number> {
    if (job.fd !== undefined) return Promise.resolve(job.fd);
    job.opening ??= this.disk.createTemp(job.dir).then(({ name, fd }) => {
      job.tmp = name;
      job.fd = fd;
      return fd;
    });
    return job.opening;
  }

  private async finishJob(job: FileJob): Promise<void> {
    const fd = job.fd!;
    const entry = job.inode.entry;
    const linkTemps: string[] = [];
    try {
      if (job.writtenEnd < entry.size) fs.ftruncateSync(fd, entry.size);
      // Metadata through the descriptor, synchronously: each call is a few microseconds,
      // cheaper than a trip through the thread pool.
      this.applyMetadata(job.inode, fd);
      // Hardlinks from the temporary (ours, just made), before it gets its final name.
      for (const link of job.links) linkTemps.push(await this.disk.linkTemp(job.dir, job.tmp!, link.dir));
    } finally {
      job.fd = undefined;
      fs.closeSync(fd);
    }
    await this.disk.replace(job.dir, job.tmp!, job.name);
    this.summary.files++;
    for (let i = 0; i < job.links.length; i++) {
      const link = job.links[i]!;
      await this.disk.replace(link.dir, linkTemps[i]!, link.name);
      this.summary.hardlinks++;
    }
    this.progress.filesDone++;
    this.options.onProgress?.(this.progress);
  }

  /** Owner, then mode (chown clears setuid), xattrs, and mtime last, through the entry's own descriptor. */
  private applyMetadata(inode: Inode, fd: number): void {
    const entry = inode.entry;
    if (this.preserveOwners) fs.fchownSync(fd, entry.uid, entry.gid);
    else this.noteOwner(entry);
    fs.fchmodSync(fd, entry.mode & 0o7777);
    this.setXattrs(entry, (name, value) => this.disk.native.fsetxattr(fd, name, value));
    const t = entry.mtimeMs / 1000;
    fs.futimesSync(fd, t, t);
  }

  /** The same for an entry that cannot be opened (device node, fifo), by its name in dir, never following it. */
  private applyMetadataAt(inode: Inode, dirfd: number, name: string): void {
    const entry = inode.entry;
    const native = this.disk.native;
    if (this.preserveOwners) native.lchownAt(dirfd, name, entry.uid, entry.gid);
    else this.noteOwner(entry);
    native.chmodAt(dirfd, name, entry.mode & 0o7777);
    this.setXattrs(entry, (xname, value) => native.lsetxattrAt(dirfd, name, xname, value));
    native.lutimesAt(dirfd, name, entry.mtimeMs / 1000);
  }

  private noteOwner(entry: Inode['entry']): void {
    if (entry.uid !== 0 || entry.gid !== 0) this.warnOnce('owner', 'not running as root: file owners are not preserved');
  }

  private setXattrs(entry: Inode['entry'], set: (name: string, value: Buffer) => void): void {
    const xattrs = visibleXattrs(entry);
    for (const name of Object.keys(xattrs)) {
      try {
        set(name, xattrs[name]!);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        const ns = name.split('.')[0];
        if (code === 'EPERM' || code === 'ENOTSUP') this.warnOnce('xattr:' + ns, `cannot set ${ns}.* xattrs here (${code}): skipped`);
        else throw err;
      }
    }
  }

  private warnOnce(key: string, message: string): void {
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.options.warn?.(message);
  }
}
