// Read-ahead within a file: the kernel asks for at most 128 KiB at a time, so a sequential
// read through a big file would otherwise be one range request per 128 KiB. Once reads are
// seen to be sequential we fetch a window ahead of them (low priority, into the cache),
// doubling it while the pattern holds, and start over after a seek.
// Pure bookkeeping: it says which bytes to fetch; the adapter fetches them.
import { MOUNT_AHEAD_DEFAULTS } from '../config.js';

export interface ReadAheadOptions {
  /** First window after a sequential pattern is seen. */
  initialWindow: number;
  /** Upper bound of the window. */
  maxWindow: number;
  /**
   * A read starting within this distance of where the previous one ended still counts as
   * sequential: the kernel sends several reads at once and they may arrive out of order.
   */
  slack: number;
  /**
   * A first read at offset 0 at least this long starts a run at once: the kernel asks for
   * its largest read (128 KiB) only for a reader with a big buffer (cat, cp), which goes on.
   */
  eagerLength: number;
}

export const DEFAULT_READ_AHEAD: ReadAheadOptions = MOUNT_AHEAD_DEFAULTS.readAhead;

export interface ByteRange {
  offset: number;
  length: number;
}

export class ReadAhead {
  /** End of the furthest read so far in the current sequential run (none yet: -1). */
  private lastEnd = -1;
  /** End of what has been requested ahead in the current run. */
  private aheadEnd = 0;
  private window: number;

  constructor(
    readonly fileSize: number,
    private readonly options: ReadAheadOptions = DEFAULT_READ_AHEAD,
  ) {
    if (!(options.initialWindow > 0 && options.maxWindow >= options.initialWindow && options.slack >= 0)) {
      throw new RangeError('read-ahead windows must be positive and maxWindow >= initialWindow');
    }
    this.window = options.initialWindow;
  }

  /**
   * Records a read of [offset, offset + length) and returns what to fetch ahead of it, if
   * anything. A run needs two reads, one continuing the other (or one big first read, see
   * eagerLength): a program that only peeks at a file's start (`file`, `head`) costs no
   * read-ahead, and the kernel already reads ahead of a lone read.
   */
  onRead(offset: number, length: number): ByteRange | undefined {
    const end = Math.min(this.fileSize, offset + Math.max(0, length));
    const eager = this.lastEnd < 0 && offset === 0 && length >= this.options.eagerLength;
    const sequential = eager || (this.lastEnd >= 0 && Math.abs(offset - this.lastEnd) <= this.options.slack);
    if (!sequential) {
      // A seek: forget the run; the next read decides whether a new one starts here.
      this.lastEnd = end;
      this.aheadEnd = end;
      this.window = this.options.initialWindow;
      return undefined;
    }
    this.lastEnd = Math.max(this.lastEnd, end);
    if (this.lastEnd >= this.fileSize) return undefined;
    // Refill once half of what was fetched ahead has been consumed, so requests stay big.
    if (this.aheadEnd - this.lastEnd > this.window / 2) return undefined;
    const from = Math.max(this.aheadEnd, this.lastEnd);
    const to = Math.min(this.fileSize, this.lastEnd + this.window);
    this.window = Math.min(this.options.maxWindow, this.window * 2);
    if (to <= from) return undefined;
    this.aheadEnd = to;
    return { offset: from, length: to - from };
  }
}
