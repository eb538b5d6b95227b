// Pure planning of range requests: neighbouring compressed extents are merged into one
// request, because registries punish many small GETs and every request costs a round trip.
import { lowerBound } from '../util/sorted.js';

export interface Extent {
  /** Compressed start in the blob. */
  offset: number;
  /** Compressed end (exclusive). */
  end: number;
  /** Bytes it inflates to, when known (bounded per range by maxDecodedBytes). */
  decoded?: number;
}

export interface PlannedRange<T extends Extent> {
  offset: number;
  end: number;
  items: T[];
}

export interface RangePlanOptions {
  /** Merge two extents when the bytes between them are at most this many (fetched and dropped). */
  maxGap: number;
  /** Never grow a merged request beyond this many bytes (a single larger extent stays whole). */
  maxRangeBytes: number;
  /**
   * Never merge beyond this many inflated bytes: chunks of zeros compress to almost nothing,
   * so a small range can hold GiBs once inflated (a single larger extent stays whole).
   */
  maxDecodedBytes?: number;
}

export function planRanges<T extends Extent>(items: readonly T[], options: RangePlanOptions): PlannedRange<T>[] {
  const sorted = [...items].sort((a, b) => a.offset - b.offset || a.end - b.end);
  const ranges: PlannedRange<T>[] = [];
  const maxDecoded = options.maxDecodedBytes ?? Infinity;
  let current: PlannedRange<T> | undefined;
  let decoded = 0;
  for (const item of sorted) {
    const d = item.decoded ?? 0;
    if (
      current &&
      item.offset - current.end <= options.maxGap &&
      Math.max(current.end, item.end) - current.offset <= options.maxRangeBytes &&
      decoded + d <= maxDecoded
    ) {
      current.end = Math.max(current.end, item.end);
      current.items.push(item);
      decoded += d;
    } else {
      current = { offset: item.offset, end: item.end, items: [item] };
      ranges.push(current);
      decoded = d;
    }
  }
  return ranges;
}

/** The extents of `sorted` (by offset) lying wholly inside [offset, end). */
export function chunksWithin<T extends Extent>(sorted: readonly T[], offset: number, end: number): T[] {
  const out: T[] = [];
  for (let i = lowerBound(sorted, (c) => c.offset < offset); i < sorted.length && sorted[i]!.offset < end; i++) if (sorted[i]!.end <= end) out.push(sorted[i]!);
  return out;
}
