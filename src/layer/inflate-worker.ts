// Worker thread: inflates and verifies the chunks of one fetched range, so the main thread
// (which serves FUSE and drives I/O) never spends its time in zlib, zstd or sha256.
import { parentPort } from 'node:worker_threads';
import { inflateChunkSync, verifyChunk, type Compression } from '../estargz/index.js';
import { isStargzError } from '../errors.js';

export interface InflateJob {
  id: number;
  range: Uint8Array;
  compression: Compression;
  items: Array<{ start: number; end: number; innerOffset: number; size: number; digest?: string; what: string }>;
}

/** `fallback` carries a copy of the chunk's compressed bytes back for the streaming inflater. */
export type InflateOutcome = { data: Uint8Array } | { fallback: Uint8Array } | { error: { code?: string; message: string } };

export interface InflateReply {
  id: number;
  outcomes: InflateOutcome[];
}

parentPort?.on('message', (job: InflateJob) => {
  const range = Buffer.from(job.range.buffer, job.range.byteOffset, job.range.byteLength);
  const transfer: ArrayBuffer[] = [];
  const outcomes: InflateOutcome[] = job.items.map((item) => {
    try {
      const compressed = range.subarray(item.start, item.end);
      const data = inflateChunkSync(compressed, job.compression, item.innerOffset, item.size);
      if (!data) return { fallback: compressed };
      verifyChunk(data, item.digest, item.what);
      // Hand the bytes over without a copy: a view is sent with its whole buffer, which is the
      // inflater's own (zlib's output keeps its tail slack, so the chunk is rarely all of it).
      // A copy would be a second allocation on the main thread, and garbage here until V8
      // collects it (issue 13: every chunk of a whole-image sync was copied).
      if (transferable(data, range) && !transfer.includes(data.buffer as ArrayBuffer)) transfer.push(data.buffer as ArrayBuffer);
      return { data };
    } catch (err) {
      return { error: { code: isStargzError(err) ? err.code : undefined, message: (err as Error).message } };
    }
  });
  parentPort!.postMessage({ id: job.id, outcomes } satisfies InflateReply, transfer);
});

/**
 * Whether `data`'s buffer may leave this thread: only one allocated for this chunk alone, not
 * the range the other chunks are inflated from, nor node's pool that small Buffers share
 * (Buffer.poolSize), and mostly the chunk (compact() copies a small result out of a big one).
 */
function transferable(data: Buffer, range: Buffer): boolean {
  const buffer = data.buffer;
  return buffer !== range.buffer && !(buffer instanceof SharedArrayBuffer) && buffer.byteLength > Buffer.poolSize && data.byteLength * 2 >= buffer.byteLength;
}
