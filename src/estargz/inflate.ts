// Inflating one chunk: the compressed extent [chunk.offset, chunk.end) starts with the member
// (gzip) or frame (zstd) holding the chunk; the chunk's bytes start `innerOffset` bytes into its
// output. The member usually goes on with tar padding and the next entries' headers, which we
// do not need: we stop early when that tail is large, and check the gzip CRC when it is small.
import { createHash } from 'node:crypto';
import { constants as bufferConstants } from 'node:buffer';
import zlib from 'node:zlib';
import { ErrorCodes, StargzError } from '../errors.js';
import { errnoCode } from '../util/errno-code.js';
import type { Compression } from './footer.js';
import { checkGzipTrailer, gzipHeaderLength } from './gzip-member.js';
import { decodeZstdFrame, MAX_ZSTD_WINDOW, readZstdFrame } from './zstd-frame.js';
import { Decompress } from 'fzstd';
import { Readable } from 'node:stream';

/** Decoded bytes past the chunk we accept to decode in order to verify the member's CRC. */
const TAIL_SLACK = 32 * 1024;
/** zstd frames that declare up to this much past the chunk are decoded whole (fzstd's fastest path). */
const ZSTD_WHOLE_FRAME_SLACK = 1024 * 1024;
/** Cap on one zlib output buffer (bigger chunks arrive in several pieces). */
const MAX_OUTPUT_PIECE = 64 * 1024 * 1024;

function corrupt(message: string, cause?: unknown): StargzError {
  return new StargzError(ErrorCodes.CORRUPT_DATA, message, cause === undefined ? {} : { cause });
}

/**
 * Inflate one chunk's compressed bytes (exactly [chunk.offset, chunk.end) of the blob) and return
 * its `size` uncompressed bytes starting at innerOffset. Async (zlib on the libuv threadpool;
 * zstd is decoded by pure-JS fzstd on the calling thread, ~150 MiB/s). Trailing data after the member (e.g. the next tar header's gzip member) is ignored.
 * Corrupt data -> CORRUPT_DATA.
 */
export async function inflateChunk(
  compressed: Buffer,
  compression: Compression,
  innerOffset: number,
  size: number,
): Promise<Buffer> {
  const need = checkedExtent(innerOffset, size, bufferConstants.MAX_LENGTH);
  if (size === 0) return Buffer.alloc(0);
  if (compression === 'gzip') return inflateGzip(compressed, innerOffset, need);
  return inflateZstd(compressed, innerOffset, need);
}

function inflateGzip(compressed: Buffer, innerOffset: number, need: number): Promise<Buffer> {
  const start = gzipHeaderLength(compressed);
  const body = compressed.subarray(start);
  const chunkSize = Math.min(need + TAIL_SLACK, MAX_OUTPUT_PIECE);
  return new Promise<Buffer>((resolve, reject) => {
    const z = zlib.createInflateRaw({ chunkSize });
    const parts: Buffer[] = [];
    let got = 0;
    let settled = false;
    const settle = (err: StargzError | undefined): void => {
      if (settled) return;
      settled = true;
      if (err) return reject(err);
      resolve(compact(parts.length === 1 ? parts[0]!.subarray(innerOffset, need) : Buffer.concat(parts, need).subarray(innerOffset)));
    };
    z.on('data', (d: Buffer) => {
      if (settled) return;
      parts.push(d);
      got += d.length;
      // A long tail (several files packed in one member): stop without decoding the rest.
      if (got >= need + TAIL_SLACK) {
        z.destroy();
        settle(undefined);
      }
    });
    z.on('end', () => {
      if (settled) return;
      try {
        checkGzipTrailer(body, z.bytesWritten, parts, got);
      } catch (err) {
        return settle(err as StargzError);
      }
      settle(got < need ? corrupt(`gzip member holds ${got} bytes, the chunk needs ${need}`) : undefined);
    });
    z.on('error', (err: Error) => settle(corrupt('gzip member does not inflate: ' + err.message, err)));
    z.end(body);
  });
}

