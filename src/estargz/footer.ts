// Footer formats at the end of an eStargz blob. The footer is all we need to find the TOC:
//   eStargz gzip (51 B): an empty gzip member whose FEXTRA holds subfield 'SG' = "%016x" tocOffset + "STARGZ".
//   legacy stargz (47 B): same, but FEXTRA is the bare 22 bytes "%016x" + "STARGZ".
//   zstd:chunked (40 B): tocOffset, compressed TOC length, raw TOC length, manifest type
//     (uint64 LE each), then the magic "GnUlInUx". The writer wraps it in an 8-byte skippable-frame
//     header, and the TOC frame itself sits 8 bytes after the start of its own skippable frame.
import { ErrorCodes, StargzError } from '../errors.js';

export type Compression = 'gzip' | 'zstd';

export interface Footer {
  compression: Compression;
  legacy: boolean;
  /** Bytes of footer proper: 51 (gzip), 47 (legacy), 40 (zstd; the 8-byte skippable header before it not counted). */
  footerSize: number;
  tocOffset: number;
  /** compressed TOC length in bytes (gzip: blobSize - footerSize - tocOffset) */
  tocLength: number;
  /** zstd only: the uncompressed TOC JSON length the footer announces. */
  uncompressedTocLength?: number;
}

export const MAX_FOOTER_SIZE = 51;
export const GZIP_FOOTER_SIZE = 51;
export const LEGACY_FOOTER_SIZE = 47;
export const ZSTD_FOOTER_SIZE = 40;
/** zstd:chunked: a skippable-frame header (magic + length) precedes the TOC frame. */
export const ZSTD_SKIPPABLE_HEADER_SIZE = 8;

const ZSTD_MAGIC = Buffer.from('GnUlInUx', 'latin1');
const ZSTD_MANIFEST_TYPE_CRFS = 1n;
const HEX16 = /^[0-9a-fA-F]{16}$/;

/** Result of one format's attempt: undefined = not this format. */
type Attempt = Footer | undefined;

/**
 * `tail` = the LAST bytes of the blob (at least min(blobSize, 51)); tries eStargz gzip (51 B),
 * zstd:chunked (40 B), legacy stargz (47 B).
 */
export function parseFooter(tail: Buffer, blobSize: number): Footer {
  if (!Number.isSafeInteger(blobSize) || blobSize < 0) {
    throw new StargzError(ErrorCodes.NOT_ESTARGZ, `invalid blob size ${blobSize}`);
  }
  if (tail.length > blobSize) tail = tail.subarray(tail.length - blobSize);
  if (tail.length < Math.min(blobSize, MAX_FOOTER_SIZE)) {
    throw new StargzError(ErrorCodes.NOT_ESTARGZ, `need the last ${Math.min(blobSize, MAX_FOOTER_SIZE)} bytes of the blob, got ${tail.length}`);
  }
  const last = (n: number): Buffer | undefined => (tail.length >= n ? tail.subarray(tail.length - n) : undefined);
  const attempts: Array<() => Attempt> = [
    () => gzipFooter(last(GZIP_FOOTER_SIZE), blobSize, false),
    () => zstdFooter(last(ZSTD_FOOTER_SIZE), blobSize),
    () => gzipFooter(last(LEGACY_FOOTER_SIZE), blobSize, true),
  ];
  for (const attempt of attempts) {
    const footer = attempt();
    if (footer) return footer;
  }
  throw new StargzError(ErrorCodes.NOT_ESTARGZ, 'no eStargz, zstd:chunked or legacy stargz footer at the end of the blob');
}

function gzipFooter(b: Buffer | undefined, blobSize: number, legacy: boolean): Attempt {
  if (!b) return undefined;
  // Fixed gzip header: ID1 ID2 CM FLG MTIME(4) XFL OS, then XLEN (FEXTRA must be set).
  if (b[0] !== 0x1f || b[1] !== 0x8b || b[2] !== 8 || (b[3]! & 0x04) === 0 || (b[3]! & 0xe0) !== 0) return undefined;
  const xlen = b.readUInt16LE(10);
  if (12 + xlen > b.length) return undefined;
  const extra = b.subarray(12, 12 + xlen);
  let payload: Buffer;
  if (legacy) {
    if (extra.length !== 22) return undefined;
    payload = extra;
  } else {
    // One subfield: SI1='S' SI2='G', LEN=22, "%016x" + "STARGZ"
    if (extra.length !== 26 || extra[0] !== 0x53 || extra[1] !== 0x47 || extra.readUInt16LE(2) !== 22) return undefined;
    payload = extra.subarray(4);
  }
  if (payload.toString('latin1', 16) !== 'STARGZ') return undefined;
  const hex = payload.toString('latin1', 0, 16);
  if (!HEX16.test(hex)) return undefined;
  const footerSize = legacy ? LEGACY_FOOTER_SIZE : GZIP_FOOTER_SIZE;
  const tocOffset = toSafe(BigInt('0x' + hex), 'TOC offset');
  const tocLength = blobSize - footerSize - tocOffset;
  if (tocLength <= 0) {
    throw new StargzError(ErrorCodes.TOC_INVALID, `TOC offset ${tocOffset} is outside the blob (size ${blobSize})`);
  }
  return { compression: 'gzip', legacy, footerSize, tocOffset, tocLength };
}

function zstdFooter(b: Buffer | undefined, blobSize: number): Attempt {
  if (!b || !b.subarray(32, 40).equals(ZSTD_MAGIC)) return undefined;
  const manifestType = b.readBigUInt64LE(24);
  if (manifestType !== ZSTD_MANIFEST_TYPE_CRFS) {
    throw new StargzError(ErrorCodes.NOT_ESTARGZ, `zstd:chunked manifest type ${manifestType} is not an eStargz TOC`);
  }
  const tocOffset = toSafe(b.readBigUInt64LE(0), 'TOC offset');
  const tocLength = toSafe(b.readBigUInt64LE(8), 'TOC length');
  const uncompressedTocLength = toSafe(b.readBigUInt64LE(16), 'TOC size');
  if (tocOffset < ZSTD_SKIPPABLE_HEADER_SIZE || tocLength <= 0 || tocOffset + tocLength > blobSize - ZSTD_FOOTER_SIZE) {
    throw new StargzError(
      ErrorCodes.TOC_INVALID,
      `zstd TOC [${tocOffset}, +${tocLength}) is outside the blob (size ${blobSize})`,
    );
  }
  return { compression: 'zstd', legacy: false, footerSize: ZSTD_FOOTER_SIZE, tocOffset, tocLength, uncompressedTocLength };
}

function toSafe(v: bigint, what: string): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new StargzError(ErrorCodes.TOC_INVALID, `${what} ${v} in the footer is too large`);
  }
  return Number(v);
}

/** End of the file data in the blob: chunk extents never reach past it. */
export function dataRegionEnd(footer: Footer): number {
  return footer.compression === 'zstd' ? footer.tocOffset - ZSTD_SKIPPABLE_HEADER_SIZE : footer.tocOffset;
}
