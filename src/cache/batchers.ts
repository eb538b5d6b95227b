// Batching of index writes. Every SQLite commit rewrites whole pages (64 KiB here) into the
// WAL, so many small changes are folded into one transaction.

/**
 * Collects items added within `windowMs` (0: one turn of the event loop) and hands them to
 * `commit` together, or as soon as `maxItems` wait. Each add() settles when its batch is
 * committed, or rejects with the commit's error.
 */
export class MicroBatcher<T> {
  private queue: Array<{ item: T; resolve: () => void; reject: (err: unknown) => void }> = [];
  private scheduled = false;

  constructor(
    private readonly commit: (items: T[]) => void,
    private readonly windowMs = 0,
    private readonly maxItems = Infinity,
  ) {}

  add(item: T): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      if (this.queue.length >= this.maxItems) {
        this.flush();
        return;
      }
      if (!this.scheduled) {
        this.scheduled = true;
        if (this.windowMs > 0) setTimeout(() => this.flush(), this.windowMs);
        else setImmediate(() => this.flush());
      }
    });
  }

  /** Commits whatever is queued now (also called by close()). */
  flush(): void {
    this.scheduled = false;
    const batch = this.queue;
    if (batch.length === 0) return;
    this.queue = [];
    try {
      this.commit(batch.map((e) => e.item));
    } catch (err) {
      for (const e of batch) e.reject(err);
      return;
    }
    for (const e of batch) e.resolve();
  }
}

/**
 * Remembers the latest access time per key and writes them in one transaction after
 * `delayMs`, or as soon as `maxPending` keys are waiting. A failed write (another process
 * held the lock past the busy timeout) keeps the times for the next attempt: they only
 * steer eviction, so losing some at exit is harmless.
 */
export class AccessBatcher {
  private pending = new Map<string, [Buffer, number]>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly write: (entries: Array<[Buffer, number]>) => void,
    private readonly delayMs: number,
    private readonly maxPending: number,
  ) {}

  get size(): number {
    return this.pending.size;
  }

  note(hex: string, raw: Buffer, at: number): void {
    this.pending.set(hex, [raw, at]);
    if (this.pending.size >= this.maxPending) this.flushQuietly();
    else this.arm();
  }

  private arm(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.flushQuietly();
    }, this.delayMs);
    this.timer.unref(); // never keeps a finished process alive
  }

  /** Writes what is pending; throws the write's error (and keeps the entries). */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.pending.size === 0) return;
    const entries = [...this.pending.values()];
    this.write(entries);
    this.pending.clear();
  }

  flushQuietly(): void {
    try {
      this.flush();
    } catch {
      // Bounded: if the index stays locked, give up on access times rather than grow.
      if (this.pending.size >= 16 * this.maxPending) this.pending.clear();
      else this.arm();
    }
  }

  /** Forgets pending times (the index is going away). */
  discard(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.pending.clear();
  }
}
