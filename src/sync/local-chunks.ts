// Chunk-level reuse (issue 11): a file DEST has at a name whose whole content does not match
// the TOC (it grew, or changed in one chunk) can still hold many of the file's chunks at
// their offsets. Each such chunk is read from the local file, its sha256 checked against
// the TOC's chunk digest, and only then put into the chunk cache under that digest — the
// same content-addressed key the read path looks up before fetching — so the normal read
// path finds it there and fetches only the rest. Nothing of the read path changes: a chunk
// that fails its digest, or that the TOC gives no digest, is simply fetched.
// The local file is read before the sync writes anything (the pre-pass), so its old bytes
// are still there; it is then replaced like any other fetched file.
import * as fs from 'node:fs';
import type { IndexEntry } from '../estargz/index.js';
import { sha256Digest } from '../util/digest.js';

/** Where verified local chunks go: the image's chunk cache (structurally: sync does not depend on cache/). */
export interface LocalChunkSink {
  has(digest: string): boolean;
  put(digest: string, data: Buffer): Promise<void>;
}

const readAt = (fd: number, buf: Buffer, pos: number): Promise<number> =>
  new Promise((res, rej) => fs.read(fd, buf, 0, buf.length, pos, (e, n) => (e ? rej(e) : res(n))));

/**
 * Feeds every chunk of `entry` that the open local file (of `localSize` bytes) holds at its
 * offset, verified, into sink. Returns the chunks and bytes fed.
 */
export async function feedLocalChunks(fd: number, localSize: number, entry: IndexEntry, sink: LocalChunkSink): Promise<{ chunks: number; bytes: number }> {
  let chunks = 0;
  let bytes = 0;
  const seen = new Set<string>();
  for (const ref of entry.chunks) {
    const digest = ref.digest;
    if (digest === undefined || ref.size === 0 || ref.fileOffset + ref.size > localSize || seen.has(digest)) continue;
    seen.add(digest);
    if (sink.has(digest)) continue;
    const buf = Buffer.allocUnsafe(ref.size);
    let got = 0;
    while (got < ref.size) {
      const n = await readAt(fd, buf.subarray(got), ref.fileOffset + got);
      if (n === 0) break;
      got += n;
    }
    if (got !== ref.size || sha256Digest(buf) !== digest) continue;
    await sink.put(digest, buf);
    chunks++;
    bytes += ref.size;
  }
  return { chunks, bytes };
}
