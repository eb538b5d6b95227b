// One gzip member (RFC 1952) at the start of a buffer. eStargz puts every chunk (and the TOC)
// in its own member, and the bytes after it belong to other members, so we parse the header
// ourselves and inflate the raw deflate stream, which stops at the member's end by itself.
import zlib from 'node:zlib';
import { ErrorCodes, StargzError } from '../errors.js';
import { errnoCode } from '../util/errno-code.js';

const FHCRC = 0x02;
const FEXTRA = 0x04;
const FNAME = 0x08;
const FCOMMENT = 0x10;
const RESERVED = 0xe0;

function corrupt(message: string, cause?: unknown): StargzError {
  return new StargzError(ErrorCodes.CORRUPT_DATA, message, cause === undefined ? {} : { cause });
}

/** Length of the gzip header at the start of `b` (where the deflate stream begins). */
export function gzipHeaderLength(b: Buffer): number {
  if (b.length < 10) throw corrupt('gzip member is truncated (header)');
  if (b[0] !== 0x1f || b[1] !== 0x8b) throw corrupt('not a gzip member (bad magic)');
  if (b[2] !== 8) throw corrupt(`gzip member uses unknown compression method ${b[2]}`);
  const flg = b[3]!;
  if (flg & RESERVED) throw corrupt('gzip member has reserved flags set');
  let pos = 10;
  if (flg & FEXTRA) {
    if (pos + 2 > b.length) throw corrupt('gzip member is truncated (extra length)');
    pos += 2 + b.readUInt16LE(pos);
  }
  for (const flag of [FNAME, FCOMMENT]) {
    if (flg & flag) {
      const nul = b.indexOf(0, pos);
      if (nul < 0) throw corrupt('gzip member is truncated (name or comment)');
      pos = nul + 1;
    }
  }
  if (flg & FHCRC) pos += 2;
  if (pos > b.length) throw corrupt('gzip member is truncated (header)');
  return pos;
}

/**
 * Checks the member trailer (CRC-32 and length mod 2^32) when it is present in `b` right after
 * the deflate stream; a missing trailer (caller gave only part of the member) is not checked.
 */
export function checkGzipTrailer(b: Buffer, trailerStart: number, parts: readonly Buffer[], total: number): void {
  if (trailerStart + 8 > b.length) return;
  let crc = 0;
  for (const p of parts) crc = zlib.crc32(p, crc);
  const wantCrc = b.readUInt32LE(trailerStart);
  const wantSize = b.readUInt32LE(trailerStart + 4);
  if (crc !== wantCrc || total % 2 ** 32 !== wantSize) {
    throw corrupt('gzip member fails its CRC-32/length check');
  }
}

/**
 * Inflates the first member of `b` synchronously (used for the TOC, whose API is synchronous).
 * Output beyond `maxOutput` bytes -> TOC_INVALID (bounded, never allocates more).
 */
export function inflateGzipMemberSync(b: Buffer, maxOutput: number): Buffer {
  const start = gzipHeaderLength(b);
  let res: { buffer: Buffer; engine: zlib.InflateRaw };
  try {
    res = zlib.inflateRawSync(b.subarray(start), { maxOutputLength: maxOutput, info: true }) as unknown as {
      buffer: Buffer;
      engine: zlib.InflateRaw;
    };
  } catch (err) {
    if (errnoCode(err) === 'ERR_BUFFER_TOO_LARGE') {
      throw new StargzError(ErrorCodes.TOC_INVALID, `TOC inflates to more than ${maxOutput} bytes`);
    }
    throw corrupt('gzip member does not inflate: ' + (err as Error).message, err);
  }
  checkGzipTrailer(b, start + res.engine.bytesWritten, [res.buffer], res.buffer.length);
  return res.buffer;
}