/**
 * The synchronous twin of inflateChunk, for worker threads: the whole member is inflated
 * in one call (bounded: more than `size + innerOffset` plus a small tail is refused with
 * undefined, and the caller falls back to the streaming path, which stops early).
 */
export function inflateChunkSync(compressed: Buffer, compression: Compression, innerOffset: number, size: number): Buffer | undefined {
  const need = checkedExtent(innerOffset, size, bufferConstants.MAX_LENGTH);
  if (size === 0) return Buffer.alloc(0);
  if (compression === 'zstd') return inflateZstd(compressed, innerOffset, need);
  const start = gzipHeaderLength(compressed);
  const body = compressed.subarray(start);
  let res: { buffer: Buffer; engine: zlib.InflateRaw };
  try {
    // One output buffer of the chunk's size, not 16 KiB pieces joined at the end.
    const chunkSize = Math.max(zlib.constants.Z_MIN_CHUNK, Math.min(need + TAIL_SLACK, MAX_OUTPUT_PIECE));
    res = zlib.inflateRawSync(body, { maxOutputLength: need + TAIL_SLACK, chunkSize, info: true }) as unknown as { buffer: Buffer; engine: zlib.InflateRaw };
  } catch (err) {
    if (errnoCode(err) === 'ERR_BUFFER_TOO_LARGE') return undefined;
    throw corrupt('gzip member does not inflate: ' + (err as Error).message, err);
  }
  const out = res.buffer;
  if (out.length < need) throw corrupt(`gzip member holds ${out.length} bytes, the chunk needs ${need}`);
  checkGzipTrailer(body, res.engine.bytesWritten, [out], out.length);
  return innerOffset === 0 && out.length === need ? out : compact(out.subarray(innerOffset, need));
}

function inflateZstd(compressed: Buffer, innerOffset: number, need: number): Buffer {
  const frame = readZstdFrame(compressed);
  const out = decodeZstdFrame(compressed, frame, need, need + ZSTD_WHOLE_FRAME_SLACK);
  if (out.length < need) throw corrupt(`zstd frame holds ${out.length} bytes, the chunk needs ${need}`);
  return compact(Buffer.from(out.buffer, out.byteOffset + innerOffset, need - innerOffset));
}

/** innerOffset + size, the decoded bytes a chunk needs: TOC_INVALID unless both are whole, not negative, and within `max`. */
function checkedExtent(innerOffset: number, size: number, max: number): number {
  const need = innerOffset + size;
  if (!Number.isSafeInteger(innerOffset) || !Number.isSafeInteger(size) || innerOffset < 0 || size < 0 || !(need <= max)) {
    throw new StargzError(ErrorCodes.TOC_INVALID, `chunk extent innerOffset=${innerOffset} size=${size} is invalid`);
  }
  return need;
}

/** Small results cut from a much larger output buffer get their own copy, so callers that cache them do not pin the rest. */
function compact(b: Buffer): Buffer {
  return b.length * 2 < b.buffer.byteLength ? Buffer.from(b) : b;
}

/** 'sha256:<hex>' of `data`: util/digest.ts's, re-exported here for estargz's importers. */
export { sha256Digest } from '../util/digest.js';

const DIGEST_ALGORITHMS = new Set(['sha256', 'sha384', 'sha512']);

/** Throws DIGEST_MISMATCH (message names what, expected and actual) when the chunk's digest does not match. */
export function verifyChunk(data: Buffer, expected: string | undefined, what: string): void {
  if (expected === undefined) return;
  const colon = expected.indexOf(':');
  const algorithm = colon > 0 ? expected.slice(0, colon) : '';
  if (!DIGEST_ALGORITHMS.has(algorithm)) {
    throw new StargzError(ErrorCodes.DIGEST_MISMATCH, `${what}: cannot verify digest ${JSON.stringify(expected)} (unsupported algorithm)`);
  }
  const actual = algorithm + ':' + createHash(algorithm).update(data).digest('hex');
  if (actual !== expected) {
    throw new StargzError(ErrorCodes.DIGEST_MISMATCH, `${what}: digest mismatch, expected ${expected}, got ${actual}`);
  }
}

