// A second oracle for `diff`: the changes between two unpacked root filesystems (made by
// skopeo + umoci, see test/helpers/oracle.ts), read back with lstat, sha256 and the xattr
// reader — nothing of ours. The same rules as the README states: C when type, permission
// bits, owner, size (not a directory's), content, link target, device number, user xattrs or
// (not for a directory, unless ignoreMtime) mtime differ; a deleted entry is listed only
// where its parent still exists; every added entry is listed.
import { lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { readUserXattrs } from '../helpers/xattrs.js';
import { ESTARGZ_BOOKKEEPING, sha256File } from '../helpers/compare-trees.js';

interface Snap {
  dir: boolean;
  key: Record<string, unknown>;
  mtime: number;
}


async function snapshot(root: string): Promise<Map<string, Snap>> {
  const xattrs = await readUserXattrs(root);
  const out = new Map<string, Snap>();
  const visit = async (rel: string): Promise<void> => {
    const p = rel === '' ? root : join(root, rel);
    const st = await lstat(p, { bigint: true });
    const dir = st.isDirectory();
    out.set('/' + rel, {
      dir,
      key: {
        type: Number(st.mode) & 0o170000,
        mode: Number(st.mode) & 0o7777,
        uid: st.uid,
        gid: st.gid,
        size: dir ? 0 : st.size,
        sha256: st.isFile() ? await sha256File(p) : undefined,
        link: st.isSymbolicLink() ? await readlink(p) : undefined,
        rdev: st.isCharacterDevice() || st.isBlockDevice() ? st.rdev : 0n,
        xattrs: JSON.stringify(xattrs.get(rel) ?? {}),
      },
      mtime: Number(st.mtimeNs / 1_000_000n),
    });
    if (!dir) return;
    for (const name of await readdir(p)) {
      if (rel === '' && ESTARGZ_BOOKKEEPING.has(name)) continue;
      await visit(rel === '' ? name : `${rel}/${name}`);
    }
  };
  await visit('');
  return out;
}

function parentOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}

/** `A path` / `C path` / `D path` lines from rootfs A to rootfs B, sorted by path in byte order. */
export async function oracleDiff(rootA: string, rootB: string, opts: { ignoreMtime?: boolean } = {}): Promise<string[]> {
  const [a, b] = await Promise.all([snapshot(rootA), snapshot(rootB)]);
  const lines: Array<[string, string]> = [];
  for (const [path, sa] of a) {
    const sb = b.get(path);
    if (!sb) {
      if (b.has(parentOf(path)) && path !== '/') lines.push([path, 'D']);
      continue;
    }
    const differs =
      JSON.stringify(sa.key, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)) !==
        JSON.stringify(sb.key, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)) ||
      (!opts.ignoreMtime && !(sa.dir && sb.dir) && sa.mtime !== sb.mtime);
    if (differs) lines.push([path, 'C']);
  }
  for (const path of b.keys()) if (!a.has(path)) lines.push([path, 'A']);
  return lines.sort((x, y) => Buffer.compare(Buffer.from(x[0]), Buffer.from(y[0]))).map(([p, c]) => `${c} ${p}`);
}
