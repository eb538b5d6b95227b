// The cached form of a lazily read layer's index (issue 13): it decodes to exactly the index
// the TOC gave, and any record that is damaged, of another codec version, or forged with a
// valid checksum but a field out of bounds decodes to nothing (the caller then reads the TOC).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crc32 } from 'node:zlib';
import { dataRegionEnd, entryFields, type ChunkRef, type Footer, type IndexEntry, type LayerIndex } from '../../src/estargz/index.js';
import { decodeLayerIndex, encodeLayerIndex, INDEX_CODEC_VERSION } from '../../src/layer/index-codec.js';
import { fixtureLayers, openFixtureLayer } from '../estargz/fixture-layers.js';

const layers = ['edge', 'zstd', 'legacy'].flatMap((layout) => fixtureLayers(layout).map((l, i) => ({ name: `${layout}[${i}]`, ...openFixtureLayer(l) })));

/** Everything a reader sees of an index, as plain data. */
function snapshot(index: LayerIndex): unknown {
  const chunk = (c: ChunkRef): unknown => ({ fileOffset: c.fileOffset, size: c.size, digest: c.digest, offset: c.offset, end: c.end, innerOffset: c.innerOffset });
  const entries = [...index.entries.values()].map((e) => ({ ...entryFields(e), chunks: e.chunks.map(chunk) })).sort((a, b) => (a.path < b.path ? -1 : 1));
  return {
    entries,
    children: [...index.children].sort(),
    chunksByOffset: index.chunksByOffset.map(chunk),
    prefetchEnd: index.prefetchEnd,
    noPrefetch: index.noPrefetch,
    compression: index.compression,
    tocOffset: index.tocOffset,
  };
}

/** A copy of the index as plain objects, with `edit` applied to the entry at `path`: what a forged record would hold. */
function forged(index: LayerIndex, path: string, edit: (e: IndexEntry) => void): LayerIndex {
  const entries = new Map<string, IndexEntry>();
  for (const [p, e] of index.entries) {
    const chunks = e.chunks.map((c) => ({ fileOffset: c.fileOffset, size: c.size, digest: c.digest, offset: c.offset, end: c.end, innerOffset: c.innerOffset }));
    const copy: IndexEntry = { ...entryFields(e), chunks };
    if (p === path) edit(copy);
    entries.set(p, copy);
  }
  return { ...index, entries, children: index.children, chunksByOffset: index.chunksByOffset, noPrefetch: index.noPrefetch, compression: index.compression, tocOffset: index.tocOffset };
}

/** The record with its body checksum made valid again (a forgery, not damage). */
function withValidCrc(record: Buffer): Buffer {
  const out = Buffer.from(record);
  out.writeUInt32LE(out.length - 16, 8);
  out.writeUInt32LE(crc32(out.subarray(16)), 12);
  return out;
}

const edge = layers.find((l) => l.name === 'edge[0]')!;
const fileOf = (index: LayerIndex, pred: (e: IndexEntry) => boolean): string => [...index.entries.values()].find(pred)!.path;

test('every fixture layer (gzip, zstd:chunked, legacy) decodes to the index its TOC gave, footer included', () => {
  for (const l of layers) {
    const format = l.footer.compression === 'zstd' ? 'estargz-zstd' : l.footer.legacy ? 'estargz-legacy' : 'estargz';
    const back = decodeLayerIndex(encodeLayerIndex(l.index, format, l.footer));
    assert.ok(back, `${l.name}: not decoded`);
    assert.deepEqual(back.footer, l.footer, l.name);
    assert.equal(back.format, format, l.name);
    assert.deepEqual(snapshot(back.index), snapshot(l.index), l.name);
  }
});

