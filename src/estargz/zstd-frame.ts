// One zstd frame (RFC 8878) at the start of a buffer. fzstd decodes every frame it is given and
// trusts frame headers for its allocations, so we first walk the frame's block headers (cheap,
// no decoding) to find where it ends and to refuse absurd windows, then decode only that frame.
import { decompress, Decompress } from 'fzstd';
import { ErrorCodes, StargzError } from '../errors.js';

const FRAME_MAGIC = 0xfd2fb528;
const MAX_BLOCK_SIZE = 128 * 1024;
/** Largest window we agree to allocate for frames without a known content size (zstd's default decoder limit). */
export const MAX_ZSTD_WINDOW = 1 << 27;

export interface ZstdFrame {
  /** Bytes from the frame's start to its end (checksum included). */
  length: number;
  /** Frame_Content_Size when the header carries it. */
  contentSize: number | undefined;
  windowSize: number;
  /** Upper bound of the decoded size, from the block headers. */
  maxOutput: number;
}

function corrupt(message: string, cause?: unknown): StargzError {
  return new StargzError(ErrorCodes.CORRUPT_DATA, message, cause === undefined ? {} : { cause });
}

/** Reads the frame header and block headers of the first frame in `b`. */
export function readZstdFrame(b: Uint8Array): ZstdFrame {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const need = (n: number): void => {
    if (n > b.length) throw corrupt('zstd frame is truncated');
  };
  need(5);
  if (v.getUint32(0, true) !== FRAME_MAGIC) throw corrupt('not a zstd frame (bad magic)');
  const fhd = b[4]!;
  const fcsFlag = fhd >> 6;
  const singleSegment = (fhd >> 5) & 1;
  const hasChecksum = (fhd >> 2) & 1;
  const dictFlag = fhd & 3;
  if (fhd & 0x08) throw corrupt('zstd frame header has the reserved bit set');
  if (dictFlag !== 0) throw corrupt('zstd frame needs a dictionary');
  let pos = 5;
  let windowSize = 0;
  if (!singleSegment) {
    need(pos + 1);
    const wd = b[pos++]!;
    const base = 2 ** (10 + (wd >> 3));
    windowSize = base + (base / 8) * (wd & 7);
  }
  const fcsBytes = fcsFlag === 0 ? singleSegment : 1 << fcsFlag;
  need(pos + fcsBytes);
  let contentSize: number | undefined;
  if (fcsBytes === 1) contentSize = b[pos]!;
  else if (fcsBytes === 2) contentSize = v.getUint16(pos, true) + 256;
  else if (fcsBytes === 4) contentSize = v.getUint32(pos, true);
  else if (fcsBytes === 8) {
    const big = v.getBigUint64(pos, true);
    if (big > BigInt(Number.MAX_SAFE_INTEGER)) throw corrupt('zstd frame content size is absurd');
    contentSize = Number(big);
  }
  pos += fcsBytes;
  if (singleSegment) windowSize = contentSize!;
  const blockMax = Math.min(Math.max(windowSize, 1), MAX_BLOCK_SIZE);
  let maxOutput = 0;
  for (;;) {
    need(pos + 3);
    const h = b[pos]! | (b[pos + 1]! << 8) | (b[pos + 2]! << 16);
    pos += 3;
    const last = h & 1;
    const type = (h >> 1) & 3;
    const size = h >>> 3;
    if (type === 3) throw corrupt('zstd block has the reserved type');
    if (size > blockMax) throw corrupt('zstd block is larger than the frame allows');
    // raw: `size` literal bytes; RLE: one byte repeated `size` times; compressed: `size` input bytes
    pos += type === 1 ? 1 : size;
    maxOutput += type === 2 ? blockMax : size;
    if (last) break;
  }
  if (hasChecksum) pos += 4;
  need(pos);
  if (contentSize !== undefined && contentSize > maxOutput) throw corrupt('zstd frame content size exceeds what its blocks can hold');
  return { length: pos, contentSize, windowSize, maxOutput };
}

/** Thrown from the stream handler to stop decoding once we have enough. */
class Enough {}

/**
 * Decodes the first frame of `b` (described by `frame`), stopping once at least `want` bytes are
 * out (the result may be longer or, when the frame is shorter, shorter: callers check).
 * `fastLimit`: frames that declare a content size up to this are decoded in one go (fastest in fzstd).
 */
export function decodeZstdFrame(b: Uint8Array, frame: ZstdFrame, want: number, fastLimit: number): Uint8Array {
  const bytes = b.subarray(0, frame.length);
  try {
    if (frame.contentSize !== undefined && frame.contentSize <= fastLimit) return decompress(bytes);
    if (frame.windowSize > MAX_ZSTD_WINDOW) throw corrupt(`zstd window of ${frame.windowSize} bytes is too large`);
    const parts: Uint8Array[] = [];
    let got = 0;
    const d = new Decompress((chunk) => {
      parts.push(chunk);
      got += chunk.length;
      if (got >= want) throw new Enough();
    });
    try {
      d.push(bytes, true);
    } catch (err) {
      if (!(err instanceof Enough)) throw err;
    }
    if (parts.length === 1) return parts[0]!;
    const out = new Uint8Array(got);
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  } catch (err) {
    if (err instanceof StargzError) throw err;
    throw corrupt('zstd frame does not decode: ' + (err as Error).message, err);
  }
}