/** Compressed bytes handed to fzstd per push when streaming: bounds what one push decodes. */
const ZSTD_STREAM_PUSH = 64 * 1024;
/** Output piece of the streaming gzip inflater. */
const STREAM_OUTPUT_PIECE = 256 * 1024;

/**
 * The streaming twin of inflateChunk, for chunks too large to hold in memory: `compressed`
 * yields [chunk.offset, chunk.end) of the blob in pieces, the result yields the chunk's `size`
 * bytes (from innerOffset) in pieces, in order. Memory: the stream's buffers (zlib's, or the
 * zstd window, at most MAX_ZSTD_WINDOW), never the chunk. Corrupt data -> CORRUPT_DATA; a
 * failure of `compressed` is passed on as it is.
 */
export async function* inflateChunkStream(compressed: AsyncIterable<Buffer>, compression: Compression, innerOffset: number, size: number): AsyncGenerator<Buffer> {
  const need = checkedExtent(innerOffset, size, Number.MAX_SAFE_INTEGER);
  let pos = 0; // decoded bytes seen so far
  const window = (d: Uint8Array): Buffer | undefined => {
    const from = Math.max(innerOffset, pos);
    const to = Math.min(need, pos + d.length);
    const start = pos;
    pos += d.length;
    return to > from ? Buffer.from(d.buffer, d.byteOffset + (from - start), to - from) : undefined;
  };
  if (size === 0) return;
  let sourceError: { err: unknown } | undefined;
  async function* guarded(): AsyncGenerator<Buffer> {
    try {
      yield* compressed;
    } catch (err) {
      sourceError = { err };
      throw err;
    }
  }
  if (compression === 'gzip') {
    const src = Readable.from(guarded(), { objectMode: false, highWaterMark: 1 });
    const z = zlib.createGunzip({ chunkSize: STREAM_OUTPUT_PIECE });
    src.on('error', (err) => z.destroy(err));
    src.pipe(z);
    try {
      for await (const d of z as AsyncIterable<Buffer>) {
        const piece = window(d);
        if (piece) yield piece;
        if (pos >= need) return; // the rest of the member is tar padding or other entries
      }
    } catch (err) {
      if (sourceError) throw sourceError.err;
      throw err instanceof StargzError ? err : corrupt('gzip member does not inflate: ' + (err as Error).message, err);
    } finally {
      src.destroy();
      z.destroy();
    }
    throw corrupt(`gzip member holds ${pos} bytes, the chunk needs ${need}`);
  }
  let parts: Uint8Array[] = [];
  const d = new Decompress((chunk) => void parts.push(chunk));
  let first = true;
  try {
    for await (const piece of guarded()) {
      if (first) {
        const frame = readZstdFrame(piece);
        if (frame.windowSize > MAX_ZSTD_WINDOW) throw corrupt(`zstd window of ${frame.windowSize} bytes is too large`);
        first = false;
      }
      for (let at = 0; at < piece.length; at += ZSTD_STREAM_PUSH) {
        d.push(piece.subarray(at, at + ZSTD_STREAM_PUSH));
        const out = parts;
        parts = [];
        for (const o of out) {
          // fzstd may reuse its window for later output: copy what is kept past this step.
          const w = window(o);
          if (w) yield Buffer.from(w);
          if (pos >= need) return;
        }
      }
    }
  } catch (err) {
    if (sourceError) throw sourceError.err;
    throw err instanceof StargzError ? err : corrupt('zstd frame does not decode: ' + (err as Error).message, err);
  }
  throw corrupt(`zstd frame holds ${pos} bytes, the chunk needs ${need}`);
}
