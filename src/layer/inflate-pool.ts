// A small pool of worker threads that inflate and verify fetched ranges. One job is one
// range with all its chunks; the range's bytes are transferred, not copied, when they own
// their buffer. Workers hold the event loop only while they have work. Fetches for the pool
// are admitted through its backlog (ahead()), so the registry is never read far ahead of
// what the workers can inflate.
import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import { ErrorCodes, StargzError, type ErrorCode } from '../errors.js';
import { INFLATE_BACKLOG_BYTES } from '../config.js';
import { ByteBudget } from '../util/byte-budget.js';
import type { Priority } from '../util/limiter.js';
import { inflateChunk, verifyChunk, type Compression } from '../estargz/index.js';
import type { InflateJob, InflateReply } from './inflate-worker.js';

export interface InflateItem {
  /** Position of the chunk's compressed bytes inside the range buffer. */
  start: number;
  end: number;
  innerOffset: number;
  size: number;
  digest?: string;
  /** Names the chunk in an error message. */
  what: string;
}

interface Slot {
  worker: Worker;
  busy: number;
}

export class InflatePool {
  private readonly slots: Slot[] = [];
  private readonly pending = new Map<number, { resolve: (r: InflateReply) => void; reject: (e: unknown) => void; slot: Slot }>();
  private nextId = 1;
  /** Compressed bytes being fetched for the pool or waiting in it, not yet inflated. */
  private readonly backlog: ByteBudget;

  constructor(
    private readonly size = Math.max(1, Math.min(4, availableParallelism())),
    backlogBytes = INFLATE_BACKLOG_BYTES,
  ) {
    this.backlog = new ByteBudget(backlogBytes);
  }

  /**
   * Runs `fetchAndInflate` (fetch `compressedBytes`, then inflate() them) once they fit in the
   * backlog, at `priority`. Bytes received beyond what the workers keep up with would only
   * wait in memory, and be lost with the process if it is killed.
   */
  ahead<T>(compressedBytes: number, fetchAndInflate: () => Promise<T>, priority?: Priority): Promise<T> {
    return this.backlog.run(compressedBytes, fetchAndInflate, priority);
  }

  /** Inflated, verified chunks of one range, in the order of `items`. */
  async inflate(range: Buffer, compression: Compression, items: InflateItem[]): Promise<Buffer[]> {
    const slot = this.pick();
    const id = this.nextId++;
    // Transfer the range when it owns its memory; otherwise postMessage copies it.
    const owns = range.byteOffset === 0 && range.byteLength === range.buffer.byteLength && !(range.buffer instanceof SharedArrayBuffer);
    const job: InflateJob = { id, range, compression, items };
    const reply = await new Promise<InflateReply>((resolve, reject) => {
      this.pending.set(id, { resolve, reject, slot });
      if (slot.busy++ === 0) slot.worker.ref();
      slot.worker.postMessage(job, owns ? [range.buffer as ArrayBuffer] : []);
    });
    return Promise.all(
      reply.outcomes.map(async (o, i) => {
        if ('data' in o) return Buffer.from(o.data.buffer, o.data.byteOffset, o.data.byteLength);
        const item = items[i]!;
        // A member far longer than its chunk: the streaming inflater, which stops early.
        if ('fallback' in o) return inflateInThread(Buffer.from(o.fallback.buffer, o.fallback.byteOffset, o.fallback.byteLength), compression, item);
        throw new StargzError((o.error.code as ErrorCode | undefined) ?? ErrorCodes.CORRUPT_DATA, o.error.message);
      }),
    );
  }

  /** Starts the workers now (each takes ~50 ms to load), so the first range does not wait for them. */
  warm(): void {
    while (this.slots.length < this.size) this.spawn();
  }

  close(): Promise<void> {
    const all = this.slots.splice(0).map((s) => s.worker.terminate().then(() => undefined));
    return Promise.all(all).then(() => undefined);
  }

  private pick(): Slot {
    if (this.slots.length < this.size && this.slots.every((s) => s.busy > 0)) return this.spawn();
    let best = this.slots[0] ?? this.spawn();
    for (const s of this.slots) if (s.busy < best.busy) best = s;
    return best;
  }

  private spawn(): Slot {
    const worker = new Worker(new URL('./inflate-worker.js', import.meta.url));
    const slot: Slot = { worker, busy: 0 };
    worker.unref();
    worker.on('message', (reply: InflateReply) => {
      const p = this.pending.get(reply.id);
      if (!p) return;
      this.pending.delete(reply.id);
      if (--p.slot.busy === 0) p.slot.worker.unref();
      p.resolve(reply);
    });
    worker.on('error', (err) => this.failSlot(slot, err));
    worker.on('exit', (code) => this.failSlot(slot, new Error(`inflate worker exited with code ${code}`)));
    this.slots.push(slot);
    return slot;
  }

  private failSlot(slot: Slot, err: unknown): void {
    const i = this.slots.indexOf(slot);
    if (i >= 0) this.slots.splice(i, 1);
    for (const [id, p] of this.pending) {
      if (p.slot !== slot) continue;
      this.pending.delete(id);
      p.reject(new StargzError(ErrorCodes.IO, `inflate worker failed: ${(err as Error).message}`, { cause: err }));
    }
  }
}

/** The in-thread path, for members the worker declines (far longer than their chunk). */
export async function inflateInThread(compressed: Buffer, compression: Compression, item: InflateItem): Promise<Buffer> {
  const data = await inflateChunk(compressed, compression, item.innerOffset, item.size);
  verifyChunk(data, item.digest, item.what);
  return data;
}
