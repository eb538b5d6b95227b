// A counting semaphore with two priorities: on-demand work goes before background
// prefetch, so a user's read never queues behind the image-wide prefetch.

export type Priority = 'high' | 'low';

export class Limiter {
  private active = 0;
  private readonly high: Array<() => void> = [];
  private readonly low: Array<() => void> = [];

  constructor(readonly concurrency: number) {
    if (!Number.isInteger(concurrency) || concurrency < 1) throw new RangeError('concurrency must be a positive integer');
  }

  get pending(): number {
    return this.high.length + this.low.length;
  }

  async run<T>(fn: () => Promise<T>, priority: Priority = 'high'): Promise<T> {
    await this.acquire(priority);
    try {
      return await fn();
    } finally {
      this.release();
    }
  }

  private acquire(priority: Priority): Promise<void> {
    if (this.active < this.concurrency) {
      this.active++;
      return Promise.resolve();
    }
    return new Promise((resolve) => (priority === 'high' ? this.high : this.low).push(resolve));
  }

  private release(): void {
    const next = this.high.shift() ?? this.low.shift();
    if (next) next();
    else this.active--;
  }
}
