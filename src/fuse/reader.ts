// Serving reads: from memory when the chunks are there (read-ahead's doing, mostly), else
// through the layer within a deadline; and deciding what to fetch ahead — the rest of a file
// read sequentially (read-ahead.ts), the next files of a directory walk (walk-ahead.ts) —
// handed to the fetch-ahead queue (ahead-queue.ts).
import { ErrorCodes, StargzError } from '../errors.js';
import type { ChunkRef } from '../estargz/index.js';
import { chunkKey, DEFAULT_FETCH_TUNING, type Layer } from '../layer/layer.js';
import type { RangePlanOptions } from '../layer/range-plan.js';
import type { MergedFs } from '../vfs/merged-fs.js';
import type { VNode } from '../vfs/node.js';
import { AheadQueue, type AheadKind } from './ahead-queue.js';
import { ChunkMap } from './chunk-map.js';
import { Inflight } from './inflight.js';
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
  /** How fetch-ahead merges chunks into range requests (the layers' tuning). */
  tuning?: RangePlanOptions;
  /** Fetch-ahead range requests in flight at once; keep it below the connection limit. */
  aheadInFlight?: number;
  /**
   * Whether a chunk is at hand already (read-ahead skips those); default: never. Meant to be
   * cheap (the memory tier): a chunk it misses is read through the layer, which takes it from
   * the disk cache when it is there — read-ahead then warms memory ahead of the reader.
   */
  isCached?: (key: string) => boolean;
  /** The chunk's bytes if they are in memory: such reads are answered without a round of promises. */
  peek?: (key: string) => Buffer | undefined;
  /** Maps a failure to the negative errno to answer (and logs it). */
  fail: (op: string, what: string, err: unknown) => number;
}

export interface Reader {
  /** Answers a FUSE read of a regular file: cb(bytes) or cb(-errno). */
  read(path: string, node: VNode, buf: Buffer, len: number, pos: number, cb: (res: number) => void): void;
  activeWalks(): number;
  /** Drops queued fetch-ahead (unmount). */
  stop(): void;
}

export const DEFAULT_READ_DEADLINE_MS = 20_000;
/**
 * After a failed read the kernel retries the page at once, synchronously: answering that
 * retry from the failure we just had keeps one `cat` bounded by one deadline, not two.
 */
const FAILURE_MEMO_MS = 2_000;
const DEFAULT_AHEAD_IN_FLIGHT = 6;
/** The kernel reads up to 128 KiB ahead by itself: only longer files need read-ahead. */
const MIN_READ_AHEAD_FILE = 256 * 1024;
/** Files whose sequential read-ahead state is kept (there are no file handles: see the adapter's open). */
const SEQUENTIAL_STATES = 64;

