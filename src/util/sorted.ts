// Binary search over sorted arrays: the one lower-bound the index, the VFS and the read
// scheduler share.

/** The first index in [0, length) whose item is not `before` the key (length when none). */
export function lowerBound<T>(items: ArrayLike<T>, before: (item: T) => boolean): number {
  let lo = 0;
  let hi = items.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (before(items[mid] as T)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
