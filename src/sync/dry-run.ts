// `sync --dry-run` (issue 11): what a sync would do to DEST, found by the same rules
// (reuse.ts's checks, prune.ts's extras) and changing nothing: DEST is only listed, lstat'ed
// and (under the default checksum check) read, through directory descriptors opened with
// O_NOFOLLOW below DEST; no chunk is fetched (the TOCs are, to know the tree).
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { hasExtent } from '../file-index/index.js';
import type { MergedFs } from '../vfs/merged-fs.js';
import type { Inode, VNode } from '../vfs/node.js';
import { errnoCode } from '../util/errno-code.js';
import { entryPath, listDirFd, openRegular, sha256OfFd, type DestListing } from './dest-scan.js';
import { isTempName } from './dest-path.js';
import { sameMetadata, sameShape, type ContentCheck } from './reuse.js';

export type DryRunAction =
  /** a regular file's bytes would be fetched and written */
  | 'fetch'
  /** DEST has the content; owner, mode, xattrs or mtime would be set */
  | 'update'
  /** a hardlink, symlink, device node, fifo or directory would be made */
  | 'create'
  /** a leftover temporary of a killed run, or (--delete) an entry PATH lacks, would be removed */
  | 'delete'
  /** an entry PATH lacks, kept (no --delete) */
  | 'extra';

export interface DryRunItem {
  action: DryRunAction;
  /** Relative to the target ('' for the target itself). */
  path: string;
  /** 'fetch': the file's size. */
  bytes?: number;
}

export interface DryRunReport {
  target: string;
  items: DryRunItem[];
  /** Regular files DEST already has exactly (nothing would be written). */
  unchanged: number;
  /** Compressed bytes of the chunks the fetched files need (before the chunk cache is asked). */
  chunkBytes: number;
}

const DIR_FLAGS = fs.constants.O_RDONLY | fs.constants.O_DIRECTORY;

export async function dryRunSync(
  vfs: MergedFs,
  imagePath: string,
  dest: string,
  options: { check?: ContentCheck; delete?: boolean; preserveOwners?: boolean } = {},
): Promise<DryRunReport> {
  const check = options.check ?? 'checksum';
  const owners = options.preserveOwners ?? (typeof process.getuid === 'function' && process.getuid() === 0);
  const top = vfs.resolve(imagePath, false);
  const report: DryRunReport = { target: dest, items: [], unchanged: 0, chunkBytes: 0 };
  const chunks = new Set<string>();
  const firstPlace = new Map<Inode, { fd: number | undefined; name: string; st: fs.Stats | undefined; kept: boolean }>();
  const open: number[] = [];

  const add = (action: DryRunAction, path: string, bytes?: number): void => {
    report.items.push(bytes === undefined ? { action, path } : { action, path, bytes });
  };

  const visitFile = async (node: VNode, rel: string, dirfd: number | undefined, listing: DestListing | undefined, name: string): Promise<void> => {
    const entry = node.inode.entry;
    const st = listing?.get(name);
    if (entry.type === 'reg' || entry.type === 'hardlink') {
      const first = firstPlace.get(node.inode);
      if (first) {
        if (!(first.kept && st && first.st && st.ino === first.st.ino && st.dev === first.st.dev)) add('create', rel);
        return;
      }
      let kept = false;
      let exact = false;
      if (dirfd !== undefined && st && sameShape(st, entry, check)) {
        const fd = await openRegular(dirfd, name, st);
        if (fd !== undefined) {
          try {
            kept = check === 'quick' || (await sha256OfFd(fd)) === entry.digest;
          } finally {
            fs.closeSync(fd);
          }
        }
        exact = kept && sameMetadata(st, entry, owners);
      }
      firstPlace.set(node.inode, { fd: dirfd, name, st, kept });
      if (!kept) {
        add('fetch', rel, entry.size);
        const layer = vfs.layerOf(node).descriptor.digest;
        for (const c of entry.chunks) {
          // A plain layer's pieces have no extent of their own: that layer is fetched whole.
          if (!hasExtent(c)) continue;
          const key = `${layer}@${c.offset}`;
          if (!chunks.has(key)) {
            chunks.add(key);
            report.chunkBytes += c.end - c.offset;
          }
        }
      } else if (exact) report.unchanged++;
      else add('update', rel);
      return;
    }
    if (entry.type === 'symlink' && dirfd !== undefined && st?.isSymbolicLink()) {
      const target = await fsp.readlink(entryPath(dirfd, name)).catch(() => undefined);
      if (target === entry.linkName) return; // left alone (its mtime and owner set where they differ)
    }
    add('create', rel);
  };

  /** dirfd: DEST's directory for node, undefined when it does not exist yet. */
  const visitDir = async (node: VNode, rel: string, dirfd: number | undefined): Promise<void> => {
    const listing = dirfd === undefined ? undefined : await listDirFd(dirfd);
    if (listing) {
      for (const name of [...listing.keys()].sort()) {
        const childRel = rel === '' ? name : `${rel}/${name}`;
        if (isTempName(name)) add('delete', childRel);
        else if (!node.children!.has(name)) add(options.delete ? 'delete' : 'extra', childRel);
      }
    }
    for (const child of vfs.readdir(node)) {
      const childRel = rel === '' ? child.name : `${rel}/${child.name}`;
      if (!child.children) {
        await visitFile(child, childRel, dirfd, listing, child.name);
        continue;
      }
      let fd: number | undefined;
      if (dirfd !== undefined && listing?.get(child.name)?.isDirectory()) {
        try {
          fd = fs.openSync(entryPath(dirfd, child.name), DIR_FLAGS | fs.constants.O_NOFOLLOW);
          open.push(fd);
        } catch (err) {
          const c = errnoCode(err);
          if (c !== 'ENOENT' && c !== 'ENOTDIR' && c !== 'ELOOP') throw err;
        }
      }
      if (fd === undefined) add('create', childRel);
      await visitDir(child, childRel, fd);
    }
  };

  try {
    const st = await fsp.stat(dest).catch(() => undefined);
    if (top.children) {
      const fd = st?.isDirectory() ? fs.openSync(dest, DIR_FLAGS) : undefined;
      if (fd !== undefined) open.push(fd);
      else add('create', '');
      await visitDir(top, '', fd);
    } else {
      const inDir = st?.isDirectory() === true;
      const name = inDir ? (top.name === '' ? 'root' : top.name) : basename(dest);
      report.target = inDir ? join(dest, name) : dest;
      const parent = inDir ? dest : dirname(dest);
      const pst = await fsp.stat(parent).catch(() => undefined);
      const fd = pst?.isDirectory() ? fs.openSync(parent, DIR_FLAGS) : undefined;
      if (fd !== undefined) open.push(fd);
      const listing = fd === undefined ? undefined : await listDirFd(fd);
      await visitFile(top, '', fd, listing, name);
    }
  } finally {
    for (const fd of open) fs.closeSync(fd);
  }
  return report;
}