export function createReader(fs: MergedFs, options: ReaderOptions): Reader {
  const fail = options.fail;
  /** ino -> when its last failed read stops being answered from memory, and with what. */
  const recentFailures = new Map<number, { until: number; res: number }>();
  const readAheadOptions = options.readAhead === false ? undefined : (options.readAhead ?? DEFAULT_READ_AHEAD);
  const isCached = options.isCached ?? (() => false);

  // Per-file sequential read-ahead, by inode (most recently read last, oldest dropped).
  const sequential = new Map<number, ReadAhead>();
  const sequentialAhead = (node: VNode): ReadAhead | undefined => {
    const size = node.inode.entry.size;
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

  const peek = options.peek;
  /** Serves [pos, pos + want) when every chunk it needs is in memory; false otherwise. */
  const copyFromMemory = (node: VNode, refs: ChunkRef[], buf: Buffer, pos: number, want: number): boolean => {
    const digest = node.inode.layer.descriptor.digest;
    const found: Buffer[] = [];
    for (const ref of refs) {
      if (ref.digest === undefined) return false;
      const data = peek!(chunkKey(digest, ref));
      if (!data) return false;
      found.push(data);
    }
    refs.forEach((ref, i) => {
      const from = Math.max(pos, ref.fileOffset);
      const to = Math.min(pos + want, ref.fileOffset + ref.size);
      if (to > from) found[i]!.copy(buf, from - pos, from - ref.fileOffset, to - ref.fileOffset);
    });
    return true;
  };

  const inflight = new Inflight();

  /** A read through the layer (cache, then registry), bounded by the read deadline. */
  const readThrough = (path: string, node: VNode, refs: ChunkRef[], buf: Buffer, len: number, pos: number, want: number, cb: (res: number) => void): void => {
    const ino = node.inode.ino;
    const digest = node.inode.layer.descriptor.digest;
    const keys = refs.map((r) => chunkKey(digest, r));
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
      recentFailures.set(ino, { until: Date.now() + FAILURE_MEMO_MS, res });
      answer(res);
    };
    const timer = setTimeout(() => {
      const err = new StargzError(ErrorCodes.TIMEOUT, `no answer within ${options.readDeadlineMs} ms`);
      failWith(err);
      controller.abort(err);
    }, options.readDeadlineMs);
    // Chunks are copied straight into the kernel's buffer — never after we answered, since
    // fuse-native hands that memory back then.
    const sink = (ref: ChunkRef, data: Buffer): void => {
      if (answered) return;
      const from = Math.max(pos, ref.fileOffset);
      const to = Math.min(pos + want, ref.fileOffset + ref.size);
      if (to > from) data.copy(buf, from - pos, from - ref.fileOffset, to - ref.fileOffset);
    };
    const fetch = (): void => {
      if (answered) return;
      if (peek && copyFromMemory(node, refs, buf, pos, want)) return answer(want);
      const work = node.inode.layer.readChunks(refs, sink, { priority: 'high', signal: controller.signal });
      void inflight.track(keys, work);
      work.then(() => answer(want), failWith);
    };
    // Fetch-ahead may have these chunks on the way already: wait for it rather than fetch twice.
    const ahead = inflight.waitFor(keys);
    if (ahead.length === 0) fetch();
    else void Promise.all(ahead).then(fetch);
  };

  const chunkMap = new ChunkMap();
  const queue = new AheadQueue({
    chunksWithin: (layer, offset, end) => chunkMap.within(layer, offset, end),
    maxGap: options.tuning?.maxGap ?? DEFAULT_FETCH_TUNING.maxGap,
    maxRangeBytes: options.tuning?.maxRangeBytes ?? DEFAULT_FETCH_TUNING.maxRangeBytes,
    maxInFlight: options.aheadInFlight ?? DEFAULT_AHEAD_IN_FLIGHT,
    isCached,
    inflight,
  });

  /** Queues byte ranges of files, most wanted first, to be fetched into the cache. */
  const fetchAhead = (ranges: Array<{ node: VNode; offset: number; length: number }>, kind: AheadKind): void => {
    const byLayer = new Map<Layer, { refs: ChunkRef[]; keys: Set<string> }>();
    for (const { node, offset, length } of ranges) {
      const layer = node.inode.layer;
      let group = byLayer.get(layer);
      if (!group) byLayer.set(layer, (group = { refs: [], keys: new Set() }));
      for (const r of fs.chunksFor(node, offset, length)) {
        // Chunks without a digest are never cached: fetching them ahead would be wasted.
        if (r.digest === undefined) continue;
        const key = chunkKey(layer.descriptor.digest, r);
        if (group.keys.has(key) || isCached(key) || inflight.has(key)) continue;
        group.keys.add(key);
        group.refs.push(r);
      }
    }
    for (const [layer, { refs }] of byLayer) queue.add(layer, refs, kind);
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
    const ahead = sequentialAhead(node)?.onRead(pos, len);
    const size = node.inode.entry.size;
    const want = pos >= size ? 0 : Math.min(len, size - pos);
    const refs = want === 0 ? [] : fs.chunksFor(node, pos, want);
    // A sparse file's holes are the bytes no chunk covers; the kernel's buffer is not zeroed.
    if (node.inode.entry.sparse) buf.fill(0, 0, want);
    // Most reads find their chunks in memory (read-ahead put them there): answered at once.
    if (want === 0 || (peek && copyFromMemory(node, refs, buf, pos, want))) cb(want);
    else readThrough(path, node, refs, buf, len, pos, want, cb);
    // After the on-demand fetch was queued, so it goes first.
    if (ahead) fetchAhead([{ node, offset: ahead.offset, length: ahead.length }], 'file');
    if (walkPlan && walkPlan.length > 0) fetchAhead(walkPlan.map((p) => ({ node: p.node, offset: 0, length: p.length })), 'walk');
  };

  return { read, activeWalks: () => walk?.activeWalks ?? 0, stop: () => queue.clear() };
}
