// Randomly damaged TOC regions and TOC JSON, through the whole pure pipeline: every outcome is
// a result or a StargzError with an expected code, never another exception or a hang.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ErrorCodes, StargzError } from '../../src/errors.js';
import { buildLayerIndex, extractTocJson, MAX_FOOTER_SIZE, parseFooter, parseToc, type Footer } from '../../src/estargz/index.js';
import { fixtureLayers } from './fixture-layers.js';

/** Small deterministic PRNG (mulberry32), so failures reproduce. */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function outcome(fn: () => unknown): string {
  try {
    fn();
    return 'ok';
  } catch (err) {
    if (!(err instanceof StargzError)) throw err;
    return err.code;
  }
}

const ALLOWED = new Set<string>(['ok', ErrorCodes.CORRUPT_DATA, ErrorCodes.TOC_INVALID]);

for (const name of ['edge', 'zstd']) {
  describe(`fuzz ${name}`, () => {
    const l = fixtureLayers(name)[0]!;
    const footer: Footer = parseFooter(l.blob.subarray(l.blob.length - MAX_FOOTER_SIZE), l.blob.length);
    const region = l.blob.subarray(footer.tocOffset, footer.tocOffset + footer.tocLength);
    const json = extractTocJson(region, footer.compression);
    const pipeline = (r: Buffer): unknown => buildLayerIndex(parseToc(extractTocJson(r, footer.compression)), footer);

    test('damaged compressed TOC regions', () => {
      const rand = prng(1);
      for (let i = 0; i < 300; i++) {
        const bad = Buffer.from(region);
        const flips = 1 + Math.floor(rand() * 4);
        for (let f = 0; f < flips; f++) bad[Math.floor(rand() * bad.length)] = Math.floor(rand() * 256);
        const cut = rand() < 0.2 ? bad.subarray(0, Math.floor(rand() * bad.length)) : bad;
        const result = outcome(() => pipeline(cut));
        assert.ok(ALLOWED.has(result), `iteration ${i}: ${result}`);
      }
    });

    test('damaged TOC JSON', () => {
      const rand = prng(2);
      const text = json.toString('utf8');
      const pieces = ['"..', '../', '-1', '1e309', '9007199254740993', 'null', '{', ']', '"chunk"', '"hardlink"', '0', '/', '\\u0000', '"'];
      for (let i = 0; i < 500; i++) {
        let t = text;
        const edits = 1 + Math.floor(rand() * 3);
        for (let e = 0; e < edits; e++) {
          const at = Math.floor(rand() * t.length);
          const len = Math.floor(rand() * 8);
          t = t.slice(0, at) + pieces[Math.floor(rand() * pieces.length)] + t.slice(at + len);
        }
        const result = outcome(() => buildLayerIndex(parseToc(Buffer.from(t)), footer));
        assert.ok(result === 'ok' || result === ErrorCodes.TOC_INVALID, `iteration ${i}: ${result}`);
      }
    });
  });
}
