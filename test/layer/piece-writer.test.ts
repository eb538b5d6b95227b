// PieceWriter: a plain layer's file into cached pieces; a jump in offsets (a hole) ends the
// piece, so holes are never cached or written.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PieceWriter } from '../../src/layer/piece-writer.js';

test('pieces are at most the piece size, continue across writes, and restart at a hole', async () => {
  const put: Array<[string, Buffer]> = [];
  const w = new PieceWriter(async (d, b) => void put.push([d, Buffer.from(b)]), 10);
  await w.write(0, Buffer.from('0123456'));
  await w.write(7, Buffer.from('789abcd')); // crosses the 10-byte boundary
  await w.write(100, Buffer.from('XY')); // a hole from 14 to 100
  await w.write(102, Buffer.from('Z'));
  await w.flush();
  assert.deepEqual(
    w.chunks.map((c) => [c.fileOffset, c.size]),
    [
      [0, 10],
      [10, 4],
      [100, 3],
    ],
  );
  assert.deepEqual(put.map(([, b]) => b.toString()), ['0123456789', 'abcd', 'XYZ']);
  assert.ok(w.chunks.every((c, i) => c.digest === put[i]![0]));
});
