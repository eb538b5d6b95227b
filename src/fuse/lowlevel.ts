// The libfuse 3 backend (native/fuse_ll.c): metadata is answered in C from a table of the
// image's inodes, which this file fills one directory at a time when C asks (onDir), encoded
// from the merged VFS; reads come here (onRead) and go to reader.ts as with fuse-native.
// A directory listing sent once is never asked for again: the image never changes.
import { ErrorCodes, StargzError } from '../errors.js';
import { loadAddon } from '../util/native.js';
import type { MergedFs } from '../vfs/merged-fs.js';
import type { VNode } from '../vfs/node.js';
import { NO_XATTRS } from '../file-index/model.js';
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
  /** `asked`: the directory onDir asked for (0 for listings ahead); its waiters get EIO if `listing` lacks it. */
  provideDirs(s: Session, asked: number, listing: Buffer): void;
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

// Layout of one entry (native/fuse_ll.c parse_entry), little-endian, starting 8-aligned: u32 ino
// lo, hi, mode, nlink, uid, gid, rdev, reserved; f64 size, blocks, mtimeMs; u16 name bytes, u16
// xattrs, u32 link bytes; then the name, the link target, and per xattr u16 name bytes, u32
// value bytes, name, value; then zeros up to the next multiple of 8.
const ENTRY_HEADER = 64;
// The headers are written through typed arrays, in the host's byte order.
if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) throw new Error('the libfuse 3 backend needs a little-endian host');
// A section: u32 directory ino lo, hi, entry count, reserved; then its entries.
const SECTION_HEADER = 16;
const NAME_MAX = 255;
const BLOCK = 4096;
/**
 * Entries one answer to C carries beyond the directory it asked for: that directory's
 * subdirectories breadth first, then others C knows of, so a walk (find, tar) crosses into
 * JS once per many directories. Kept small: a request waits while its answer is encoded
 * (a few µs an entry), and the listings ahead (below) fill in the rest.
 */
const LISTING_BUDGET = 512;
/** Entries per turn of the event loop when listing ahead of requests (reads and requests go between). */
const AHEAD_BUDGET = 1024;
const EMPTY = Buffer.alloc(0);
/**
 * Entries sent to C ahead of any request, after mounting: whole trees of ordinary images (the
 * many-files bench image has 28 k), while a huge one costs C at most ~15 MB before it is walked.
 */
const LISTINGS_AHEAD = 100_000;

export interface LowLevelOptions extends Omit<ReaderOptions, 'fail'> {
  mountpoint: string;
  /** The mount options libfuse passes to the kernel / fusermount3 (ro, fsname=…, auto_unmount…). */
  options: string[];
  /** Seconds the kernel keeps names, attributes and failed lookups. */
  cacheSeconds: number;
  debug: boolean;
  /** Send C listings ahead of its requests after mounting (LISTINGS_AHEAD); false: only when asked. */
  listAhead?: boolean;
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
  const listings = new Listings(fs, byIno, options.log);
  let session: Session | undefined;
  let closed = false;
  let resolveEnded!: () => void;
  const ended = new Promise<void>((r) => (resolveEnded = r));

  const onDir = (ino: number): void => {
    if (closed) return;
    try {
      const dir = byIno.get(ino);
      if (!dir?.children) throw new StargzError(ErrorCodes.PATH_NOT_FOUND, `inode ${ino} is not a listed directory`);
      native.provideDirs(session!, ino, listings.encodeFor(dir)!);
    } catch (err) {
      fail('readdir', `inode ${ino}`, err);
      native.provideDirs(session!, ino, EMPTY); // its waiting requests answer EIO
    }
  };

