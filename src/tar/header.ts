// One 512-byte tar header block, decoded as Go's archive/tar decodes it (the reader umoci
// uses): checksum, format by magic (V7, ustar/PAX, GNU, star), octal or base-256 numbers,
// the ustar prefix field. Pure: bytes in, fields out.
import { ErrorCodes, StargzError } from '../errors.js';

export const BLOCK = 512;

export type HeaderFormat = 'v7' | 'ustar' | 'gnu' | 'star';

export interface RawHeader {
  format: HeaderFormat;
  /** the typeflag byte as a character ('\0' for old regular files) */
  typeflag: string;
  name: string;
  linkName: string;
  mode: number;
  uid: number;
  gid: number;
  /** bytes of data that follow in the archive (before any header-only rule) */
  size: number;
  mtimeSec: number;
  uname: string;
  gname: string;
  devMajor: number;
  devMinor: number;
}

export function corrupt(message: string): StargzError {
  return new StargzError(ErrorCodes.CORRUPT_DATA, `tar: ${message}`);
}

export function isZeroBlock(b: Buffer): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

/** A NUL-terminated field; names are UTF-8 in every tool we read. */
export function cString(b: Buffer): string {
  const nul = b.indexOf(0);
  return (nul < 0 ? b : b.subarray(0, nul)).toString('utf8');
}

/** Octal (space/NUL padded) or, with the high bit set, big-endian base-256 (GNU, star). */
export function parseNumeric(b: Buffer, what: string): number {
  if (b.length > 0 && (b[0]! & 0x80) !== 0) {
    const negative = (b[0]! & 0x40) !== 0;
    const inv = negative ? 0xff : 0;
    let x = 0n;
    for (let i = 0; i < b.length; i++) {
      let c = b[i]! ^ inv;
      if (i === 0) c &= 0x7f;
      x = (x << 8n) | BigInt(c);
    }
    const v = negative ? -(x + 1n) : x;
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) throw corrupt(`${what} does not fit a safe integer`);
    return Number(v);
  }
  return parseOctal(b, what);
}

function parseOctal(b: Buffer, what: string): number {
  let start = 0;
  let end = b.length;
  while (start < end && (b[start] === 0x20 || b[start] === 0)) start++;
  while (end > start && (b[end - 1] === 0x20 || b[end - 1] === 0)) end--;
  if (start === end) return 0;
  const s = cString(b.subarray(start, end));
  if (!/^[0-7]+$/.test(s)) throw corrupt(`${what} is not an octal number: ${JSON.stringify(s)}`);
  const v = parseInt(s, 8);
  if (!Number.isSafeInteger(v)) throw corrupt(`${what} does not fit a safe integer`);
  return v;
}

function detectFormat(b: Buffer): HeaderFormat | undefined {
  const want = parseOctalOrNaN(b.subarray(148, 156));
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const c = i >= 148 && i < 156 ? 0x20 : b[i]!;
    unsigned += c;
    signed += c > 127 ? c - 256 : c;
  }
  if (want !== unsigned && want !== signed) return undefined;
  const magic = b.toString('latin1', 257, 263);
  const version = b.toString('latin1', 263, 265);
  if (magic === 'ustar\0') return b.toString('latin1', 508, 512) === 'tar\0' ? 'star' : 'ustar';
  if (magic === 'ustar ' && version === ' \0') return 'gnu';
  return 'v7';
}

function parseOctalOrNaN(b: Buffer): number {
  try {
    return parseOctal(b, 'checksum');
  } catch {
    return NaN;
  }
}

/** Decodes a non-zero header block; a bad checksum or number is ERR_CORRUPT_DATA. */
export function parseHeader(b: Buffer): RawHeader {
  const format = detectFormat(b);
  if (!format) throw corrupt('header checksum mismatch (not a tar, or damaged)');
  const h: RawHeader = {
    format,
    typeflag: String.fromCharCode(b[156]!),
    name: cString(b.subarray(0, 100)),
    linkName: cString(b.subarray(157, 257)),
    size: parseNumeric(b.subarray(124, 136), 'size'),
    mode: parseNumeric(b.subarray(100, 108), 'mode'),
    uid: parseNumeric(b.subarray(108, 116), 'uid'),
    gid: parseNumeric(b.subarray(116, 124), 'gid'),
    mtimeSec: parseNumeric(b.subarray(136, 148), 'mtime'),
    uname: '',
    gname: '',
    devMajor: 0,
    devMinor: 0,
  };
  if (format === 'v7') return h;
  h.uname = cString(b.subarray(265, 297));
  h.gname = cString(b.subarray(297, 329));
  h.devMajor = parseNumeric(b.subarray(329, 337), 'devmajor');
  h.devMinor = parseNumeric(b.subarray(337, 345), 'devminor');
  // GNU puts atime/ctime/sparse data where ustar has the prefix: no prefix there.
  let prefix = '';
  if (format === 'ustar') prefix = cString(b.subarray(345, 500));
  else if (format === 'star') prefix = cString(b.subarray(345, 476));
  if (prefix !== '') h.name = prefix + '/' + h.name;
  return h;
}
