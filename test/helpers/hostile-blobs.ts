// Tampered layer blobs that inflate cleanly and keep their size, so only a digest can tell:
// a gzip CRC error or a short blob would let a test pass with the digest check removed.
//
//   gzipPadded(data, length)            one gzip member of exactly `length` bytes (FCOMMENT padding)
//   tamperChunk(blob, ref, fill?)       the chunk's bytes overwritten, its member re-gzipped to the same length
//   sameSizeToc(original, rewritten)    a rewriteToc() result padded back to the original blob's size
//   tamperedPlainGzip(blob)             a plain tar+gzip layer with one file's bytes changed, same size
//
// Offsets come from src/estargz (buildLayerIndex): a wrong offset there makes these tests fail,
// it cannot make them pass.
import zlib from 'node:zlib';
import type { LazyChunkRef as ChunkRef } from '../../src/file-index/index.js';

const FCOMMENT = 0x10;
const FOOTER_SIZE = 51;

export function gzipPadded(data: Buffer, length: number): Buffer {
  const gz = zlib.gzipSync(data, { level: 9 });
  const pad = length - gz.length;
  if (pad < 1) throw new Error(`hostile-blobs: ${data.length} bytes gzip to ${gz.length}, more than the ${length} available`);
  const header = Buffer.from(gz.subarray(0, 10));
  header[3] = header[3]! | FCOMMENT;
  const comment = Buffer.alloc(pad, 0x20);
  comment[pad - 1] = 0; // NUL-terminated
  return Buffer.concat([header, comment, gz.subarray(10)]);
}

/** The blob with chunk `ref`'s bytes overwritten by `fill` (same length), in a member of the same size. */
export function tamperChunk(blob: Buffer, ref: ChunkRef, fill = 0x58): Buffer {
  const extent = blob.subarray(ref.offset, ref.end);
  const inflated = zlib.gunzipSync(extent);
  const before = Buffer.from(inflated.subarray(ref.innerOffset, ref.innerOffset + ref.size));
  inflated.fill(fill, ref.innerOffset, ref.innerOffset + ref.size);
  if (before.equals(inflated.subarray(ref.innerOffset, ref.innerOffset + ref.size))) throw new Error('hostile-blobs: the fill does not change the chunk');
  return Buffer.concat([blob.subarray(0, ref.offset), gzipPadded(inflated, extent.length), blob.subarray(ref.end)]);
}

/** `rewritten` (from craft-image's rewriteToc of `original`) with its TOC member padded so the blob keeps `original`'s size. */
export function sameSizeToc(original: Buffer, rewritten: Buffer): Buffer {
  const tocOffset = parseInt(original.toString('latin1', original.length - FOOTER_SIZE + 16, original.length - FOOTER_SIZE + 32), 16);
  const region = zlib.gunzipSync(rewritten.subarray(tocOffset, rewritten.length - FOOTER_SIZE));
  const room = original.length - FOOTER_SIZE - tocOffset;
  return Buffer.concat([rewritten.subarray(0, tocOffset), gzipPadded(region, room), rewritten.subarray(rewritten.length - FOOTER_SIZE)]);
}

/** A plain tar+gzip blob with the first regular file's bytes overwritten, re-gzipped to the same size. */
export function tamperedPlainGzip(blob: Buffer): Buffer {
  const tar = zlib.gunzipSync(blob);
  for (let pos = 0; pos + 512 <= tar.length; ) {
    const h = tar.subarray(pos, pos + 512);
    if (h.every((c) => c === 0)) break;
    const size = parseInt(h.toString('latin1', 124, 136).replace(/\0.*$/, '').trim() || '0', 8);
    const type = String.fromCharCode(h[156]!);
    if ((type === '0' || type === '\0') && size > 0) {
      tar.fill(0x58, pos + 512, pos + 512 + size);
      return gzipPadded(tar, blob.length);
    }
    pos += 512 + Math.ceil(size / 512) * 512;
  }
  throw new Error('hostile-blobs: no regular file with content in the tar');
}