  // Listings ahead of demand, one budget per turn of the event loop (reads go between), up
  // to LISTINGS_AHEAD entries: a first `find` or `ls -R` then finds them in C.
  const listAhead = (): void => {
    if (closed || listings.sent >= LISTINGS_AHEAD) return;
    try {
      const listing = listings.encodeFor(listings.sent === 0 ? fs.root : undefined, AHEAD_BUDGET);
      if (!listing) return;
      native.provideDirs(session!, 0, listing);
    } catch (err) {
      fail('readdir', 'listing ahead', err);
      return;
    }
    if (options.listAhead !== false) setImmediate(listAhead);
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

  session = native.mount({
    mountpoint: options.mountpoint,
    options: options.options.join(','),
    debug: options.debug,
    maxIno: Math.max(1, fs.totals.inodes),
    timeout: options.cacheSeconds,
    root: listings.rootEntry(),
    statfs: { blocks: Math.ceil(fs.totals.bytes / BLOCK), files: fs.totals.inodes, namemax: NAME_MAX },
    onDir,
    onRead,
    onEnd: () => resolveEnded(),
  });

  if (options.listAhead !== false) setImmediate(listAhead);

  return {
    ended,
    activeWalks: () => reader.activeWalks(),
    stats: () => (closed ? undefined : { ...native.stats(session!), listingJs: { count: listings.count, ns: listings.ns } }),
    close: () => {
      if (closed) return;
      closed = true;
      native.close(session!);
      resolveEnded();
    },
  };
}

/**
 * What C is sent: the directory it asks for, then (up to LISTING_BUDGET entries) the
 * directories below it breadth first, then any other directory C knows of but has no listing
 * for, in the order they became known. Sections come in an order where each directory was an
 * entry of an earlier one (C creates a directory's node from its parent's section).
 */
export class Listings {
  private readonly listed = new Set<number>();
  /** Directories C has nodes for but no listing, oldest first (some may have been listed since). */
  private frontier: VNode[] = [];
  private frontierAt = 0;
  /** Nanoseconds spent encoding, for SessionStats. */
  ns = 0;
  /** Entries sent to C so far. */
  sent = 0;

  private readonly writer: SectionWriter;

  constructor(
    private readonly fs: MergedFs,
    byIno: Map<number, VNode>,
    log: (line: string) => void,
  ) {
    this.writer = new SectionWriter(fs, byIno, log);
  }

  /** The root's own entry (the one C starts from), as parse_entry reads it. */
  rootEntry(): Buffer {
    this.writer.reset();
    this.writer.entry(this.fs.root);
    return Buffer.from(this.writer.take());
  }

  get count(): number {
    return this.listed.size;
  }

  /** Whether a directory C knows of still has no listing (some of the frontier may be listed since). */
  get pending(): boolean {
    return this.frontierAt < this.frontier.length;
  }

  /** Listings for C: of `dir` and what comes along with it; without `dir`, of the frontier (undefined when empty). */
  encodeFor(dir?: VNode, budget = LISTING_BUDGET): Buffer | undefined {
    const t0 = process.hrtime.bigint();
    this.writer.reset();
    let entries = 0;
    const below: VNode[] = dir ? [dir] : [];
    let at = 0;
    while (entries < budget) {
      const fromBelow = at < below.length;
      const d = fromBelow ? below[at++] : this.frontierAt < this.frontier.length ? this.frontier[this.frontierAt++] : undefined;
      if (!d) break;
      if (d !== dir && this.listed.has(d.inode.ino)) continue;
      const kids = this.fs.readdir(d);
      // Too big to come along with what is here already: put back, first of the next answer
      // (which sends it whole). Dropping it instead lost it and everything below it from the
      // listings ahead: a first find waited on JS for 430 of the bench image's 4,836 directories.
      if (d !== dir && entries > 0 && entries + kids.length > budget) {
        if (fromBelow) at--;
        else this.frontierAt--;
        break;
      }
      this.listed.add(d.inode.ino);
      this.writer.section(d.inode.ino, kids);
      entries += kids.length;
      for (const k of kids) if (k.children) below.push(k);
    }
    // What is below but did not fit waits in the frontier.
    if (this.frontierAt > 4096 && this.frontierAt * 2 > this.frontier.length) {
      this.frontier = this.frontier.slice(this.frontierAt);
      this.frontierAt = 0;
    }
    for (; at < below.length; at++) this.frontier.push(below[at]!);
    this.ns += Number(process.hrtime.bigint() - t0);
    this.sent += entries;
    return entries > 0 || dir ? this.writer.take() : undefined;
  }
}

/**
 * Sections written one after another into one buffer, reused from call to call (C copies
 * what it keeps before provideDirs returns). Every entry starts 8-aligned, so its header is
 * written through typed-array views in the platform's byte order, as C reads it. Names the
 * kernel cannot take are left out, and said.
 */
class SectionWriter {
  private buf!: Buffer;
  private u16!: Uint16Array;
  private u32!: Uint32Array;
  private f64!: Float64Array;
  private at = 0;

