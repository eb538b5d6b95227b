// A one-line progress display, redrawn at most 10 times a second, on a terminal only.
import { formatBytes } from './format.js';

export class ProgressLine {
  private last = 0;
  private shown = false;
  readonly enabled: boolean;

  constructor(private readonly stream: NodeJS.WriteStream = process.stderr, quiet = false) {
    this.enabled = !quiet && Boolean(stream.isTTY);
  }

  update(text: string, force = false): void {
    if (!this.enabled) return;
    const now = Date.now();
    if (!force && now - this.last < 100) return;
    this.last = now;
    const width = this.stream.columns ?? 100;
    this.stream.write('\r\x1b[K' + text.slice(0, width - 1));
    this.shown = true;
  }

  clear(): void {
    if (this.shown) this.stream.write('\r\x1b[K');
    this.shown = false;
  }
}

export function transferLine(done: number, total: number, fetched: number, filesDone: number, filesTotal: number): string {
  const pct = total > 0 ? Math.floor((done / total) * 100) : 100;
  return `${pct}%  files ${filesDone}/${filesTotal}  ${formatBytes(done)}/${formatBytes(total)} written  ${formatBytes(fetched)} fetched`;
}
