// Merges identical in-flight work: the second caller for a key awaits the first
// caller's promise instead of starting the same fetch again.

export class SingleFlight<K, V> {
  private readonly inflight = new Map<K, Promise<V>>();

  get size(): number {
    return this.inflight.size;
  }

  run(key: K, fn: () => Promise<V>): Promise<V> {
    const existing = this.inflight.get(key);
    if (existing) return existing;
    const p = fn().finally(() => this.inflight.delete(key));
    this.inflight.set(key, p);
    return p;
  }
}
