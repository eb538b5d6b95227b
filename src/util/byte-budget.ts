// A semaphore counted in bytes: work declares how many bytes it will hold in memory and waits
// until they fit. Unlike a count of ranges, it bounds memory whatever sizes a TOC declares.
// Two priorities as in Limiter; within one, first come first served (a big claim is not
// starved by a stream of small ones). A claim larger than the whole budget runs alone.
import type { Priority } from './limiter.js';

interface Waiter {
  bytes: number;
  resolve: () => void;
}

export class ByteBudget {
  private used = 0;
  private readonly high: Waiter[] = [];
  private readonly low: Waiter[] = [];

  constructor(readonly capacity: number) {
    if (!Number.isSafeInteger(capacity) || capacity < 1) throw new RangeError('a byte budget must be a positive integer');
  }

  /** Bytes claimed right now. */
  get inUse(): number {
    return this.used;
  }

  /** Claims waiting for room. */
  get waiting(): number {
    return this.high.length + this.low.length;
  }

  async run<T>(bytes: number, fn: () => Promise<T>, priority: Priority = 'high'): Promise<T> {
    const claim = Math.min(Math.max(0, Math.ceil(bytes)), this.capacity);
    await this.acquire(claim, priority);
    try {
      return await fn();
    } finally {
      this.used -= claim;
      this.wake();
    }
  }

  private acquire(bytes: number, priority: Priority): Promise<void> {
    if (this.high.length + this.low.length === 0 && this.used + bytes <= this.capacity) {
      this.used += bytes;
      return Promise.resolve();
    }
    return new Promise((resolve) => (priority === 'high' ? this.high : this.low).push({ bytes, resolve }));
  }

  private wake(): void {
    for (;;) {
      const queue = this.high.length > 0 ? this.high : this.low;
      const next = queue[0];
      if (!next || this.used + next.bytes > this.capacity) return;
      queue.shift();
      this.used += next.bytes;
      next.resolve();
    }
  }
}
