// The plain-layer index builder refuses chunk lists readers would misread: only a sparse
// file may leave ranges uncovered (read as zeros), and no file's chunks may overlap.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ErrorCodes } from '../../src/errors.js';
import type { ChunkRef, IndexEntry } from '../../src/estargz/index.js';
import { LayerIndexBuilder, decodeLayerIndex, encodeLayerIndex } from '../../src/layer/index-codec.js';

const chunk = (fileOffset: number, size: number): ChunkRef => ({ offset: 0, end: 0, innerOffset: 0, fileOffset, size, digest: 'sha256:' + '0'.repeat(64) });
const file = (chunks: ChunkRef[], size: number, sparse?: true): IndexEntry => ({
  path: 'f', type: 'reg', mode: 0o644, uid: 0, gid: 0, mtimeMs: 0, size, linkName: '', devMajor: 0, devMinor: 0, xattrs: {}, chunks, ...(sparse ? { sparse } : {}),
});
const codeOf = (e: IndexEntry): string | undefined => {
  try {
    new LayerIndexBuilder().add(e);
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return undefined;
};

test('a dense file must be tiled; a sparse one may have gaps but no overlap and nothing past its size', () => {
  assert.equal(codeOf(file([chunk(0, 5), chunk(5, 5)], 10)), undefined);
  assert.equal(codeOf(file([chunk(0, 5), chunk(6, 4)], 10)), ErrorCodes.CORRUPT_DATA);
  assert.equal(codeOf(file([chunk(0, 5)], 10)), ErrorCodes.CORRUPT_DATA);
  assert.equal(codeOf(file([chunk(0, 5), chunk(8, 2)], 100, true)), undefined);
  assert.equal(codeOf(file([], 100, true)), undefined);
  assert.equal(codeOf(file([chunk(0, 5), chunk(4, 2)], 100, true)), ErrorCodes.CORRUPT_DATA);
  assert.equal(codeOf(file([chunk(90, 20)], 100, true)), ErrorCodes.CORRUPT_DATA);
});

test('the sparse flag and binary xattrs survive the cache encoding', () => {
  const b = new LayerIndexBuilder();
  b.add({ ...file([chunk(8, 2)], 100, true), xattrs: { 'user.bin': Buffer.from([0, 0xff, 0x10]) } });
  const back = decodeLayerIndex(encodeLayerIndex(b.finish(), 'tar+gzip'))!.index;
  const e = back.entries.get('f')!;
  assert.equal(e.sparse, true);
  assert.deepEqual(e.xattrs['user.bin'], Buffer.from([0, 0xff, 0x10]));
});
