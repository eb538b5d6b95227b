// Hand-made inputs for the hostile and edge-case tests: tar/gzip TOC regions, footers, TOC
// objects and raw zstd frames. Positive tests use the reference-made fixtures instead.
import zlib from 'node:zlib';
import type { Footer, Toc, TocEntry } from '../../src/estargz/index.js';

/** One ustar header block (checksum filled in). */
export function tarHeader(name: string, size: number, type = '0'): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, 'utf8');
  h.write('0000644\0', 100, 'latin1');
  h.write('0000000\0', 108, 'latin1');
  h.write('0000000\0', 116, 'latin1');
  h.write(size.toString(8).padStart(11, '0') + '\0', 124, 'latin1');
  h.write('00000000000\0', 136, 'latin1');
  h.write(type, 156, 'latin1');
  h.write('ustar\0', 257, 'latin1');
  h.write('00', 263, 'latin1');
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const c of h) sum += c;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  return h;
}

function pad(b: Buffer): Buffer {
  const rem = b.length % 512;
  return rem === 0 ? b : Buffer.concat([b, Buffer.alloc(512 - rem)]);
}

/** A tar holding one file, as the eStargz writer puts the TOC in its last gzip member. */
export function tarOne(name: string, content: Buffer | string): Buffer {
  const data = Buffer.from(content);
  return Buffer.concat([tarHeader(name, data.length), pad(data), Buffer.alloc(1024)]);
}

/** A PAX-extended tar: the 'x' record carries the real name. */
export function tarPax(paxName: string, headerName: string, content: Buffer | string): Buffer {
  const data = Buffer.from(content);
  let rec = ` path=${paxName}\n`;
  let len = rec.length + 2;
  len = rec.length + String(len).length;
  rec = `${len}${rec}`;
  const pax = Buffer.from(rec);
  return Buffer.concat([tarHeader('PaxHeaders/x', pax.length, 'x'), pad(pax), tarHeader(headerName, data.length), pad(data), Buffer.alloc(1024)]);
}

/** The gzip TOC region for `json`. */
export function gzipTocRegion(json: Buffer | string, name = 'stargz.index.json'): Buffer {
  return zlib.gzipSync(tarOne(name, json));
}

/** The 51-byte eStargz footer (an empty gzip member with the 'SG' extra subfield). */
export function estargzFooter(tocOffset: bigint | number, legacy = false): Buffer {
  const hex = Buffer.from(BigInt(tocOffset).toString(16).padStart(16, '0') + 'STARGZ', 'latin1');
  const extra = legacy ? hex : Buffer.concat([Buffer.from([0x53, 0x47, 22, 0]), hex]);
  const head = Buffer.from([0x1f, 0x8b, 8, 4, 0, 0, 0, 0, 0, 0xff, extra.length, 0]);
  return Buffer.concat([head, extra, Buffer.from([1, 0, 0, 0xff, 0xff]), Buffer.alloc(8)]);
}

/** The 40-byte zstd:chunked footer. */
export function zstdFooter(tocOffset: bigint, tocLength: bigint, rawLength: bigint, type = 1n): Buffer {
  const b = Buffer.alloc(40);
  b.writeBigUInt64LE(tocOffset, 0);
  b.writeBigUInt64LE(tocLength, 8);
  b.writeBigUInt64LE(rawLength, 16);
  b.writeBigUInt64LE(type, 24);
  b.write('GnUlInUx', 32, 'latin1');
  return b;
}

export function fakeFooter(tocOffset: number, compression: 'gzip' | 'zstd' = 'gzip'): Footer {
  return compression === 'gzip'
    ? { compression, legacy: false, footerSize: 51, tocOffset, tocLength: 100 }
    : { compression, legacy: false, footerSize: 40, tocOffset, tocLength: 100 };
}

/** A TOC entry with defaults for everything not given. */
export function entry(e: Partial<TocEntry> & Pick<TocEntry, 'name' | 'type'>): TocEntry {
  return {
    size: 0,
    linkName: '',
    mode: 0o644,
    uid: 0,
    gid: 0,
    devMajor: 0,
    devMinor: 0,
    xattrs: {},
    offset: 0,
    innerOffset: 0,
    chunkOffset: 0,
    chunkSize: 0,
    ...e,
  };
}

export function toc(...entries: TocEntry[]): Toc {
  return { version: 1, entries };
}

/** A zstd frame of raw blocks without a content size (what streaming encoders write). */
export function rawZstdFrame(data: Buffer, blockSize = 100_000): Buffer {
  const parts: Buffer[] = [Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, /* window 2^20 */ 10 << 3])];
  for (let at = 0; at < data.length || at === 0; at += blockSize) {
    const block = data.subarray(at, at + blockSize);
    const last = at + blockSize >= data.length ? 1 : 0;
    const h = (block.length << 3) | last; // type 0 = raw
    parts.push(Buffer.from([h & 0xff, (h >> 8) & 0xff, (h >> 16) & 0xff]), block);
    if (data.length === 0) break;
  }
  return Buffer.concat(parts);
}
