/**
 * Runs fn over items with at most `limit` calls in flight. On the first failure no new
 * call starts, and the returned promise rejects only once the calls in flight have
 * settled: callers can clean up knowing nothing of theirs still runs.
 */
export async function mapConcurrent<T>(items: Iterable<T>, limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  const it = items[Symbol.iterator]();
  let failure: { err: unknown } | undefined;
  const worker = async (): Promise<void> => {
    for (let n = it.next(); !n.done && !failure; n = it.next()) {
      try {
        await fn(n.value);
      } catch (err) {
        failure ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, limit) }, worker));
  if (failure) throw failure.err;
}

/**
 * Like Promise.all, but settles only when every promise has, and rejects with the failure
 * that happened first in time (the cause; later ones are usually its consequences).
 */
export async function allSettledOrThrow<T>(promises: Iterable<Promise<T>>): Promise<T[]> {
  let first: { err: unknown } | undefined;
  const results = await Promise.allSettled(
    [...promises].map((p) =>
      p.catch((err: unknown) => {
        first ??= { err };
        throw err;
      }),
    ),
  );
  if (first) throw first.err;
  return results.map((r) => (r as PromiseFulfilledResult<T>).value);
}
