// Chunks being fetched by this mount right now, by cache key. The layer joins concurrent
// fetches of a chunk only once its cache lookup is done, so an on-demand read and a
// fetch-ahead started at the same moment would both fetch it: fetch-ahead skips what a read
// is fetching, and a read waits for the fetch-ahead that already has its chunk on the way.
export class Inflight {
  private readonly byKey = new Map<string, Promise<void>>();

  has(key: string): boolean {
    return this.byKey.has(key);
  }

  /** The fetches under way for any of `keys` (empty when none). */
  waitFor(keys: readonly string[]): Promise<void>[] {
    const out = new Set<Promise<void>>();
    for (const k of keys) {
      const p = this.byKey.get(k);
      if (p) out.add(p);
    }
    return [...out];
  }

  /** Marks `keys` as being fetched until `work` settles (it never rejects through here). */
  track(keys: readonly string[], work: Promise<unknown>): Promise<void> {
    const done = work.then(
      () => undefined,
      () => undefined,
    );
    for (const k of keys) if (!this.byKey.has(k)) this.byKey.set(k, done);
    void done.then(() => {
      for (const k of keys) if (this.byKey.get(k) === done) this.byKey.delete(k);
    });
    return done;
  }

  get size(): number {
    return this.byKey.size;
  }
}
