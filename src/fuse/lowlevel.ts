// The libfuse 3 backend (native/fuse_ll.c): metadata is answered in C from a table of the
// image's inodes, which this file fills one directory at a time when C asks (onDir), encoded
// from the merged VFS; reads come here (onRead) and go to reader.ts as with fuse-native.
// A directory listing sent once is never asked for again: the image never changes.
import { ErrorCodes, StargzError } from '../errors.js';
import { loadAddon } from '../util/native.js';
import type { MergedFs } from '../vfs/merged-fs.js';
import type { VNode } from '../vfs/node.js';
import { Errno, failureMapper, negErrno } from './errno.js';
import { createReader, type ReaderOptions } from './reader.js';

/** One request kind's count and the nanoseconds C spent answering them. */
export interface OpStats {
  count: number;
  ns: number;
}
type NativeStats = Record<'lookup' | 'getattr' | 'readdir' | 'readdirplus' | 'opendir' | 'read' | 'xattr' | 'other' | 'dirLoads', OpStats>;
/** What C answered, and (listingJs) the directories JS encoded for it and the time that took. */
export type SessionStats = NativeStats & { listingJs: OpStats };

declare const sessionBrand: unique symbol;
type Session = { readonly [sessionBrand]: true };

interface FuseLowLevel {
  mount(o: {
    mountpoint: string;
    options: string;
    debug: boolean;
    maxIno: number;
    timeout: number;
    root: Buffer;
    statfs: { blocks: number; files: number; namemax: number };
    onDir(ino: number): void;
    onRead(id: number, ino: number, size: number, offset: number): void;
    onEnd(): void;
  }): Session;
  provideDirs(s: Session, listing: Buffer): void;
  failDir(s: Session, ino: number, errno: number): void;
  replyRead(s: Session, id: number, buf: Buffer | null, result: number): void;
  /** True when the loop had ended (everything freed). */
  close(s: Session): boolean;
  stats(s: Session): NativeStats;
}

let addon: FuseLowLevel | null | undefined;

/** The addon, or null where it was not built (no libfuse3 headers at install time). */
export function fuseLowLevel(): FuseLowLevel | null {
  if (addon === undefined) addon = loadAddon<FuseLowLevel>('fuse_ll');
  return addon;
}

// Layout of one entry (native/fuse_ll.c parse_entry): u32 ino lo, hi, mode, nlink, uid, gid,
// rdev, reserved; f64 size, blocks, mtimeMs; u16 name bytes, u16 xattrs, u32 link bytes; then
// the name, the link target, and per xattr u16 name bytes, u32 value bytes, name, value.
const ENTRY_HEADER = 64;
// A section: u32 directory ino lo, hi, entry count, reserved; then its entries.
const SECTION_HEADER = 16;
const NAME_MAX = 255;
const BLOCK = 4096;
/**
 * Entries one answer to onDir may carry: the directory asked for, then its subdirectories
 * breadth first until this many, so a walk (find, tar) crosses into JS once per few hundred
 * directories instead of once per directory, and `ls` of one directory costs little more.
 */
const LISTING_BUDGET = 4096;

export interface LowLevelOptions extends Omit<ReaderOptions, 'fail'> {
  mountpoint: string;
  /** The mount options libfuse passes to the kernel / fusermount3 (ro, fsname=…, auto_unmount…). */
  options: string[];
  /** Seconds the kernel keeps names, attributes and failed lookups. */
  cacheSeconds: number;
  debug: boolean;
  log: (line: string) => void;
}

export interface LowLevelMount {
  /** Settles when the kernel ends the session: unmounted, by us or anyone. */
  readonly ended: Promise<void>;
  activeWalks(): number;
  stats(): SessionStats | undefined;
  /** Nothing more reaches JS (call once unmounted, or when giving up on the kernel). */
  close(): void;
}

/** Mounts `fs` at options.mountpoint through libfuse 3; throws FUSE when libfuse cannot. */
export function mountLowLevel(fs: MergedFs, options: LowLevelOptions): LowLevelMount {
  const native = fuseLowLevel();
  if (!native) throw new StargzError(ErrorCodes.FUSE, 'the libfuse 3 addon is not built (install libfuse3-dev, then npm run build:native)');
  if (fs.root.inode.ino !== 1) throw new StargzError(ErrorCodes.FUSE, `the root directory is inode ${fs.root.inode.ino}, not 1`);
  const fail = failureMapper(options.log);
  const reader = createReader(fs, { ...options, fail });
  const byIno = new Map<number, VNode>([[1, fs.root]]);
  const listed = new Set<number>();
  let session: Session | undefined;
  let closed = false;
  /** Time spent listing directories for C (in SessionStats as listingJs). */
  let listingNs = 0;
  let resolveEnded!: () => void;
  const ended = new Promise<void>((r) => (resolveEnded = r));

  const onDir = (ino: number): void => {
    if (closed) return;
    const t0 = process.hrtime.bigint();
    try {
      const dir = byIno.get(ino);
      if (!dir?.children) throw new StargzError(ErrorCodes.PATH_NOT_FOUND, `inode ${ino} is not a listed directory`);
      native.provideDirs(session!, encodeListings(fs, dir, byIno, listed, options.log));
    } catch (err) {
      native.failDir(session!, ino, -fail('readdir', `inode ${ino}`, err));
    }
    listingNs += Number(process.hrtime.bigint() - t0);
  };

  const onRead = (id: number, ino: number, size: number, offset: number): void => {
    if (closed) return;
    const reply = (buf: Buffer | null, res: number): void => {
      if (!closed) native.replyRead(session!, id, buf, res);
    };
    const node = byIno.get(ino);
    if (!node) return reply(null, negErrno(Errno.ENOENT));
    try {
      const buf = Buffer.allocUnsafe(size);
      reader.read(node.path, node, buf, size, offset, (res) => reply(buf, res));
    } catch (err) {
      reply(null, fail('read', node.path, err));
    }
  };

  const rootEntry = encodeListing(fs, 0, [fs.root], byIno, options.log);
  session = native.mount({
    mountpoint: options.mountpoint,
    options: options.options.join(','),
    debug: options.debug,
    maxIno: Math.max(1, fs.totals.inodes),
    timeout: options.cacheSeconds,
    root: rootEntry.subarray(SECTION_HEADER),
    statfs: { blocks: Math.ceil(fs.totals.bytes / BLOCK), files: fs.totals.inodes, namemax: NAME_MAX },
    onDir,
    onRead,
    onEnd: () => resolveEnded(),
  });

  return {
    ended,
    activeWalks: () => reader.activeWalks(),
    stats: () => (closed ? undefined : { ...native.stats(session!), listingJs: { count: listed.size, ns: listingNs } }),
    close: () => {
      if (closed) return;
      closed = true;
      native.close(session!);
      resolveEnded();
    },
  };
}

