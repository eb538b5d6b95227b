// Hostile or damaged tars: each is a typed ERR_CORRUPT_DATA, never a crash, a hang or a
// buffer as large as a header claims.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ErrorCodes } from '../../src/errors.js';
import { fixtureTar, readTar } from './read-tar.js';
import { TarReader, type TarLimits } from '../../src/tar/reader.js';

/** One header block with the given fields (octal numbers, a valid checksum). */
function header(f: { name?: string; type?: string; size?: number | Buffer; magic?: 'ustar' | 'gnu'; extra?: (b: Buffer) => void }): Buffer {
  const b = Buffer.alloc(512);
  b.write(f.name ?? 'f', 0);
  b.write('0000644\0', 100);
  b.write('0000000\0', 108);
  b.write('0000000\0', 116);
  if (Buffer.isBuffer(f.size)) f.size.copy(b, 124);
  else b.write((f.size ?? 0).toString(8).padStart(11, '0') + '\0', 124);
  b.write('00000000000\0', 136);
  b.write(f.type ?? '0', 156);
  if (f.magic === 'gnu') b.write('ustar  \0', 257);
  else b.write('ustar\x0000', 257);
  f.extra?.(b);
  return withChecksum(b);
}

function withChecksum(b: Buffer): Buffer {
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (const c of b) sum += c;
  b.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
  return b;
}

const blocks = (n: number): Buffer => Buffer.alloc(512 * n);
/** "%d %s=%s\n" where %d counts the whole record, itself included. */
const paxRecord = (k: string, v: string): string => {
  const body = ` ${k}=${v}\n`;
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return `${len}${body}`;
};
function pax(records: string, type = 'x'): Buffer {
  const body = Buffer.from(records);
  return Buffer.concat([header({ name: 'PaxHeader', type, size: body.length }), body, Buffer.alloc((512 - (body.length % 512)) % 512)]);
}

function codeOf(tar: Buffer, limits?: Partial<TarLimits>): string | undefined {
  try {
    readTar(tar, 4096, limits);
  } catch (err) {
    if (process.env.TAR_TEST_VERBOSE) console.log((err as Error).message);
    return (err as { code?: string }).code;
  }
  return 'no error';
}

