// `export --rootfs`: one flattened tar of the merged filesystem below a path (like `crane
// export`), from the VFS: whiteouts already applied, a file named twice written once and then
// as a hardlink to its first name, xattrs as PAX SCHILY.xattr records, devices and fifos as
// such. File bytes leave the VFS through the one read stream (api/read-stream.ts), so only the
// chunks of the files below the path are fetched; the next files' chunks are queued a window
// ahead in the scheduler (walk-ahead), so small files do not cost a round trip each.
import { EXPORT_DEFAULTS } from '../config.js';
import { createFileReadStream } from '../api/read-stream.js';
import type { MergedFs } from '../vfs/merged-fs.js';
import { isFile, type Inode, type VNode } from '../vfs/node.js';
import { addTarEntry, type EntryType, type TarEntry, type TarPack } from './tar-writer.js';

export interface RootfsSummary {
  directories: number;
  files: number;
  hardlinks: number;
  symlinks: number;
  specials: number;
  /** Bytes of file contents written. */
  bytes: number;
}

export interface RootfsOptions {
  signal?: AbortSignal;
  /** Bytes of file contents written so far, and of all files below the path. */
  onProgress?: (done: number, total: number) => void;
}

const TYPES: Record<string, EntryType> = { dir: 'directory', reg: 'file', hardlink: 'file', symlink: 'symlink', char: 'character-device', block: 'block-device', fifo: 'fifo' };

/** The node's name in the tar: relative to the exported root; the root directory itself is './'. */
function tarName(root: VNode, node: VNode): string {
  if (node === root) return root.children ? './' : root.name;
  return root.children ? node.path.slice(root.path === '/' ? 1 : root.path.length + 1) : root.name;
}

/** Queues the chunks of the files after the one being read, up to a window ahead of it. */
class WalkAhead {
  private next = 0;
  private queuedTo = 0;

  constructor(
    private readonly fs: MergedFs,
    private readonly files: readonly VNode[],
  ) {}

  /** `consumed`: file bytes written so far. */
  advance(consumed: number): void {
    const batch: Array<{ node: VNode; offset: number; length: number }> = [];
    while (this.next < this.files.length && this.queuedTo - consumed < EXPORT_DEFAULTS.rootfsAheadBytes) {
      const node = this.files[this.next++]!;
      const size = this.fs.size(node);
      batch.push({ node, offset: 0, length: size });
      this.queuedTo += size;
    }
    if (batch.length > 0) this.fs.fetchAhead(batch, 'walk-ahead');
  }
}

export async function writeRootfs(fs: MergedFs, root: VNode, pack: TarPack, options: RootfsOptions = {}): Promise<RootfsSummary> {
  const nodes = [...fs.walk(root)];
  const firstName = new Map<Inode, string>();
  // The files whose bytes go into the tar, in tar order: each inode once.
  const files: VNode[] = [];
  for (const node of nodes) {
    if (!isFile(node) || firstName.has(node.inode)) continue;
    firstName.set(node.inode, tarName(root, node));
    files.push(node);
  }
  const total = files.reduce((n, f) => n + fs.size(f), 0);
  const ahead = new WalkAhead(fs, files);
  const summary: RootfsSummary = { directories: 0, files: 0, hardlinks: 0, symlinks: 0, specials: 0, bytes: 0 };
  for (const node of nodes) {
    options.signal?.throwIfAborted();
    const e = node.inode.entry;
    const st = fs.stat(node);
    const name = tarName(root, node);
    const entry: TarEntry = {
      name,
      type: TYPES[e.type]!,
      mode: st.mode,
      uid: st.uid,
      gid: st.gid,
      ...(e.userName ? { uname: e.userName } : {}),
      ...(e.groupName ? { gname: e.groupName } : {}),
      mtimeMs: st.mtimeMs,
      size: 0,
      xattrs: fs.xattrs(node),
    };
    if (node.children) {
      summary.directories++;
      await addTarEntry(pack, { ...entry, type: 'directory' }, undefined, options.signal);
    } else if (isFile(node) && firstName.get(node.inode) !== name) {
      summary.hardlinks++;
      await addTarEntry(pack, { ...entry, type: 'link', linkname: firstName.get(node.inode)!, xattrs: {} }, undefined, options.signal);
    } else if (isFile(node)) {
      summary.files++;
      ahead.advance(summary.bytes);
      const size = fs.size(node);
      const body = createFileReadStream(fs, node, options.signal ? { signal: options.signal } : {});
      const counted = (async function* () {
        for await (const chunk of body as AsyncIterable<Buffer>) {
          summary.bytes += chunk.length;
          options.onProgress?.(summary.bytes, total);
          yield chunk;
        }
      })();
      await addTarEntry(pack, { ...entry, size }, counted, options.signal);
    } else if (e.type === 'symlink') {
      summary.symlinks++;
      await addTarEntry(pack, { ...entry, linkname: fs.readlink(node)! }, undefined, options.signal);
    } else {
      summary.specials++;
      await addTarEntry(pack, { ...entry, devmajor: e.devMajor, devminor: e.devMinor }, undefined, options.signal);
    }
  }
  return summary;
}
