// Reusing what DEST already has (issue 11). Before anything is fetched, each regular file of
// the synced path is compared with what DEST has at its name; a file whose content is already
// right is taken out of the fetch plan and only its metadata (owner, mode, xattrs, mtime) is
// made exact, through its own descriptor. Two checks:
//   'checksum' (the default): same type, same size, and the sha256 of the local bytes equals
//     the TOC's digest of the file. Exact whatever the mtimes say: images built reproducibly
//     give every file one mtime (SOURCE_DATE_EPOCH), so a changed binary of the same size
//     would pass a size + mtime check and stay wrong.
//   'quick' (--quick): rsync's default, same type, size and mtime (whole seconds), no reading.
// A file whose TOC entry has no digest (a plain tar layer) is always fetched under 'checksum'.
// Nothing here follows a symlink DEST holds: listings, opens and links go through directory
// descriptors (dest-scan.ts, dest-fs.ts).
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import type { IndexEntry } from '../estargz/index.js';
import type { Inode, VNode } from '../vfs/node.js';
import { mapConcurrent } from '../util/concurrent.js';
import type { DestFs, DirHandle } from './dest-fs.js';
import { entryPath, listDir, openRegular, sha256OfFd, type DestListing } from './dest-scan.js';
import { removeStaleTemps } from './temporaries.js';
import { pruneExtras } from './prune.js';
import { feedLocalChunks, type LocalChunkSink } from './local-chunks.js';

export type ContentCheck = 'checksum' | 'quick';

export interface ReuseOptions {
  /** How a local file is judged to have the image's content (default 'checksum'). */
  check?: ContentCheck;
  /** Remove entries of DEST that the synced path does not have (default: keep and count them). */
  delete?: boolean;
  /** The image's chunk cache: chunks of local files that do not match whole, verified, go there (local-chunks.ts). */
  localChunks?: LocalChunkSink;
  /** Ctrl-C: no further local file is read. */
  signal?: AbortSignal;
}

/** A directory sync writes into; node is its image directory (undefined: the directory a single entry lands in). */
export interface ScanDir extends DirHandle {
  node: VNode | undefined;
}

export interface ReusePlace {
  dir: ScanDir;
  name: string;
}

/** A regular file of the plan and the other names (hardlinks) it has in the synced tree. */
export interface ReuseFile extends ReusePlace {
  inode: Inode;
  links: ReusePlace[];
}

export interface ReuseCounts {
  /** Content and metadata were already right: nothing was written. */
  unchanged: number;
  /** Content was right, metadata (or a hardlink) was corrected. */
  reused: number;
  /** Bytes of the files above: not fetched, not written. */
  reusedBytes: number;
  /** Fetched files completed in part from chunks of the local file at their name ... */
  fromLocalChunks: number;
  /** ... and the bytes of those chunks (not fetched). */
  localChunkBytes: number;
  /** Symlinks DEST already had with the right target: left in place. */
  symlinksKept: number;
  /** Temporaries of earlier, killed runs removed. */
  staleTemps: number;
  /** Entries of DEST not in the synced path: removed (with --delete) ... */
  deleted: number;
  /** ... or left in place (without). */
  extra: number;
}

const HASH_CONCURRENCY = 4;
const LIST_CONCURRENCY = 8;

export class DestReuse {
  readonly counts: ReuseCounts = { unchanged: 0, reused: 0, reusedBytes: 0, fromLocalChunks: 0, localChunkBytes: 0, symlinksKept: 0, staleTemps: 0, deleted: 0, extra: 0 };
  private readonly check: ContentCheck;
  private readonly listings = new Map<ScanDir, DestListing>();

  constructor(
    private readonly disk: DestFs,
    private readonly options: ReuseOptions,
    private readonly preserveOwners: boolean,
    /** Sets owner, mode, xattrs and mtime of inode through fd (sync.ts's, so both paths agree). */
    private readonly applyMetadata: (inode: Inode, fd: number) => void,
  ) {
    this.check = options.check ?? 'checksum';
  }

  /**
   * After the directories exist, before any file is written: lists each directory, removes
   * leftover temporaries, and settles every file DEST already has. Returns those files: the
   * caller fetches only the others.
   */
  async prepass(dirs: readonly ScanDir[], files: readonly ReuseFile[]): Promise<Set<ReuseFile>> {
    await mapConcurrent(dirs, LIST_CONCURRENCY, async (dir) => {
      const listing = await listDir(this.disk, dir);
      this.counts.staleTemps += await removeStaleTemps(this.disk, dir, listing);
      this.listings.set(dir, listing);
    });
    // A local file can satisfy one image file only: two image files that DEST has as one
    // hardlinked file would otherwise share their metadata.
    const claimed = new Set<string>();
    const candidates: Array<{ file: ReuseFile; st: fs.Stats }> = [];
    for (const file of files) {
      const st = this.listings.get(file.dir)?.get(file.name);
      if (!st || !sameShape(st, file.inode.entry, this.check)) continue;
      const key = `${st.dev}:${st.ino}`;
      if (claimed.has(key)) continue;
      // Its metadata is set in place: only when every name of that inode is one of this file's
      // names here. A link from elsewhere (outside DEST, say) would see our chmod and chown.
      const names = 1 + file.links.filter((l) => sameInode(this.listings.get(l.dir)?.get(l.name), st)).length;
      if (st.nlink > names) continue;
      claimed.add(key);
      candidates.push({ file, st });
    }
    const reused = new Set<ReuseFile>();
    await mapConcurrent(candidates, HASH_CONCURRENCY, async ({ file, st }) => {
      if (await this.settle(file, st)) reused.add(file);
    });
    const sink = this.options.localChunks;
    if (sink) {
      // Files still to fetch that DEST has some version of: their matching chunks come from it.
      await mapConcurrent(files, HASH_CONCURRENCY, async (file) => {
        const st = this.listings.get(file.dir)?.get(file.name);
        if (reused.has(file) || !st?.isFile() || st.size === 0) return;
        this.options.signal?.throwIfAborted();
        const fd = await this.disk.use(file.dir, (dirfd) => openRegular(dirfd, file.name, st));
        if (fd === undefined) return;
        try {
          const fed = await feedLocalChunks(fd, st.size, file.inode.entry, sink);
          if (fed.chunks > 0) {
            this.counts.fromLocalChunks++;
            this.counts.localChunkBytes += fed.bytes;
          }
        } finally {
          fs.closeSync(fd);
        }
      });
    }
    return reused;
  }

