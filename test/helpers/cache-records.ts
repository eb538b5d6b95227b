// Edits of the cache's binary records (src/util/binary-record.ts: a 16-byte header of magic,
// version, body length and the body's CRC-32) for tests that damage them on purpose.
import { crc32 } from 'node:zlib';

/** The record as another codec version would have written it: the checksum still valid. */
export function withVersion(record: Buffer, version: number): Buffer {
  const out = Buffer.from(record);
  out.writeUInt32LE(version, 4);
  out.writeUInt32LE(crc32(out.subarray(16)), 12);
  return out;
}

/** The record with its body's last byte cut off, its length and checksum made right again: its header still reads. */
export function withBodyTruncated(record: Buffer): Buffer {
  const out = Buffer.from(record.subarray(0, record.length - 1));
  out.writeUInt32LE(out.length - 16, 8);
  out.writeUInt32LE(crc32(out.subarray(16)), 12);
  return out;
}
