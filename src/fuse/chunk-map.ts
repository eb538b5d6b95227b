// Every chunk of a layer by blob offset (the index keeps the list: LayerIndex.chunksByOffset):
// which chunks lie between two others (see AheadQueue's chunksWithin). Chunks shared by
// hardlinks or identical offsets appear once.
import type { LazyChunkRef as ChunkRef } from '../file-index/index.js';
import type { Layer } from '../layer/layer.js';

export class ChunkMap {
  /** The chunks whose compressed extent lies entirely inside [offset, end), by offset. */
  within(layer: Layer, offset: number, end: number): ChunkRef[] {
    const sorted = layer.index.chunksByOffset;
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
}