  constructor(
    private readonly fs: MergedFs,
    private readonly byIno: Map<number, VNode>,
    private readonly log: (line: string) => void,
  ) {
    this.grow(1 << 20);
  }

  /** Starts over; what `take` returned before is overwritten. */
  reset(): void {
    this.at = 0;
  }

  /** The bytes written since reset. */
  take(): Buffer {
    return this.buf.subarray(0, this.at);
  }

  section(dirIno: number, kids: readonly VNode[]): void {
    this.room(SECTION_HEADER);
    const head = this.at;
    this.at += SECTION_HEADER;
    let count = 0;
    for (const node of kids) if (this.entry(node)) count++;
    const w = head / 4;
    this.u32[w] = dirIno % 2 ** 32;
    this.u32[w + 1] = Math.floor(dirIno / 2 ** 32);
    this.u32[w + 2] = count;
    this.u32[w + 3] = 0;
  }

  /** One entry; false when it was left out. */
  entry(node: VNode): boolean {
    const { fs } = this;
    const entry = node.inode.entry;
    const link = entry.type === 'symlink' ? entry.linkName : '';
    const xattrs = entry.xattrs === NO_XATTRS ? undefined : Object.entries(fs.xattrs(node));
    // UTF-8 takes at most 3 bytes per UTF-16 unit: room first, exact lengths once written.
    let most = ENTRY_HEADER + 3 * (node.name.length + link.length) + 8;
    for (const [k, v] of xattrs ?? []) most += 8 + 3 * k.length + v.length;
    this.room(most);
    const b = this.buf;
    const start = this.at;
    let at = start + ENTRY_HEADER;
    const nameBytes = b.write(node.name, at);
    if (node.path !== '/' && (nameBytes === 0 || nameBytes > NAME_MAX || Buffer.byteLength(node.name) !== nameBytes)) {
      this.log(`${node.path}: left out of the mount (a name of ${Buffer.byteLength(node.name)} bytes; the kernel takes 1 to ${NAME_MAX})`);
      return false;
    }
    at += nameBytes;
    const linkBytes = link ? b.write(link, at) : 0;
    at += linkBytes;
    for (const [k, v] of xattrs ?? []) {
      const kb = b.write(k, at + 6);
      b.writeUInt16LE(kb, at);
      b.writeUInt32LE(v.length, at + 2);
      at += 6 + kb;
      at += v.copy(b, at);
    }
    const st = fs.stat(node);
    const w = start / 4;
    const u32 = this.u32;
    u32[w] = st.ino % 2 ** 32;
    u32[w + 1] = Math.floor(st.ino / 2 ** 32);
    u32[w + 2] = st.mode;
    u32[w + 3] = st.nlink || 1;
    u32[w + 4] = st.uid;
    u32[w + 5] = st.gid;
    u32[w + 6] = st.rdev;
    u32[w + 7] = 0;
    const d = start / 8;
    this.f64[d + 4] = st.size;
    this.f64[d + 5] = st.blocks;
    this.f64[d + 6] = st.mtimeMs;
    this.u16[start / 2 + 28] = nameBytes;
    this.u16[start / 2 + 29] = xattrs?.length ?? 0;
    u32[w + 15] = linkBytes;
    this.at = (at + 7) & ~7;
    if (!this.byIno.has(st.ino)) this.byIno.set(st.ino, node);
    return true;
  }

  private room(n: number): void {
    if (this.at + n > this.buf.length) this.grow(Math.max(this.buf.length * 2, this.at + n));
  }

  private grow(bytes: number): void {
    const ab = new ArrayBuffer((bytes + 7) & ~7);
    const next = Buffer.from(ab);
    this.buf?.copy(next, 0, 0, this.at);
    this.buf = next;
    this.u16 = new Uint16Array(ab);
    this.u32 = new Uint32Array(ab);
    this.f64 = new Float64Array(ab);
  }
}

