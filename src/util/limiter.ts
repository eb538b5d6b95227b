// A counting semaphore with two priorities: on-demand work goes before background
// prefetch, so a user's read never queues behind the image-wide prefetch. It is a byte
// budget (byte-budget.ts) whose every job claims one unit.
import { ByteBudget } from './byte-budget.js';

export type Priority = 'high' | 'low';

export class Limiter {
  private readonly slots: ByteBudget;

  constructor(readonly concurrency: number) {
    if (!Number.isInteger(concurrency) || concurrency < 1) throw new RangeError('concurrency must be a positive integer');
    this.slots = new ByteBudget(concurrency);
  }

  get pending(): number {
    return this.slots.waiting;
  }

  run<T>(fn: () => Promise<T>, priority: Priority = 'high'): Promise<T> {
    return this.slots.run(1, fn, priority);
  }
}
