import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ErrorCodes } from '../../src/errors.js';
import { MAX_FOOTER_SIZE, parseFooter } from '../../src/estargz/index.js';
import { fixtureLayers } from './fixture-layers.js';
import { estargzFooter, zstdFooter as makeZstdFooter } from './synth.js';

const tail = (blob: Buffer, n = MAX_FOOTER_SIZE): Buffer => blob.subarray(Math.max(0, blob.length - n));

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return undefined;
}

describe('parseFooter on reference-made layers', () => {
  test('eStargz gzip (51 B) footers of the edge image', () => {
    for (const l of fixtureLayers('edge')) {
      const f = parseFooter(tail(l.blob), l.blob.length);
      assert.equal(f.compression, 'gzip');
      assert.equal(f.legacy, false);
      assert.equal(f.footerSize, 51);
      assert.equal(f.tocLength, l.blob.length - 51 - f.tocOffset);
      assert.ok(f.tocOffset > 0 && f.tocLength > 0);
      // the TOC region is a gzip member
      assert.equal(l.blob[f.tocOffset], 0x1f);
      assert.equal(l.blob[f.tocOffset + 1], 0x8b);
    }
  });

  test('legacy stargz (47 B) footers', () => {
    for (const l of fixtureLayers('legacy')) {
      const f = parseFooter(tail(l.blob), l.blob.length);
      assert.equal(f.compression, 'gzip');
      assert.equal(f.legacy, true);
      assert.equal(f.footerSize, 47);
      assert.equal(f.tocLength, l.blob.length - 47 - f.tocOffset);
      assert.equal(l.blob[f.tocOffset], 0x1f);
    }
  });

  test('zstd:chunked (40 B) footers', () => {
    for (const l of fixtureLayers('zstd')) {
      const f = parseFooter(tail(l.blob), l.blob.length);
      assert.equal(f.compression, 'zstd');
      assert.equal(f.legacy, false);
      assert.equal(f.footerSize, 40);
      // TOC frame, then an 8-byte skippable header and the footer
      assert.equal(f.tocOffset + f.tocLength, l.blob.length - 48);
      assert.equal(l.blob.readUInt32LE(f.tocOffset), 0xfd2fb528);
      assert.equal(l.blob.readUInt32LE(f.tocOffset - 8), 0x184d2a50);
      assert.ok(f.uncompressedTocLength! > 0);
    }
  });

  test('a plain tar+gzip layer is NOT_ESTARGZ; the eStargz layers of the mixed image parse', () => {
    const [plain, ...rest] = fixtureLayers('mixed');
    assert.equal(code(() => parseFooter(tail(plain!.blob), plain!.blob.length)), ErrorCodes.NOT_ESTARGZ);
    for (const l of rest) assert.equal(parseFooter(tail(l.blob), l.blob.length).compression, 'gzip');
  });

  test('a longer tail than needed is fine', () => {
    const [l] = fixtureLayers('zstd');
    const f1 = parseFooter(tail(l!.blob, 4096), l!.blob.length);
    const f2 = parseFooter(tail(l!.blob), l!.blob.length);
    assert.deepEqual(f1, f2);
  });
});

describe('parseFooter on hand-made input', () => {
  test('tiny, empty and short-tail blobs', () => {
    assert.equal(code(() => parseFooter(Buffer.alloc(0), 0)), ErrorCodes.NOT_ESTARGZ);
    assert.equal(code(() => parseFooter(Buffer.alloc(10), 10)), ErrorCodes.NOT_ESTARGZ);
    assert.equal(code(() => parseFooter(Buffer.alloc(20), 1000)), ErrorCodes.NOT_ESTARGZ);
    assert.equal(code(() => parseFooter(Buffer.alloc(51), -1)), ErrorCodes.NOT_ESTARGZ);
    assert.equal(code(() => parseFooter(Buffer.alloc(51, 0xff), 51)), ErrorCodes.NOT_ESTARGZ);
  });

  test('a synthetic 51 B footer parses; offsets outside the blob are TOC_INVALID', () => {
    const footer = estargzFooter(1000);
    const f = parseFooter(footer, 2000);
    assert.deepEqual(f, { compression: 'gzip', legacy: false, footerSize: 51, tocOffset: 1000, tocLength: 2000 - 51 - 1000 });
    assert.equal(code(() => parseFooter(footer, 1051)), ErrorCodes.TOC_INVALID); // TOC of length 0
    assert.equal(code(() => parseFooter(footer, 900)), ErrorCodes.TOC_INVALID);
    assert.equal(code(() => parseFooter(estargzFooter(0xffffffffffffffffn), 5000)), ErrorCodes.TOC_INVALID);
    assert.equal(code(() => parseFooter(estargzFooter(2n ** 53n), 5000)), ErrorCodes.TOC_INVALID);
  });

  test('a synthetic 47 B legacy footer parses', () => {
    const f = parseFooter(Buffer.concat([Buffer.alloc(4), estargzFooter(10, true)]), 200);
    assert.deepEqual(f, { compression: 'gzip', legacy: true, footerSize: 47, tocOffset: 10, tocLength: 200 - 47 - 10 });
  });

  test('a damaged magic or non-hex offset is not a footer', () => {
    const bad = estargzFooter(1000);
    bad.write('STARGY', 12 + 4 + 16, 'latin1');
    assert.equal(code(() => parseFooter(bad, 5000)), ErrorCodes.NOT_ESTARGZ);
    const nonHex = estargzFooter(1000);
    nonHex.write('g', 12 + 4, 'latin1');
    assert.equal(code(() => parseFooter(nonHex, 5000)), ErrorCodes.NOT_ESTARGZ);
  });

  test('zstd footers: offsets are range-checked, other manifest types refused', () => {
    const zstdFooter = (...args: Parameters<typeof makeZstdFooter>): Buffer => Buffer.concat([Buffer.alloc(11), makeZstdFooter(...args)]);
    const ok = parseFooter(zstdFooter(108n, 50n, 400n), 1000);
    assert.equal(ok.compression, 'zstd');
    assert.equal(ok.tocOffset, 108);
    assert.equal(ok.tocLength, 50);
    assert.equal(ok.uncompressedTocLength, 400);
    assert.equal(code(() => parseFooter(zstdFooter(950n, 50n, 400n), 1000)), ErrorCodes.TOC_INVALID);
    assert.equal(code(() => parseFooter(zstdFooter(4n, 50n, 400n), 1000)), ErrorCodes.TOC_INVALID);
    assert.equal(code(() => parseFooter(zstdFooter(108n, 0n, 400n), 1000)), ErrorCodes.TOC_INVALID);
    assert.equal(code(() => parseFooter(zstdFooter(2n ** 63n, 50n, 400n), 1000)), ErrorCodes.TOC_INVALID);
    assert.equal(code(() => parseFooter(zstdFooter(108n, 50n, 400n, 2n), 1000)), ErrorCodes.NOT_ESTARGZ);
  });
});