/**
 * The listing of `dir` and, breadth first, of its subdirectories not yet listed, up to
 * LISTING_BUDGET entries: sections in an order where each directory was an entry of an
 * earlier one (C creates a directory's node from its parent's section).
 */
function encodeListings(fs: MergedFs, dir: VNode, byIno: Map<number, VNode>, listed: Set<number>, log: (l: string) => void): Buffer {
  const parts: Buffer[] = [];
  let entries = 0;
  const queue: VNode[] = [dir];
  for (let i = 0; i < queue.length && (i === 0 || entries < LISTING_BUDGET); i++) {
    const d = queue[i]!;
    // The directory asked for is always sent: C asks only for what it does not have.
    if (i > 0 && listed.has(d.inode.ino)) continue;
    const kids = fs.readdir(d);
    if (i > 0 && entries + kids.length > LISTING_BUDGET) break;
    listed.add(d.inode.ino);
    const section = encodeListing(fs, d.inode.ino, kids, byIno, log);
    parts.push(section);
    entries += kids.length;
    for (const k of kids) if (k.children && !listed.has(k.inode.ino)) queue.push(k);
  }
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}

/** One section: the entries (names the kernel cannot take are left out, and said once). */
function encodeListing(fs: MergedFs, dirIno: number, kids: readonly VNode[], byIno: Map<number, VNode>, log: (l: string) => void): Buffer {
  const rows: Array<{ node: VNode; name: Buffer; link: Buffer; xattrs: Array<[Buffer, Buffer]> }> = [];
  let bytes = SECTION_HEADER;
  for (const node of kids) {
    const name = Buffer.from(node.name);
    if (node.path !== '/' && (name.length === 0 || name.length > NAME_MAX)) {
      log(`${node.path}: left out of the mount (a name of ${name.length} bytes; the kernel takes 1 to ${NAME_MAX})`);
      continue;
    }
    const entry = node.inode.entry;
    const link = entry.type === 'symlink' ? Buffer.from(entry.linkName) : EMPTY;
    const xattrs = Object.entries(fs.xattrs(node)).map(([k, v]) => [Buffer.from(k), v] as [Buffer, Buffer]);
    bytes += ENTRY_HEADER + name.length + link.length;
    for (const [k, v] of xattrs) bytes += 6 + k.length + v.length;
    rows.push({ node, name, link, xattrs });
  }
  const buf = Buffer.alloc(bytes);
  writeIno(buf, 0, dirIno);
  buf.writeUInt32LE(rows.length, 8);
  let at = SECTION_HEADER;
  for (const { node, name, link, xattrs } of rows) {
    const st = fs.stat(node);
    writeIno(buf, at, st.ino);
    buf.writeUInt32LE(st.mode, at + 8);
    buf.writeUInt32LE(st.nlink || 1, at + 12);
    buf.writeUInt32LE(st.uid >>> 0, at + 16);
    buf.writeUInt32LE(st.gid >>> 0, at + 20);
    buf.writeUInt32LE(st.rdev >>> 0, at + 24);
    buf.writeDoubleLE(st.size, at + 32);
    buf.writeDoubleLE(st.blocks, at + 40);
    buf.writeDoubleLE(st.mtimeMs, at + 48);
    buf.writeUInt16LE(name.length, at + 56);
    buf.writeUInt16LE(xattrs.length, at + 58);
    buf.writeUInt32LE(link.length, at + 60);
    at += ENTRY_HEADER;
    at += name.copy(buf, at);
    at += link.copy(buf, at);
    for (const [k, v] of xattrs) {
      buf.writeUInt16LE(k.length, at);
      buf.writeUInt32LE(v.length, at + 2);
      at += 6;
      at += k.copy(buf, at);
      at += v.copy(buf, at);
    }
    if (!byIno.has(st.ino)) byIno.set(st.ino, node);
  }
  return buf;
}

const EMPTY = Buffer.alloc(0);

function writeIno(buf: Buffer, at: number, ino: number): void {
  buf.writeUInt32LE(ino % 2 ** 32, at);
  buf.writeUInt32LE(Math.floor(ino / 2 ** 32), at + 4);
}
