// STARGZ_GET_STATS_FILE=path makes a command write its transfer counters as JSON when it
// ends: what the benchmark reads instead of scraping the human summary. The counters are the
// image's metrics (metrics/fetch-metrics.ts) summed over its layers.
import { writeFileSync } from 'node:fs';
import type { OpenedImage } from '../image/open-image.js';

export async function writeStatsFile(image: OpenedImage, extra: object, wallMs: number): Promise<void> {
  const file = process.env.STARGZ_GET_STATS_FILE;
  if (!file) return;
  const totals = await image.metrics.totals();
  const stats = {
    wallMs,
    ...totals,
    chunkCacheHits: totals.chunksFromMemory + totals.chunksFromDisk,
    chunksFetched: totals.chunksFromNetwork,
    layerBytes: image.manifest.layers.reduce((n, l) => n + l.size, 0),
    maxRssBytes: process.resourceUsage().maxRSS * 1024,
    memoryAtEnd: process.memoryUsage(),
    ...extra,
  };
  writeFileSync(file, JSON.stringify(stats, null, 2));
}
