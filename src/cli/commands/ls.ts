import { parseReferenceWithPath } from '../../reference/reference.js';
import { openImage } from '../../image/open-image.js';
import type { MergedFs } from '../../vfs/merged-fs.js';
import type { VNode } from '../../vfs/node.js';
import { openOptionsFrom, type CommonFlags } from '../common.js';
import { longListing, shellEscapeName } from '../format.js';
import type { CliIo } from '../io.js';

export interface LsFlags extends CommonFlags {
  long?: boolean;
  recursive?: boolean;
  json?: boolean;
  all?: boolean;
}

export async function lsCommand(source: string, flags: LsFlags, io: CliIo): Promise<void> {
  const { ref, path } = parseReferenceWithPath(source);
  const image = await openImage(ref, await openOptionsFrom(flags, ref, io.notice, io.signal));
  try {
    const fs = image.fs;
    const top = fs.resolve(path, true);
    const nodes: Array<{ node: VNode; name: string }> = [];
    if (!top.children) nodes.push({ node: top, name: top.path });
    else if (flags.recursive) {
      for (const node of fs.walk(top)) if (node !== top) nodes.push({ node, name: node.path });
    } else for (const node of fs.readdir(top)) nodes.push({ node, name: node.name });
    if (flags.json) {
      io.out(JSON.stringify(nodes.map(({ node }) => describe(fs, node, image.layers.indexOf(fs.layerOf(node)))), null, 2));
      return;
    }
    // Names come from the image: on a terminal they are quoted as GNU ls quotes them, so an
    // escape sequence in a name cannot drive the terminal. Piped, they stay exact (as GNU ls).
    const show = io.outIsTTY ? shellEscapeName : (s: string): string => s;
    for (const { node, name } of nodes) {
      if (!flags.long) {
        io.out(show(name));
        continue;
      }
      const st = fs.stat(node);
      const target = fs.readlink(node);
      io.out(longListing(st, show(name), target === undefined ? undefined : show(target)));
    }
  } finally {
    await image.close();
  }
}

function describe(fs: MergedFs, node: VNode, layer: number): Record<string, unknown> {
  const st = fs.stat(node);
  const e = node.inode.entry;
  return {
    path: node.path,
    type: e.type === 'hardlink' ? 'reg' : e.type,
    mode: '0' + (st.mode & 0o7777).toString(8),
    uid: st.uid,
    gid: st.gid,
    size: st.size,
    mtime: new Date(st.mtimeMs).toISOString(),
    nlink: st.nlink,
    ino: st.ino,
    ...(e.type === 'symlink' ? { linkTarget: e.linkName } : {}),
    ...(e.type === 'char' || e.type === 'block' ? { devMajor: e.devMajor, devMinor: e.devMinor } : {}),
    ...(Object.keys(e.xattrs).length ? { xattrs: Object.fromEntries(Object.entries(e.xattrs).map(([k, v]) => [k, (v as Buffer).toString('base64')])) } : {}),
    ...(e.digest ? { digest: e.digest } : {}),
    ...(e.sparse ? { sparse: true } : {}),
    chunks: e.chunks.length,
    layer,
  };
}