test('a damaged or truncated record, or one of another codec version, decodes to nothing', () => {
  const record = encodeLayerIndex(edge.index, 'estargz', edge.footer);
  for (const at of [0, 5, 9, 13, 16, 40, Math.floor(record.length / 2), record.length - 1]) {
    const damaged = Buffer.from(record);
    damaged[at]! ^= 0x40;
    assert.equal(decodeLayerIndex(damaged), undefined, `byte ${at} flipped`);
  }
  for (const n of [0, 3, 16, 17, record.length - 1]) assert.equal(decodeLayerIndex(record.subarray(0, n)), undefined, `cut to ${n} bytes`);
  const other = Buffer.from(record);
  other.writeUInt32LE(INDEX_CODEC_VERSION - 1, 4);
  assert.equal(decodeLayerIndex(other), undefined, 'an older version');
  assert.equal(decodeLayerIndex(Buffer.from('{"v":3,"format":"tar+gzip","entries":[]}')), undefined, 'the JSON of version 3');
  assert.ok(decodeLayerIndex(record), 'the record itself still decodes');
});

test('a forged record with a valid checksum but a field out of bounds decodes to nothing', () => {
  const { index, footer } = edge;
  const reg = fileOf(index, (e) => e.type === 'reg' && e.chunks.length > 0);
  const multi = fileOf(index, (e) => e.type === 'reg' && e.chunks.length > 1);
  const dir = fileOf(index, (e) => e.type === 'dir' && e.path !== '');
  const link = fileOf(index, (e) => e.type === 'hardlink');
  const cases: Array<[string, LayerIndex]> = [
    ['a chunk extent past the data region', forged(index, reg, (e) => (e.chunks[0]!.end = dataRegionEnd(footer) + 1))],
    ['a chunk at blob offset 0', forged(index, reg, (e) => (e.chunks[0]!.offset = 0))],
    ['a chunk that expands beyond any ratio', forged(index, reg, (e) => (e.chunks[0]!.innerOffset = 2 ** 40))],
    ['chunks leaving a gap', forged(index, multi, (e) => (e.chunks[1]!.fileOffset += 1))],
    ['a size the chunks do not cover', forged(index, reg, (e) => (e.size += 1))],
    ['a path with ..', forged(index, reg, (e) => (e.path = '../escape'))],
    ['a path with an empty part', forged(index, reg, (e) => (e.path = 'a//b'))],
    ['a path with NUL', forged(index, reg, (e) => (e.path = 'a\0b'))],
    ['a path twice', forged(index, reg, (e) => (e.path = dir))],
    ['a mode beyond 0o7777', forged(index, reg, (e) => (e.mode = 0o10000))],
    ['a negative uid', forged(index, reg, (e) => (e.uid = -1))],
    ['a fractional size', forged(index, reg, (e) => (e.size = 1.5))],
    ['a hardlink to nothing', forged(index, link, (e) => (e.linkName = 'no/such/file'))],
    ['device numbers on a directory', forged(index, dir, (e) => (e.devMajor = 1))],
  ];
  // The forgery itself, with no field changed, is a record the decoder takes: each case fails by its one edit.
  assert.ok(decodeLayerIndex(encodeLayerIndex(forged(index, reg, () => undefined), 'estargz', footer)), 'an unedited copy decodes');
  for (const [what, bad] of cases) assert.equal(decodeLayerIndex(encodeLayerIndex(bad, 'estargz', footer)), undefined, what);
  const badFooter: Footer = { ...footer, tocOffset: footer.tocOffset + 1 };
  assert.equal(decodeLayerIndex(encodeLayerIndex(index, 'estargz', badFooter)), undefined, 'a footer that does not match the index');
  const trailing = withValidCrc(Buffer.concat([encodeLayerIndex(index, 'estargz', footer), Buffer.from([0])]));
  assert.equal(decodeLayerIndex(trailing), undefined, 'bytes after the last entry');
  assert.ok(decodeLayerIndex(withValidCrc(encodeLayerIndex(index, 'estargz', footer))), 'the same record, unforged, decodes');
});
