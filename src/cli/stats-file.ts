// STARGZ_GET_STATS_FILE=path makes a command write its transfer counters as JSON when it
// ends: what the benchmark reads instead of scraping the human summary.
import { writeFileSync } from 'node:fs';
import type { OpenedImage } from '../image/open-image.js';

export function writeStatsFile(image: OpenedImage, extra: object, wallMs: number): void {
  const file = process.env.STARGZ_GET_STATS_FILE;
  if (!file) return;
  const stats = {
    wallMs,
    ...image.client.stats,
    ...image.ctx.stats,
    layerBytes: image.manifest.layers.reduce((n, l) => n + l.size, 0),
    maxRssBytes: process.resourceUsage().maxRSS * 1024,
    memoryAtEnd: process.memoryUsage(),
    ...extra,
  };
  writeFileSync(file, JSON.stringify(stats, null, 2));
}
