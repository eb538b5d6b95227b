// The one-pass TOC reader (scanTocEntries + streamLayerIndex) against the whole-TOC path
// (buildLayerIndex(parseToc(json))): the same index for every TOC it streams, and through
// buildLayerIndexFromJson the same verdict and message for every TOC at all.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  buildLayerIndex,
  buildLayerIndexFromJson,
  extractTocJson,
  MAX_FOOTER_SIZE,
  parseFooter,
  parseToc,
  scanTocEntries,
  streamLayerIndex,
  TocScanFallback,
  type Footer,
  type LazyLayerIndex as LayerIndex,
  type TocEntry,
} from '../../src/estargz/index.js';
import { ErrorCodes } from '../../src/errors.js';
import { fixtureLayers } from './fixture-layers.js';
import { fakeFooter } from './synth.js';

/** Everything a reader sees of an index, as plain data. */
function dump(idx: LayerIndex): unknown {
  const entries = [...idx.entries.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([path, e]) => ({
      path,
      type: e.type,
      mode: e.mode,
      uid: e.uid,
      gid: e.gid,
      userName: e.userName,
      groupName: e.groupName,
      mtimeMs: e.mtimeMs,
      size: e.size,
      linkName: e.linkName,
      digest: e.digest,
      devMajor: e.devMajor,
      devMinor: e.devMinor,
      xattrs: Object.entries(e.xattrs ?? {}).map(([k, v]) => [k, v.toString('hex')]),
      chunks: e.chunks.map((c) => [c.offset, c.end, c.innerOffset, c.fileOffset, c.size, c.digest]),
    }));
  return {
    entries,
    noPrefetch: idx.noPrefetch,
    prefetchEnd: idx.prefetchEnd,
    compression: idx.compression,
    tocOffset: idx.tocOffset,
    byOffset: idx.chunksByOffset.map((c) => c.offset),
    children: [...idx.children.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
  };
}

/** 'ok' and the index, or the error's code and message. */
function verdict(fn: () => LayerIndex): unknown {
  try {
    return { ok: dump(fn()) };
  } catch (err) {
    const e = err as { code?: string; message: string };
    return { code: e.code, message: e.message };
  }
}

function same(json: Buffer, footer: Footer): void {
  assert.deepEqual(
    verdict(() => buildLayerIndexFromJson(json, footer)),
    verdict(() => buildLayerIndex(parseToc(json), footer)),
  );
}

const fixtures: Array<{ name: string; json: Buffer; footer: Footer }> = [];
for (const layout of ['edge', 'zstd', 'legacy', 'mixed', 'multi', 'syncv1', 'syncv2', 'dotdot']) {
  let layers: ReturnType<typeof fixtureLayers> = [];
  try {
    layers = fixtureLayers(layout);
  } catch {
    continue; // an index of manifests (multi-platform): its layers are elsewhere in the set
  }
  for (const [i, l] of layers.entries()) {
    try {
      const footer = parseFooter(l.blob.subarray(l.blob.length - MAX_FOOTER_SIZE), l.blob.length);
      const json = extractTocJson(l.blob.subarray(footer.tocOffset, footer.tocOffset + footer.tocLength), footer.compression);
      fixtures.push({ name: `${layout}[${i}]`, json, footer });
    } catch {
      // a plain tar layer: no TOC
    }
  }
}

describe('one-pass TOC reading', () => {
  test('every reference-made TOC streams to the same index as the whole-TOC path', () => {
    assert.ok(fixtures.length >= 8, `${fixtures.length} fixture TOCs`);
    for (const f of fixtures) {
      assert.deepEqual(dump(streamLayerIndex(f.json, f.footer)), dump(buildLayerIndex(parseToc(f.json), f.footer)), f.name);
    }
  });

  test('names with braces, brackets, quotes, backslashes and unicode escapes stream (no fallback)', () => {
    // Raw JSON text, so the escapes are the writer's, not JSON.stringify's.
    const names = [
      String.raw`a{b`,
      String.raw`c}d`,
      String.raw`e[f]`,
      String.raw`q\"uo}te`,
      String.raw`back\\slash`,
      String.raw`back\\\\}two`,
      String.raw`end\\`,
      String.raw`\u007d\u007b\u005d`,
      String.raw`caf\u00e9 \ud83d\ude00`,
      'raw ünï 😀 }{',
    ];
    const body = names.map((n, i) => `{"name":"${n}","type":"reg","size":3,"offset":${100 + i * 10},"xattrs":{"user.}":"aGk="}}`);
    const text = `{"version":1,"entries":[\n  ${body.join(',\n  ')}\n], "extra": {"s": "]}{[\\""}}`;
    const json = Buffer.from(text);
    const footer = fakeFooter(1000);
    const seen: string[] = [];
    scanTocEntries(json, (e: TocEntry) => seen.push(e.name));
    assert.deepEqual(
      seen,
      names.map((n) => JSON.parse(`"${n}"`) as string),
    );
    assert.deepEqual(seen.slice(3, 10), ['q"uo}te', 'back\\slash', 'back\\\\}two', 'end\\', '}{]', 'café 😀', 'raw ünï 😀 }{']);
    const idx = streamLayerIndex(json, footer);
    assert.ok(idx.entries.has('c}d') && idx.entries.has('end\\'));
    assert.deepEqual(dump(idx), dump(buildLayerIndex(parseToc(json), footer)));
  });

  test('shapes it does not stream are decided whole, exactly as before', () => {
    const e = '{"name":"f","type":"reg","size":3,"offset":100}';
    const footer = fakeFooter(1000);
    const docs = [
      `{"entries":[${e}],"version":1}`,
      `{"version":1,"entries":[${e}],"version":2}`,
      `{"version":1,"entries":[${e}],"entries":[]}`,
      `{"version":1,"entries":[],"entries":[${e}]}`,
      `{"version":1,"entries":null}`,
      `{"version":1,"entries":{"0":${e}}}`,
      `{"version":1,"entries":[${e},]}`,
      `{"version":1,"entries":[${e}]}x`,
      `{"version":1,"entries":[${e}]`,
      `{"version":1,"entries":[${e} ${e}]}`,
      `{"version":1,}`,
      `{"version":1}`,
      `{"version":"1","entries":[]}`,
      `{"ver\\u0073ion":1,"entr\\u0069es":[${e}]}`,
      `{}`,
      `[]`,
      ` \t\r\n{ "version" : 1 , "entries" : [ ${e} , ${e} ] } \n`,
      `\ufeff{"version":1,"entries":[]}`,
      `{"version":1,"entries":[${e}, "x"]}`,
      `{"version":1,"entries":[{"name":"g","type":"reg","size":1,"offset":5000}]}`,
      `{"version":1,"entries":[{"name":"g","type":"chunk","size":1,"offset":100}]}`,
      `{"version":1,"entries":[{"name":"g","type":"reg","size":99999999,"offset":100}]}`,
      `{"version":1,"entries":[{"name":"g","type":"reg","size":1,"offset":-1}]}`,
      `{"version":1,"entries":[{"name":"g\\ud800","type":"symlink","linkName":"\\ud800"}]}`,
    ];
    for (const d of docs) same(Buffer.from(d), footer);
    // The shapes above that the pass refuses on its own:
    assert.throws(() => streamLayerIndex(Buffer.from(docs[0]!), footer), TocScanFallback);
    assert.throws(() => streamLayerIndex(Buffer.from(docs[1]!), footer), TocScanFallback);
    assert.throws(() => streamLayerIndex(Buffer.from(docs[8]!), footer), TocScanFallback);
  });

  test('an expansion that only the whole TOC reveals is refused by the pass too', () => {
    // The chunk's extent ends at the offset of an entry that comes after it.
    const footer = fakeFooter(1_000_000);
    const json = Buffer.from('{"version":1,"entries":[{"name":"big","type":"reg","size":50000000,"offset":100},{"name":"next","type":"reg","size":1,"offset":200}]}');
    assert.throws(() => streamLayerIndex(json, footer), (err: { code?: string }) => err.code === ErrorCodes.TOC_INVALID);
    same(json, footer);
  });

  test('damaged TOC JSON: the same verdict and message as the whole-TOC path', () => {
    let seed = 7;
    const rand = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const pieces = ['"..', '../', '-1', '1e309', 'null', '{', '}', ']', '[', ',', ':', '"chunk"', '"hardlink"', '0', '/', '\\', '\\"', '"', ' '];
    for (const f of fixtures.slice(0, 4)) {
      const text = f.json.toString('utf8');
      for (let i = 0; i < 150; i++) {
        let t = text;
        const edits = 1 + Math.floor(rand() * 3);
        for (let e = 0; e < edits; e++) {
          const at = Math.floor(rand() * t.length);
          t = t.slice(0, at) + pieces[Math.floor(rand() * pieces.length)] + t.slice(at + Math.floor(rand() * 6));
        }
        same(Buffer.from(t), f.footer);
      }
    }
  });
});
