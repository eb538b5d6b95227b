// The framing and the little-endian readers and writers of the cache's binary records (a
// layer's index, layer/index-codec.ts; an image's merged tree, vfs/merged-tree-codec.ts).
// A record is a 16-byte header — magic, version, body length, CRC-32 of the body — and the
// body. The bytes come back from disk as untrusted input: a record of another magic or version,
// or whose length or checksum does not match, opens as nothing; a read past the end throws.
import { crc32 } from 'node:zlib';
import { ErrorCodes, StargzError } from '../errors.js';

const HEADER_BYTES = 16;

/** Typed-array columns are copied as they are: a big-endian host neither writes nor reads records. */
export const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

export function corrupt(message: string): StargzError {
  return new StargzError(ErrorCodes.CORRUPT_DATA, message);
}

export function sealRecord(magic: number, version: number, body: Buffer): Buffer {
  const header = Buffer.alloc(HEADER_BYTES);
  header.writeUInt32LE(magic, 0);
  header.writeUInt32LE(version, 4);
  header.writeUInt32LE(body.length, 8);
  header.writeUInt32LE(crc32(body), 12);
  return Buffer.concat([header, body]);
}

/** The body of a record of this magic and version whose length and checksum match; else undefined. */
export function openRecord(data: Buffer, magic: number, version: number): Buffer | undefined {
  if (!LITTLE_ENDIAN || data.length < HEADER_BYTES || data.readUInt32LE(0) !== magic || data.readUInt32LE(4) !== version) return undefined;
  const body = data.subarray(HEADER_BYTES);
  if (data.readUInt32LE(8) !== body.length || data.readUInt32LE(12) !== crc32(body)) return undefined;
  return body;
}

/** A non-negative safe integer, or CORRUPT_DATA. */
export function checkInt(v: number): number {
  if (!Number.isSafeInteger(v) || v < 0) throw corrupt('a number out of range');
  return v;
}

export class Reader {
  private at = 0;
  constructor(private readonly buf: Buffer) {}
  private take(n: number): number {
    const at = this.at;
    if (n > this.buf.length - at) throw corrupt('truncated');
    this.at = at + n;
    return at;
  }
  atEnd(): boolean {
    return this.at === this.buf.length;
  }
  u8(): number {
    return this.buf[this.take(1)]!;
  }
  u32(): number {
    return this.buf.readUInt32LE(this.take(4));
  }
  f64(): number {
    return this.buf.readDoubleLE(this.take(8));
  }
  /** A non-negative safe integer. */
  int(): number {
    return checkInt(this.f64());
  }
  str(maxBytes: number): string {
    const n = this.u32();
    if (n > maxBytes) throw corrupt('a string too long');
    const at = this.take(n);
    return this.buf.toString('utf8', at, at + n);
  }
  latin1(bytes: number): string {
    const at = this.take(this.exactly(bytes));
    return this.buf.toString('latin1', at, at + bytes);
  }
  /** A view of the next bytes (copied by whoever keeps them). */
  bytes(maxBytes: number): Buffer {
    const n = this.u32();
    if (n > maxBytes) throw corrupt('a value too long');
    const at = this.take(n);
    return this.buf.subarray(at, at + n);
  }
  /** A column of `count` values (any count when undefined), copied into an aligned array. */
  f64s(count: number | undefined): Float64Array {
    const n = count === undefined ? this.u32() : this.exactly(count * 8);
    if (n % 8 !== 0) throw corrupt('a column of a wrong length');
    const out = new Float64Array(n / 8);
    new Uint8Array(out.buffer).set(this.buf.subarray(this.take(n), this.at));
    return out;
  }
  u32s(count: number): Uint32Array {
    const n = this.exactly(count * 4);
    const out = new Uint32Array(count);
    new Uint8Array(out.buffer).set(this.buf.subarray(this.take(n), this.at));
    return out;
  }
  /** The next u32, which must be `bytes`. */
  private exactly(bytes: number): number {
    if (this.u32() !== bytes) throw corrupt('a column of a wrong length');
    return bytes;
  }
}

export class Writer {
  private buf = Buffer.allocUnsafe(1 << 16);
  private at = 0;
  private room(n: number): number {
    if (this.at + n > this.buf.length) {
      const grown = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.at + n));
      this.buf.copy(grown, 0, 0, this.at);
      this.buf = grown;
    }
    const at = this.at;
    this.at += n;
    return at;
  }
  // room() may grow the buffer: take the offset before naming this.buf.
  u8(v: number): void {
    const at = this.room(1);
    this.buf[at] = v;
  }
  u32(v: number): void {
    const at = this.room(4);
    this.buf.writeUInt32LE(v, at);
  }
  f64(v: number): void {
    const at = this.room(8);
    this.buf.writeDoubleLE(v, at);
  }
  str(s: string): void {
    const n = Buffer.byteLength(s);
    this.u32(n);
    const at = this.room(n);
    this.buf.write(s, at, n, 'utf8');
  }
  bytes(b: Uint8Array): void {
    this.u32(b.length);
    const at = this.room(b.length);
    this.buf.set(b, at);
  }
  array(a: Float64Array | Uint32Array): void {
    this.bytes(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  }
  finish(): Buffer {
    return this.buf.subarray(0, this.at);
  }
}
