// Read-ahead across files: tar, cp -r, grep -r and friends read file after file in readdir
// order (depth first), and each cold file costs at least one round trip, leaving the link
// idle in between. Once two reads in a row land on consecutive files of that order, we
// predict the files that come next and fetch them ahead, in a window of bytes that grows
// while the prediction keeps holding. A single `cat` never starts a walk.
// Pure bookkeeping over an abstract tree: it says which files to fetch; the adapter fetches.
import { MOUNT_AHEAD_DEFAULTS } from '../config.js';

export interface WalkTree<N> {
  /**
   * The regular files after `node`, lazily: 'tree' in depth-first readdir order (what tar
   * and cp -r read) and never leaving the directory `scope` (default: the whole tree);
   * 'dir' only the later files of node's own directory (what `cat dir/*` reads).
   */
  filesAfter(node: N, mode: WalkMode, scope?: N): Iterator<N>;
  /** The deepest directory holding both files. */
  scopeOf(a: N, b: N): N;
  /** Bytes in the file. */
  size(node: N): number;
}

export type WalkMode = 'tree' | 'dir';

export interface WalkAheadOptions {
  /** Bytes fetched ahead right after a walk is seen. */
  initialWindow: number;
  /** The window doubles with every refill that the walk confirms, up to this. */
  maxWindow: number;
  /** How many files a reader may skip (unreadable, empty, filtered) and still count as walking. */
  maxSkip: number;
  /** Walks followed at once (several tars, a cp and a grep...). */
  maxStreams: number;
}

export const DEFAULT_WALK_AHEAD: WalkAheadOptions = MOUNT_AHEAD_DEFAULTS.walkAhead;

/** Fetch the first `length` bytes of `node` (the whole file unless the window ends inside it). */
export interface PlannedFile<N> {
  node: N;
  length: number;
}

interface Stream<N> {
  /** The file the reader is in. */
  last: N;
  mode?: WalkMode;
  /**
   * The directory the walk has been seen in: nothing outside it is fetched ahead, so `tar
   * usr/bin` fetches nothing of usr/include. It widens when the reader walks out of it.
   */
  scope?: N;
  /** Files already asked ahead and not reached yet, in walk order. */
  queue: PlannedFile<N>[];
  /** Bytes in `queue`. */
  ahead: number;
  /** The files after the queue's end. */
  next?: Iterator<N>;
  window: number;
  used: number;
}

export class WalkAhead<N> {
  private readonly streams: Stream<N>[] = [];
  private clock = 0;

  constructor(
    private readonly tree: WalkTree<N>,
    private readonly options: WalkAheadOptions = DEFAULT_WALK_AHEAD,
  ) {
    if (!(options.initialWindow > 0 && options.maxWindow >= options.initialWindow && options.maxSkip >= 0 && options.maxStreams >= 1)) {
      throw new RangeError('walk-ahead windows must be positive, maxWindow >= initialWindow, maxStreams >= 1');
    }
  }

  /**
   * Records that a reader started reading `node` and returns the files to fetch ahead now
   * (empty when nothing new is due). Call it for a file's first read, not every read.
   */
  onFileRead(node: N): PlannedFile<N>[] {
    this.clock++;
    for (const s of this.streams) {
      if (s.last === node) {
        s.used = this.clock;
        return [];
      }
    }
    for (const s of this.streams) {
      if (s.mode && this.advance(s, node)) return this.refill(s);
    }
    for (const s of this.streams) {
      // A new walk, or one that left its directory (then it keeps its window).
      if (s.mode === 'dir' || (s.mode === 'tree' && (s.queue.length > 0 || s.next))) continue;
      const mode = this.follows(s.last, node, s.mode);
      if (!mode) continue;
      s.mode = mode;
      s.scope = mode === 'tree' ? this.tree.scopeOf(s.scope ?? s.last, node) : undefined;
      s.last = node;
      s.used = this.clock;
      s.next = this.tree.filesAfter(node, mode, s.scope);
      return this.refill(s);
    }
    // Not part of any walk we know: it may be the first file of a new one.
    const fresh: Stream<N> = { last: node, queue: [], ahead: 0, window: this.options.initialWindow, used: this.clock };
    if (this.streams.length < this.options.maxStreams) this.streams.push(fresh);
    else {
      let oldest = 0;
      for (let i = 1; i < this.streams.length; i++) if (this.streams[i]!.used < this.streams[oldest]!.used) oldest = i;
      this.streams[oldest] = fresh;
    }
    return [];
  }

  /** Walks being followed right now (tests, diagnostics). */
  get activeWalks(): number {
    return this.streams.filter((s) => s.mode).length;
  }

  /** Whether `node` is one of the next few files after `prev`, and in which order. */
  private follows(prev: N, node: N, only?: WalkMode): WalkMode | undefined {
    for (const mode of only ? [only] : (['tree', 'dir'] as const)) {
      const it = this.tree.filesAfter(prev, mode);
      for (let i = 0; i <= this.options.maxSkip; i++) {
        const r = it.next();
        if (r.done) break;
        if (r.value === node) return mode;
      }
    }
    return undefined;
  }

  /** Moves an active walk to `node` if it is among the predicted files; false if not. */
  private advance(s: Stream<N>, node: N): boolean {
    const limit = Math.min(s.queue.length, this.options.maxSkip + 1);
    for (let i = 0; i < limit; i++) {
      if (s.queue[i]!.node !== node) continue;
      for (const p of s.queue.splice(0, i + 1)) s.ahead -= p.length;
      s.last = node;
      s.used = this.clock;
      return true;
    }
    if (s.queue.length > 0) return false;
    // Nothing queued (the walk ran past its window, or the files were empty): look ahead.
    for (let i = 0; i <= this.options.maxSkip; i++) {
      const r = s.next?.next();
      if (!r || r.done) return false;
      if (r.value === node) {
        s.last = node;
        s.used = this.clock;
        return true;
      }
    }
    return false;
  }

  /** Tops the window up once less than half of it is left ahead of the reader. */
  private refill(s: Stream<N>): PlannedFile<N>[] {
    if (s.ahead > s.window / 2 || !s.next) return [];
    const out: PlannedFile<N>[] = [];
    while (s.ahead < s.window) {
      const r = s.next.next();
      if (r.done) {
        s.next = undefined;
        break;
      }
      const size = this.tree.size(r.value);
      if (size === 0) continue;
      // A file bigger than what is left of the window: its start only; reading it further
      // is the per-file sequential read-ahead's business.
      const p = { node: r.value, length: Math.min(size, s.window - s.ahead) };
      s.queue.push(p);
      s.ahead += p.length;
      out.push(p);
    }
    s.window = Math.min(this.options.maxWindow, s.window * 2);
    return out;
  }
}
