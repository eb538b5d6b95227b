// Compares two directory trees entry by entry (the test oracle's "is this the same filesystem"):
// paths, type, permission bits incl. setuid/setgid/sticky, owner, mtime (seconds), size and
// sha256 of files, symlink targets, device numbers, hard-link groups and user.* xattrs.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { BigIntStats } from 'node:fs';
import { readUserXattrs } from './xattrs.js';

export interface TreeDiff {
  path: string; // relative to the roots ('' never appears; subpath itself may)
  field: string; // 'exists' | 'type' | 'mode' | 'uid' | 'gid' | 'mtime' | 'size' | 'sha256' | 'target' | 'rdev' | 'links' | 'xattrs'
  expected: unknown;
  actual: unknown;
}

export interface CompareOptions {
  ignoreOwner?: boolean;
  ignoreDirMtime?: boolean;
  /** Ignore mtimes of every entry. */
  ignoreMtime?: boolean;
  /** Treat a user xattr with an empty value as absent (umoci drops them; the eStargz TOC keeps them). */
  ignoreEmptyXattrs?: boolean;
  /** Compare only expectedRoot/subpath with actualRoot/subpath (the subpath entry included); diff paths stay root-relative. */
  subpath?: string;
}

/** eStargz bookkeeping entries at the image root; not part of the image's filesystem. */
export const ESTARGZ_BOOKKEEPING = new Set(['stargz.index.json', '.prefetch.landmark', '.no.prefetch.landmark']);

interface Entry {
  type: string;
  fields: Record<string, unknown>;
  ino: bigint;
  nlink: bigint;
}

function typeOf(st: BigIntStats): string {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isCharacterDevice()) return 'char';
  if (st.isBlockDevice()) return 'block';
  if (st.isFIFO()) return 'fifo';
  return 'socket';
}

/** glibc's major/minor split of a dev_t. */
function majorMinor(rdev: bigint): string {
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn);
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & ~0xffn);
  return `${major}:${minor}`;
}

export function sha256File(p: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(p)
      .on('data', (c) => h.update(c))
      .on('end', () => resolve(h.digest('hex')))
      .on('error', reject);
  });
}

async function describe(abs: string, opts: CompareOptions): Promise<Entry> {
  const st = await lstat(abs, { bigint: true });
  const type = typeOf(st);
  const f: Record<string, unknown> = { mode: '0' + (Number(st.mode) & 0o7777).toString(8) };
  if (!opts.ignoreOwner) {
    f.uid = Number(st.uid);
    f.gid = Number(st.gid);
  }
  if (!opts.ignoreMtime && !(type === 'dir' && opts.ignoreDirMtime)) f.mtime = Number(st.mtimeMs / 1000n);
  if (type === 'file') {
    f.size = Number(st.size);
    f.sha256 = await sha256File(abs);
  } else if (type === 'symlink') {
    f.target = await readlink(abs);
  } else if (type === 'char' || type === 'block') {
    f.rdev = majorMinor(st.rdev);
  }
  return { type, fields: f, ino: st.ino, nlink: st.nlink };
}

/** Every entry under root/sub (sub included when given), keyed by root-relative path. */
async function scan(root: string, sub: string | undefined, opts: CompareOptions): Promise<Map<string, Entry>> {
  const out = new Map<string, Entry>();
  const walk = async (rel: string): Promise<void> => {
    const names = (await readdir(join(root, rel))).sort().filter((n) => rel || !ESTARGZ_BOOKKEEPING.has(n));
    const dirs: string[] = [];
    for (let i = 0; i < names.length; i += 32) {
      // a few lstats / hashes in flight: big trees compare in seconds
      const batch = names.slice(i, i + 32).map((n) => (rel ? `${rel}/${n}` : n));
      const entries = await Promise.all(batch.map((r) => describe(join(root, r), opts)));
      batch.forEach((r, j) => {
        const e = entries[j] as Entry;
        out.set(r, e);
        if (e.type === 'dir') dirs.push(r);
      });
    }
    for (const d of dirs) await walk(d);
  };
  if (sub) {
    const e = await describe(join(root, sub), opts).catch(() => undefined);
    if (!e) return out;
    out.set(sub, e);
    if (e.type === 'dir') await walk(sub);
  } else {
    await walk('');
  }
  // hard-link groups: members (within the scanned set) sharing an inode
  const byIno = new Map<bigint, string[]>();
  for (const [p, e] of out) if (e.type !== 'dir' && e.nlink > 1n) byIno.set(e.ino, [...(byIno.get(e.ino) ?? []), p]);
  for (const members of byIno.values()) {
    if (members.length < 2) continue;
    const group = members.sort();
    for (const m of group) (out.get(m) as Entry).fields.links = group;
  }
  // user xattrs, one child process per tree
  const xa = await readUserXattrs(sub ? join(root, sub) : root);
  for (const [rel, attrs] of xa) {
    const p = sub ? (rel ? `${sub}/${rel}` : sub) : rel;
    const e = out.get(p);
    const kept = opts.ignoreEmptyXattrs ? Object.fromEntries(Object.entries(attrs).filter(([, v]) => v !== '')) : attrs;
    if (e && Object.keys(kept).length) e.fields.xattrs = kept;
  }
  return out;
}

const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

/** [] when the trees are equal. */
export async function compareTrees(expectedRoot: string, actualRoot: string, opts: CompareOptions = {}): Promise<TreeDiff[]> {
  const sub = opts.subpath?.replace(/^\/+|\/+$/g, '') || undefined;
  const [exp, act] = await Promise.all([scan(expectedRoot, sub, opts), scan(actualRoot, sub, opts)]);
  const diffs: TreeDiff[] = [];
  const paths = [...new Set([...exp.keys(), ...act.keys()])].sort();
  for (const path of paths) {
    const e = exp.get(path);
    const a = act.get(path);
    if (!e || !a) {
      diffs.push({ path, field: 'exists', expected: !!e, actual: !!a });
      continue;
    }
    if (e.type !== a.type) {
      diffs.push({ path, field: 'type', expected: e.type, actual: a.type });
      continue;
    }
    const fields = [...new Set([...Object.keys(e.fields), ...Object.keys(a.fields)])];
    for (const field of fields) {
      const ev = e.fields[field] ?? (field === 'xattrs' ? {} : undefined);
      const av = a.fields[field] ?? (field === 'xattrs' ? {} : undefined);
      if (!same(ev, av)) diffs.push({ path, field, expected: ev, actual: av });
    }
  }
  return diffs;
}

/** One line per difference, for assertion messages. */
export function formatDiffs(d: TreeDiff[], max = 50): string {
  const lines = d.slice(0, max).map((x) =>
    x.field === 'exists'
      ? `${x.expected ? 'missing' : 'extra  '}  ${x.path}`
      : `differs  ${x.path}: ${x.field} expected ${JSON.stringify(x.expected)} got ${JSON.stringify(x.actual)}`,
  );
  if (d.length > max) lines.push(`... and ${d.length - max} more`);
  return `${d.length} differences\n` + lines.join('\n');
}
