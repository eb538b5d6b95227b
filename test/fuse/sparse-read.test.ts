// Issue 8: a sparse file's chunks cover its data regions only (IndexEntry.sparse); every
// reader must answer zeros for the holes — never stale buffer bytes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MergedFs } from '../../src/vfs/merged-fs.js';
import { createFuseAdapter } from '../../src/fuse/adapter.js';
import { FakeLayer } from './fake-layer.js';

const K = 1024;

/** 'a'*4K, hole 8K, 'b'*4K, hole 4K: the middle and last chunks removed, marked sparse. */
function sparseLayer(): { layer: FakeLayer; expected: Buffer } {
  const content = Buffer.concat([Buffer.alloc(4 * K, 'a'), Buffer.alloc(8 * K, 'x'), Buffer.alloc(4 * K, 'b'), Buffer.alloc(4 * K, 'y')]);
  const layer = new FakeLayer([{ path: 'sparse.img', content, chunkSize: 4 * K }]);
  const e = layer.index.entries.get('sparse.img')!;
  e.chunks = [e.chunks[0]!, e.chunks[3]!];
  e.sparse = true;
  const expected = Buffer.concat([Buffer.alloc(4 * K, 'a'), Buffer.alloc(8 * K), Buffer.alloc(4 * K, 'b'), Buffer.alloc(4 * K)]);
  return { layer, expected };
}

test('MergedFs.read: the ranges no chunk covers are zeros, also a read that lies in a hole', async () => {
  const { layer, expected } = sparseLayer();
  const fs = new MergedFs([layer]);
  const node = fs.resolve('sparse.img');
  assert.deepEqual(await fs.read(node, 0, expected.length), expected);
  assert.deepEqual(await fs.read(node, 5 * K, 2 * K), Buffer.alloc(2 * K));
  assert.deepEqual(await fs.read(node, 3 * K, 10 * K), expected.subarray(3 * K, 13 * K));
  assert.equal(fs.stat(node).blocks, (8 * K) / 512, 'stat counts the data regions only');
});

test("FUSE read: holes are zeroed in the kernel's buffer, which is not zero to begin with", async () => {
  const { layer, expected } = sparseLayer();
  const fs = new MergedFs([layer]);
  const { ops } = createFuseAdapter(fs, { readDeadlineMs: 2000, log: () => undefined });
  for (const [pos, len] of [
    [0, expected.length],
    [4 * K, 8 * K],
    [15 * K, 5 * K],
  ] as const) {
    const buf = Buffer.alloc(len, 0xaa);
    const n = await new Promise<number>((r) => ops.read!('/sparse.img', 0, buf, len, pos, r));
    assert.equal(n, len);
    assert.deepEqual(buf, expected.subarray(pos, pos + len), `read ${pos}+${len}`);
  }
});