  /** Verifies one candidate and, when it holds, makes its metadata and hardlinks exact. */
  private async settle(file: ReuseFile, st: fs.Stats): Promise<boolean> {
    const entry = file.inode.entry;
    this.options.signal?.throwIfAborted();
    // --quick with nothing to correct: the listing said it all, so the file is not even opened
    // (an identical re-sync then costs one lstat per entry, as rsync's does).
    if (this.check === 'quick' && sameMetadata(st, entry, this.preserveOwners) && file.links.every((l) => sameInode(this.listings.get(l.dir)?.get(l.name), st))) {
      this.counts.unchanged++;
      this.counts.reusedBytes += entry.size;
      return true;
    }
    const fd = await this.disk.use(file.dir, (dirfd) => openRegular(dirfd, file.name, st));
    if (fd === undefined) return false;
    try {
      if (this.check === 'checksum' && (await sha256OfFd(fd)) !== entry.digest) return false;
      let exact = sameMetadata(st, entry, this.preserveOwners);
      if (!exact) this.applyMetadata(file.inode, fd);
      for (const link of file.links) {
        const at = this.listings.get(link.dir)?.get(link.name);
        if (sameInode(at, st)) continue;
        exact = false;
        const tmp = await this.disk.linkTemp(file.dir, file.name, link.dir);
        await this.disk.replace(link.dir, tmp, link.name);
      }
      if (exact) this.counts.unchanged++;
      else this.counts.reused++;
      this.counts.reusedBytes += entry.size;
      return true;
    } finally {
      fs.closeSync(fd);
    }
  }

  /**
   * A symlink DEST already has at name with the entry's target is left where it is: its owner
   * and mtime are set on it in place (never following it) when they differ. False when it
   * must be made.
   */
  async keepSymlink(dir: ScanDir, name: string, entry: IndexEntry, setMetadata: (dirfd: number, name: string) => void): Promise<boolean> {
    const st = this.listings.get(dir)?.get(name);
    // A symlink's size is its target's length: most changed targets are told without a readlink.
    if (!st?.isSymbolicLink() || st.size !== Buffer.byteLength(entry.linkName)) return false;
    return this.disk.use(dir, async (fd) => {
      const now = await fsp.readlink(entryPath(fd, name)).catch(() => undefined);
      if (now !== entry.linkName) return false;
      if (!sameOwnerAndMtime(st, entry, this.preserveOwners)) setMetadata(fd, name);
      this.counts.symlinksKept++;
      return true;
    });
  }

  /** After every entry is in place, before directory metadata: removes (or counts) what DEST has beyond the synced path. */
  async postpass(dirs: readonly ScanDir[]): Promise<void> {
    const { deleted, extra } = await pruneExtras(this.disk, dirs, this.listings, this.options.delete ?? false);
    this.counts.deleted += deleted;
    this.counts.extra += extra;
  }
}

/** The checks that need no reading: a regular file of the right size (and, for 'quick', mtime). */
export function sameShape(st: fs.Stats, entry: IndexEntry, check: ContentCheck): boolean {
  if (!st.isFile() || st.size !== entry.size) return false;
  if (check === 'quick') return sameSecond(st.mtimeMs, entry.mtimeMs);
  return entry.digest !== undefined;
}

function sameInode(a: fs.Stats | undefined, b: fs.Stats): boolean {
  return a !== undefined && a.dev === b.dev && a.ino === b.ino;
}

function sameSecond(aMs: number, bMs: number): boolean {
  return Math.floor(aMs / 1000) === Math.floor(bMs / 1000);
}

/**
 * Mode, mtime and (when sync sets them) owners already as the entry says, so that nothing needs
 * writing. An entry with xattrs never is: they are set again (there is no cheap way to read them).
 */
export function sameMetadata(st: fs.Stats, entry: IndexEntry, owners: boolean): boolean {
  if ((st.mode & 0o7777) !== (entry.mode & 0o7777)) return false;
  return sameOwnerAndMtime(st, entry, owners) && Object.keys(entry.xattrs).length === 0;
}

/** What sync sets on a symlink: its mtime (whole seconds) and, when it sets owners, uid and gid. */
function sameOwnerAndMtime(st: fs.Stats, entry: IndexEntry, owners: boolean): boolean {
  if (!sameSecond(st.mtimeMs, entry.mtimeMs)) return false;
  return !owners || (st.uid === entry.uid && st.gid === entry.gid);
}
