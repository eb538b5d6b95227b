// Every chunk of a layer by blob offset, built on first use: which chunks lie between two
// others (see AheadQueue's chunksWithin). Chunks shared by hardlinks or identical offsets
// appear once.
import type { ChunkRef } from '../estargz/index.js';
import type { Layer } from '../layer/layer.js';

export class ChunkMap {
  private readonly byLayer = new WeakMap<Layer, ChunkRef[]>();

  /** The chunks whose compressed extent lies entirely inside [offset, end), by offset. */
  within(layer: Layer, offset: number, end: number): ChunkRef[] {
    const sorted = this.sorted(layer);
    let lo = 0;
    let hi = sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (sorted[mid]!.offset < offset) lo = mid + 1;
      else hi = mid;
    }
    const out: ChunkRef[] = [];
    for (let i = lo; i < sorted.length && sorted[i]!.offset < end; i++) if (sorted[i]!.end <= end) out.push(sorted[i]!);
    return out;
  }

  private sorted(layer: Layer): ChunkRef[] {
    let list = this.byLayer.get(layer);
    if (list) return list;
    const byOffset = new Map<number, ChunkRef>();
    for (const entry of layer.index.entries.values()) for (const c of entry.chunks) if (!byOffset.has(c.offset)) byOffset.set(c.offset, c);
    list = [...byOffset.values()].sort((a, b) => a.offset - b.offset);
    this.byLayer.set(layer, list);
    return list;
  }
}
