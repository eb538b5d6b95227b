// Bounds on one response body: at most the bytes it may carry, and a rate below which the
// server counts as gone. Idle timeouts alone cannot catch a server that trickles a byte
// every few seconds, nor one that keeps sending past what it announced.
import { Transform, type TransformCallback } from 'node:stream';
import type { StargzError } from '../errors.js';

/** What dump() reads of a body nobody wants before it hangs up instead. */
const DUMP_MAX_BYTES = 64 * 1024;

/** A response body that counts what passes and fails once it exceeds its limit. */
export class GuardedBody extends Transform {
  /** Body bytes received so far. */
  received = 0;
  private max = Infinity;
  private overflow: (() => StargzError) | undefined;

  /** From now on, more than `max` bytes in total fail the body with `error()`. */
  limit(max: number, error: () => StargzError): void {
    this.max = max;
    this.overflow = error;
    if (this.received > max) this.destroy(error());
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.received += chunk.length;
    if (this.received > this.max) return cb(this.overflow!());
    cb(null, chunk);
  }

  /** True while the reader, not the server, holds the data up (our buffers are full). */
  get backpressured(): boolean {
    return this.readableLength >= this.readableHighWaterMark || this.writableNeedDrain;
  }

  /** The whole body as UTF-8 (as undici's body.text()); bounded by whatever limit is set. */
  async text(): Promise<string> {
    const chunks: Buffer[] = [];
    for await (const c of this as AsyncIterable<Buffer>) chunks.push(c);
    return Buffer.concat(chunks).toString('utf8');
  }

  /** Reads and drops a small body so its connection can be reused; a big one is cut off. */
  dump(): Promise<void> {
    return new Promise((resolve) => {
      let n = 0;
      this.on('error', () => undefined);
      this.on('close', () => resolve());
      this.on('data', (c: Buffer) => {
        n += c.length;
        if (n > DUMP_MAX_BYTES) this.destroy();
      });
      this.resume();
    });
  }
}

/**
 * Calls `fail` when fewer than minRate·window bytes arrived over any window while the reader
 * was waiting for data. Returns a stop function.
 */
export function watchRate(body: GuardedBody, minRate: number, windowMs: number, fail: (received: number) => void): () => void {
  const tickMs = Math.max(20, Math.floor(windowMs / 10));
  let samples = [{ t: Date.now(), n: 0 }];
  const timer = setInterval(() => {
    const now = Date.now();
    if (body.backpressured) {
      // A slow disk or a busy inflater is not the server's fault: start the window again.
      samples = [{ t: now, n: body.received }];
      return;
    }
    samples.push({ t: now, n: body.received });
    while (samples.length > 1 && samples[1]!.t <= now - windowMs) samples.shift();
    const first = samples[0]!;
    if (now - first.t >= windowMs && body.received - first.n < (minRate * windowMs) / 1000) fail(body.received - first.n);
  }, tickMs);
  timer.unref();
  return () => clearInterval(timer);
}