describe('TarReader: hostile input is ERR_CORRUPT_DATA', () => {
  const C = ErrorCodes.CORRUPT_DATA;
  test('truncated header, truncated data, bad checksum', () => {
    const good = fixtureTar('python-v7');
    assert.equal(codeOf(good.subarray(0, 300)), C);
    assert.equal(codeOf(Buffer.concat([header({ size: 1000 }), Buffer.alloc(100, 1)])), C);
    const bad = Buffer.from(good);
    bad[0] = bad[0]! ^ 1;
    assert.equal(codeOf(bad), C);
  });

  test('a zero block followed by a header is a damaged end, not a second archive', () => {
    assert.equal(codeOf(Buffer.concat([blocks(1), header({})])), C);
  });

  test('trailing bytes after the end of archive are ignored; without an end marker the archive ends at a block boundary', () => {
    const file = Buffer.concat([header({ size: 3 }), Buffer.from('abc'), Buffer.alloc(509)]);
    assert.equal(readTar(Buffer.concat([file, blocks(2), Buffer.alloc(100, 0x41)])).length, 1);
    assert.equal(readTar(file).length, 1);
    assert.equal(readTar(Buffer.concat([file, Buffer.alloc(100)])).length, 1);
  });

  test('absurd sizes: octal garbage, base-256 past 2^53, negative base-256', () => {
    assert.equal(codeOf(header({ size: Buffer.from('9999\0') })), C);
    assert.equal(codeOf(header({ size: Buffer.from([0x80, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]) })), C);
    assert.equal(codeOf(header({ size: Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe]) })), C);
    assert.equal(codeOf(Buffer.concat([pax(paxRecord('size', '99999999999999999999')), header({})])), C);
  });

  test('a PAX header or long name larger than the limit is refused before it is buffered', () => {
    assert.equal(codeOf(header({ type: 'x', size: 2 ** 40 })), C);
    assert.equal(codeOf(header({ type: 'L', size: 2 * 1024 * 1024 })), C);
    assert.equal(codeOf(Buffer.concat([pax(paxRecord('comment', 'x'.repeat(5000))), header({})]), { maxMetaSize: 4096 }), C);
  });

  test('malformed PAX records: length past the header, no newline, no keyword', () => {
    assert.equal(codeOf(Buffer.concat([pax('999 path=x\n'), header({})])), C);
    assert.equal(codeOf(Buffer.concat([pax('10 path=xy'), header({})])), C);
    assert.equal(codeOf(Buffer.concat([pax('7 =abc\n'), header({})])), C);
    assert.equal(codeOf(Buffer.concat([pax('x'.repeat(600)), header({})])), C);
  });

  test('sparse maps: a region past the real size, overlapping regions, more data than the map, too many entries', () => {
    const sparse = (map: string, n: number, size: number, data: number): Buffer =>
      Buffer.concat([
        pax(paxRecord('GNU.sparse.major', '0') + paxRecord('GNU.sparse.minor', '1') + paxRecord('GNU.sparse.size', String(size)) + paxRecord('GNU.sparse.numblocks', String(n)) + paxRecord('GNU.sparse.map', map)),
        header({ size: data }),
        Buffer.alloc(Math.ceil(data / 512) * 512),
        blocks(2),
      ]);
    assert.equal(readTar(sparse('0,10,100,5', 2, 200, 15))[0]!.entry.size, 200);
    assert.equal(codeOf(sparse('0,10,195,10', 2, 200, 20)), C);
    assert.equal(codeOf(sparse('0,10,5,10', 2, 200, 20)), C);
    assert.equal(codeOf(sparse('0,10,100,5', 2, 200, 512)), C);
    assert.equal(codeOf(sparse('0,10,100,5', 3, 200, 15)), C);
    assert.equal(codeOf(sparse('0,1,2,1,4,1', 3, 200, 3), { maxSparseEntries: 2 }), C);
  });

  test('old GNU sparse: a map longer than maxSparseEntries is refused, however valid', () => {
    // 4 regions in the header and 21 in one extension block: offsets 0, 2, 4… of 1 byte each.
    const entryAt = (b: Buffer, at: number, i: number): void => {
      b.write((2 * i).toString(8).padStart(11, '0') + '\0', at);
      b.write('00000000001\0', at + 12);
    };
    const s = header({
      type: 'S',
      magic: 'gnu',
      size: 25,
      extra: (b) => {
        for (let i = 0; i < 4; i++) entryAt(b, 386 + i * 24, i);
        b[482] = 1;
        b.write((100).toString(8).padStart(11, '0') + '\0', 483);
      },
    });
    const ext = Buffer.alloc(512);
    for (let i = 0; i < 21; i++) entryAt(ext, i * 24, i + 4);
    const tar = Buffer.concat([s, ext, Buffer.alloc(512, 0x61), blocks(2)]);
    assert.equal(readTar(tar)[0]!.entry.sparse!.length, 25);
    assert.equal(codeOf(tar, { maxSparseEntries: 10 }), C);
  });

  test('sparse 1.0: a map that never ends is refused after a few blocks, not after the whole entry', () => {
    const v1 = Buffer.concat([
      pax(paxRecord('GNU.sparse.major', '1') + paxRecord('GNU.sparse.minor', '0') + paxRecord('GNU.sparse.realsize', '10')),
      header({ size: 512 * 1000 }),
      Buffer.alloc(512 * 1000, 0x31), // "1111…": a number that never ends
    ]);
    const reader = new TarReader({ maxSparseEntries: 10 });
    let fed = 0;
    assert.throws(() => {
      for (; fed < v1.length; fed += 512) reader.write(v1.subarray(fed, fed + 512));
    }, (err: { code?: string }) => err.code === C);
    assert.ok(fed < 512 * 20, `refused after ${fed} bytes`);
  });

  test('more entries than the limit', () => {
    const one = header({});
    assert.equal(codeOf(Buffer.concat([one, one, one, blocks(2)]), { maxEntries: 2 }), C);
  });
});
