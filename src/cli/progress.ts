// The transfer display on a terminal: one bar per layer being read plus a total line, each with
// bytes, rate and ETA, drawn by cli-progress's MultiBar at most PROGRESS_DEFAULTS.redrawsPerSecond
// times a second. Layer bars read the image's metrics (inflated bytes on-demand reads asked of the
// layer, and delivered so far or stood for by the compressed bytes of reads in flight, plus the
// compressed bytes fetched for it); the total line is what
// the command says it has done (bytes written of bytes to write). Not on a terminal, or with
// --quiet, it draws nothing at all: piped output gets only the summary.
import cliProgress from 'cli-progress';
import { PROGRESS_DEFAULTS } from '../config.js';
import { scrub } from '../errors.js';
import type { FetchMetrics, LayerCounts } from '../metrics/fetch-metrics.js';
import { formatBytes } from './format.js';

export interface ProgressImage {
  metrics: FetchMetrics;
  /** The image's layer digests in manifest order (a bar's label is its position). */
  layers: readonly string[];
  /** What a bar is of (default 'layer'; copy's are blobs). */
  noun?: string;
}

export interface TransferProgressOptions {
  quiet: boolean;
  /** The images read (cat may read several): a bar for each of their layers read from. */
  images: readonly ProgressImage[];
  /** What the command has done: bytes of bytes, and a short note (files 3/10). */
  total: () => { done: number; total: number; note?: string };
}

/** Bytes per second over the last PROGRESS_DEFAULTS.rateWindowMs, from samples of a growing count. */
class Rate {
  private readonly samples: Array<{ at: number; value: number }> = [];

  add(at: number, value: number): number {
    this.samples.push({ at, value });
    while (this.samples.length > 2 && at - this.samples[1]!.at >= PROGRESS_DEFAULTS.rateWindowMs) this.samples.shift();
    const first = this.samples[0]!;
    const seconds = (at - first.at) / 1000;
    return seconds > 0 ? Math.max(0, (value - first.value) / seconds) : 0;
  }
}

interface Shown {
  bar: cliProgress.SingleBar;
  rate: Rate;
}

export class TransferProgress {
  /** Drawing: on a terminal and not --quiet. */
  readonly enabled: boolean;
  private bars: cliProgress.MultiBar | undefined;
  private totalLine: Shown | undefined;
  private readonly layerBars = new Map<string, Shown>();
  private timer: NodeJS.Timeout | undefined;
  private refreshing = false;

  constructor(
    private readonly options: TransferProgressOptions,
    private readonly stream: NodeJS.WriteStream = process.stderr,
  ) {
    this.enabled = !options.quiet && Boolean(stream.isTTY);
  }

  /** Starts drawing (nothing when not enabled). */
  start(): void {
    if (!this.enabled || this.bars) return;
    this.bars = new cliProgress.MultiBar({
      stream: this.stream,
      fps: PROGRESS_DEFAULTS.redrawsPerSecond,
      // Most wanted first: a narrow terminal cuts the line's end.
      format: '{label} [{bar}] {percentage}% {rate}/s ETA {timeLeft} {done}/{size} {note}',
      barsize: 20,
      hideCursor: false,
      clearOnComplete: true,
      stopOnComplete: false,
      // main.ts handles SIGINT/SIGTERM (abort, clean up); cli-progress must not add its own.
      gracefulExit: false,
      autopadding: true,
    });
    this.totalLine = { bar: this.bars.create(1, 0, this.payload('total', 0, 0, 0, '')), rate: new Rate() };
    // Values are taken a little more often than drawn, so a draw never shows a stale sample twice.
    this.timer = setInterval(() => void this.refresh(), Math.floor(1000 / PROGRESS_DEFAULTS.redrawsPerSecond / 2));
    void this.refresh();
  }

  /** A notice while bars are drawn: printed above them; false when not drawing (the caller prints it). */
  notice(line: string): boolean {
    if (!this.bars) return false;
    this.bars.log(`stargz-get: ${scrub(line)}\n`);
    return true;
  }

  /** Stops drawing and clears the bars (the summary follows on a clean line). */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.bars?.stop();
    this.bars = undefined;
  }

  private async refresh(): Promise<void> {
    if (this.refreshing || !this.bars) return;
    this.refreshing = true;
    try {
      const counts = await Promise.all(this.options.images.map((image) => image.metrics.layers()));
      if (!this.bars) return;
      const now = Date.now();
      let fetched = 0;
      this.options.images.forEach((image, n) => {
        for (const c of counts[n]!.values()) fetched += c.blobBytes;
        image.layers.forEach((digest, i) => {
          const c = counts[n]!.get(digest);
          if (!c || c.readRequestedBytes === 0) return; // not read from (yet): no bar
          this.layerBar(`${n}:${digest}`, `${image.noun ?? 'layer'} ${i + 1}/${image.layers.length} ${digest.replace(/^sha256:/, '').slice(0, 8)}`, c, now);
        });
      });
      const t = this.options.total();
      const line = this.totalLine!;
      line.bar.setTotal(Math.max(1, t.total));
      line.bar.update(Math.min(t.done, t.total), this.payload('total', t.done, t.total, line.rate.add(now, t.done), [t.note, `${formatBytes(fetched)} fetched`].filter(Boolean).join('  ')));
    } finally {
      this.refreshing = false;
    }
  }

  private layerBar(key: string, label: string, c: LayerCounts, now: number): void {
    let shown = this.layerBars.get(key);
    if (!shown) {
      shown = { bar: this.bars!.create(1, 0, this.payload(label, 0, 0, 0, '')), rate: new Rate() };
      this.layerBars.set(key, shown);
    }
    // Delivered bytes, and what the compressed bytes of reads in flight stand for (a big chunk moves as it arrives).
    const done = Math.min(c.readProgressBytes, c.readRequestedBytes);
    shown.bar.setTotal(Math.max(1, c.readRequestedBytes));
    shown.bar.update(done, this.payload(label, done, c.readRequestedBytes, shown.rate.add(now, done), `${formatBytes(c.blobBytes)} fetched`));
  }

  private payload(label: string, done: number, size: number, rate: number, note: string): Record<string, string> {
    const left = size - done;
    const timeLeft = left <= 0 ? '0s' : rate > 0 ? formatEta(left / rate) : '--';
    const n = Math.max(...this.options.images.map((image) => image.layers.length));
    return { label: label.padEnd(`layer ${n}/${n} `.length + 8), done: formatBytes(done), size: formatBytes(size), rate: formatBytes(Math.round(rate)), timeLeft, note };
  }
}

function formatEta(seconds: number): string {
  if (seconds < 60) return `${Math.ceil(seconds)}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m${String(Math.ceil(seconds % 60)).padStart(2, '0')}s`;
  return `${Math.floor(seconds / 3600)}h${String(Math.floor((seconds % 3600) / 60)).padStart(2, '0')}m`;
}
