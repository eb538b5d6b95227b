// Serving FUSE reads: from memory when the chunks are there (read-ahead's doing, mostly),
// else through the VFS within a deadline; and deciding what to fetch ahead — the rest of a
// file read sequentially (read-ahead.ts), the next files of a directory walk (walk-ahead.ts)
// — handed to the VFS's fetch scheduler, which orders it behind on-demand reads.
import { MOUNT_AHEAD_DEFAULTS } from '../config.js';
import { ErrorCodes, StargzError } from '../errors.js';
import type { MergedFs } from '../vfs/merged-fs.js';
import type { VNode } from '../vfs/node.js';
import { DEFAULT_READ_AHEAD, ReadAhead, type ReadAheadOptions } from './read-ahead.js';
import { VfsWalkTree } from './vfs-walk.js';
import { DEFAULT_WALK_AHEAD, WalkAhead, type WalkAheadOptions } from './walk-ahead.js';

export interface ReaderOptions {
  /** A read that has not completed by then answers EIO (the kernel must not wait forever). */
  readDeadlineMs: number;
  /** Sequential read-ahead within a file; false turns it off. */
  readAhead?: ReadAheadOptions | false;
  /** Read-ahead across the files of a directory walk (tar, cp -r); false turns it off. */
  walkAhead?: WalkAheadOptions | false;
  /** Maps a failure to the negative errno to answer (and logs it). */
  fail: (op: string, what: string, err: unknown) => number;
}

export interface Reader {
  /** Answers a FUSE read of a regular file: cb(bytes) or cb(-errno). */
  read(path: string, node: VNode, buf: Buffer, len: number, pos: number, cb: (res: number) => void): void;
  activeWalks(): number;
}

export const DEFAULT_READ_DEADLINE_MS = MOUNT_AHEAD_DEFAULTS.readDeadlineMs;
/**
 * After a failed read the kernel retries the page at once, synchronously: answering that
 * retry from the failure we just had keeps one `cat` bounded by one deadline, not two.
 */
const FAILURE_MEMO_MS = 2_000;
/** The kernel reads up to 128 KiB ahead by itself: only longer files need read-ahead. */
const MIN_READ_AHEAD_FILE = 256 * 1024;
/** Files whose sequential read-ahead state is kept (there are no file handles: see the adapter's open). */
const SEQUENTIAL_STATES = 64;

export function createReader(fs: MergedFs, options: ReaderOptions): Reader {
  const fail = options.fail;
  /** ino -> when its last failed read stops being answered from memory, and with what. */
  const recentFailures = new Map<number, { until: number; res: number }>();
  const readAheadOptions = options.readAhead === false ? undefined : (options.readAhead ?? DEFAULT_READ_AHEAD);

  // Per-file sequential read-ahead, by inode (most recently read last, oldest dropped).
  const sequential = new Map<number, ReadAhead>();
  const sequentialAhead = (node: VNode, size: number): ReadAhead | undefined => {
    if (!readAheadOptions || size <= MIN_READ_AHEAD_FILE) return undefined;
    const ino = node.inode.ino;
    let ra = sequential.get(ino);
    if (ra) sequential.delete(ino);
    else ra = new ReadAhead(size, readAheadOptions);
    sequential.set(ino, ra);
    if (sequential.size > SEQUENTIAL_STATES) sequential.delete(sequential.keys().next().value!);
    return ra;
  };

  const walkOptions = options.walkAhead === false ? undefined : (options.walkAhead ?? DEFAULT_WALK_AHEAD);
  const walk = walkOptions ? new WalkAhead(new VfsWalkTree(fs), walkOptions) : undefined;
  let lastFile: VNode | undefined;

  /**
   * A read through the VFS (cache, then registry), bounded by the read deadline. The bytes go
   * straight into the kernel's buffer — never after we answered, since fuse-native hands that
   * memory back then: the deadline aborts the read before anything else can run.
   */
  const readThrough = (path: string, node: VNode, buf: Buffer, len: number, pos: number, cb: (res: number) => void): void => {
    const controller = new AbortController();
    let answered = false;
    const answer = (res: number): void => {
      if (answered) return;
      answered = true;
      clearTimeout(timer);
      cb(res);
    };
    const failWith = (err: unknown): void => {
      if (answered) return;
      const res = fail('read', `${path} @${pos}+${len}`, err);
      recentFailures.set(node.inode.ino, { until: Date.now() + FAILURE_MEMO_MS, res });
      answer(res);
    };
    const timer = setTimeout(() => {
      const err = new StargzError(ErrorCodes.TIMEOUT, `no answer within ${options.readDeadlineMs} ms`);
      failWith(err);
      controller.abort(err);
    }, options.readDeadlineMs);
    fs.readInto(node, buf, pos, len, controller.signal).then(answer, failWith);
  };

  const read = (path: string, node: VNode, buf: Buffer, len: number, pos: number, cb: (res: number) => void): void => {
    const ino = node.inode.ino;
    if (recentFailures.size > 0) {
      const failed = recentFailures.get(ino);
      if (failed && failed.until > Date.now()) return cb(failed.res);
      recentFailures.delete(ino);
    }
    // A file's first read tells the walk read-ahead where the reader is.
    const walkPlan = walk && node !== lastFile ? walk.onFileRead(node) : undefined;
    lastFile = node;
    const ahead = sequentialAhead(node, fs.size(node))?.onRead(pos, len);
    // Most reads find their chunks in memory (read-ahead put them there): answered at once.
    const got = fs.readCached(node, buf, pos, len);
    if (got !== undefined) cb(got);
    else readThrough(path, node, buf, len, pos, cb);
    // After the on-demand read went out, so it goes first.
    if (ahead) fs.fetchAhead([{ node, ...ahead }], 'read-ahead');
    if (walkPlan && walkPlan.length > 0) fs.fetchAhead(walkPlan.map((p) => ({ node: p.node, offset: 0, length: p.length })), 'walk-ahead');
  };

  return { read, activeWalks: () => walk?.activeWalks ?? 0 };
}
