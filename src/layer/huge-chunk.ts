// Chunks too large to hold in memory (config.ts STREAMED_CHUNK_SHARE): streamed from one host
// through the inflater into a temporary file of the disk cache, hashed as they go, and read
// back by position. Memory is the stream's pieces, whatever size the TOC declares.
import { createHash } from 'node:crypto';
import { mkdir, open, unlink, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { STREAM_PIECE_BYTES } from '../config.js';
import { ErrorCodes, StargzError } from '../errors.js';
import { inflateChunkStream, type Compression } from '../estargz/index.js';
import type { LazyChunkRef as ChunkRef } from '../file-index/index.js';
import type { BlobReader } from '../blob/blob-source.js';
import { errnoCode } from '../util/errno-code.js';
import type { ChunkSink, LayerContext, ReadOptions } from './layer.js';

/**
 * Fetches [ref.offset, ref.end) from `from` in pieces, inflates and hashes it into `tmpPath`.
 * On a digest mismatch (or any failure) the file is removed and the error thrown: nothing of a
 * failed try is left, so BlobSource.verified may pass over the host and try the next.
 */
export async function streamChunkToFile(
  from: BlobReader,
  ref: ChunkRef & { digest: string },
  compression: Compression,
  tmpPath: string,
  ctx: LayerContext,
  options: ReadOptions,
  what: string,
): Promise<void> {
  async function* pieces(): AsyncGenerator<Buffer> {
    for (let at = ref.offset; at < ref.end; at += STREAM_PIECE_BYTES) {
      const length = Math.min(STREAM_PIECE_BYTES, ref.end - at);
      yield await ctx.limiter.run(() => {
        if (options.signal?.aborted) throw new StargzError(ErrorCodes.ABORTED, 'fetch abandoned');
        return from.readRange(at, length, options.signal);
      }, options.priority);
    }
  }
  const algorithm = ref.digest.slice(0, ref.digest.indexOf(':'));
  const hash = createHash(algorithm);
  const fh = await openNew(tmpPath);
  let ok = false;
  try {
    let written = 0;
    for await (const out of inflateChunkStream(pieces(), compression, ref.innerOffset, ref.size)) {
      hash.update(out);
      await writeAll(fh, out, written);
      written += out.length;
    }
    const actual = `${algorithm}:${hash.digest('hex')}`;
    if (actual !== ref.digest) throw new StargzError(ErrorCodes.DIGEST_MISMATCH, `${what}: digest mismatch, expected ${ref.digest}, got ${actual}`);
    ok = true;
  } finally {
    await fh.close();
    if (!ok) await unlink(tmpPath).catch(() => undefined);
  }
}

/**
 * Delivers the part of a streamed chunk within `window` (file offsets; the whole chunk without
 * one) to `sink`, read from its file in pieces, in order, each awaited before the next is read.
 */
export async function deliverFromFile(path: string, ref: ChunkRef, sink: ChunkSink, options: ReadOptions): Promise<void> {
  const w = options.window;
  const from = w ? Math.max(0, w.offset - ref.fileOffset) : 0;
  const to = w ? Math.min(ref.size, w.offset + w.length - ref.fileOffset) : ref.size;
  if (to <= from) return;
  const fh = await open(path, 'r');
  try {
    for (let at = from; at < to; at += STREAM_PIECE_BYTES) {
      if (options.signal?.aborted) throw new StargzError(ErrorCodes.ABORTED, 'read abandoned');
      const buf = Buffer.allocUnsafe(Math.min(STREAM_PIECE_BYTES, to - at));
      let got = 0;
      while (got < buf.length) {
        const { bytesRead } = await fh.read(buf, got, buf.length - got, at + got);
        if (bytesRead === 0) throw new StargzError(ErrorCodes.CACHE, `cached chunk ${path} is shorter than its ${ref.size} bytes`);
        got += bytesRead;
      }
      await sink(ref, buf, at);
    }
  } finally {
    await fh.close();
  }
}

async function openNew(path: string): Promise<FileHandle> {
  try {
    return await open(path, 'wx');
  } catch (err) {
    if (errnoCode(err) !== 'ENOENT') throw err;
    await mkdir(dirname(path), { recursive: true }); // tmp/ removed by hand while we run
    return open(path, 'wx');
  }
}

async function writeAll(fh: FileHandle, data: Buffer, position: number): Promise<void> {
  for (let done = 0; done < data.length; ) {
    const { bytesWritten } = await fh.write(data, done, data.length - done, position + done);
    done += bytesWritten;
  }
}
