// Facts about the committed edge image that the hostile-server tests aim their rules at.
import { fixtureLayers, openFixtureLayer } from '../estargz/fixture-layers.js';

/** The edge layer holding bin/big2 (1 MB in 16 chunks of 64 KiB). */
export const BIG_LAYER = 'sha256:c5e4a3cc121f3d03e1c566372a11782f97ac049ff3b0518ca8a3faf8fd9d73f8';

/**
 * Compressed offsets of bin/big2's chunks, and where the tail read that fetches footer and TOC
 * starts (32 KiB from the end, or the TOC if it starts earlier): a rule for ranges in between
 * hits chunk reads only, never the opening of the layer.
 */
export function big2Chunks(): { offsets: number[]; tailStart: number } {
  const layer = fixtureLayers('edge').find((l) => l.digest === BIG_LAYER)!;
  const { index } = openFixtureLayer(layer);
  const entry = index.entries.get('bin/big2')!;
  return { offsets: entry.chunks.map((c) => c.offset), tailStart: Math.min(index.tocOffset, layer.blob.length - 32 * 1024) };
}
