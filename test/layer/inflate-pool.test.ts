// The worker pool inflates and verifies exactly what the in-thread path does, for gzip and
// zstd layers made by the reference writer, and reports corruption with the same codes.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { createHash } from 'node:crypto';
import { InflatePool, type InflateItem } from '../../src/layer/inflate-pool.js';
import { isStargzError } from '../../src/errors.js';
import { fixtureLayers, openFixtureLayer, type FixtureLayer } from '../estargz/fixture-layers.js';

const pool = new InflatePool(2);
after(() => pool.close());

function itemsOf(layer: FixtureLayer) {
  const { footer, index } = openFixtureLayer(layer);
  const files = [...index.entries.values()].filter((e) => e.type === 'reg' && e.chunks.length > 0);
  return { footer, files };
}

for (const layout of ['edge', 'zstd']) {
  test(`${layout}: every chunk inflated by the pool matches its digest and rebuilds each file`, async () => {
    for (const layer of fixtureLayers(layout)) {
      const { footer, files } = itemsOf(layer);
      for (const file of files) {
        const start = file.chunks[0]!.offset;
        const end = file.chunks[file.chunks.length - 1]!.end;
        // One range covering the file, as a merged request would deliver it (a copy, so the
        // pool may transfer it).
        const range = Buffer.from(layer.blob.subarray(start, end));
        const items: InflateItem[] = file.chunks.map((c) => ({ start: c.offset - start, end: c.end - start, innerOffset: c.innerOffset, size: c.size, digest: c.digest, what: file.path }));
        const out = await pool.inflate(range, footer.compression, items);
        const whole = Buffer.concat(out);
        assert.equal(whole.length, file.size);
        if (file.digest) assert.equal('sha256:' + createHash('sha256').update(whole).digest('hex'), file.digest, file.path);
      }
    }
  });
}

test('a corrupted chunk is refused with an integrity code, from the worker', async () => {
  const layer = fixtureLayers('edge')[0]!;
  const { footer, files } = itemsOf(layer);
  const file = files.find((f) => f.path === 'bin/tool')!;
  const c = file.chunks[1]!;
  const range = Buffer.from(layer.blob.subarray(c.offset, c.end));
  range[Math.floor(range.length / 2)]! ^= 0x40;
  await assert.rejects(
    pool.inflate(range, footer.compression, [{ start: 0, end: range.length, innerOffset: 0, size: c.size, digest: c.digest, what: 'bin/tool' }]),
    (e) => isStargzError(e) && (e.code === 'ERR_DIGEST_MISMATCH' || e.code === 'ERR_CORRUPT_DATA'),
  );
});

test('a member much longer than its chunk falls back to the streaming inflater', async () => {
  const data = Buffer.alloc(2 * 1024 * 1024, 'abcdefgh');
  const gz = gzipSync(data);
  const want = data.subarray(100, 200);
  const digest = 'sha256:' + createHash('sha256').update(want).digest('hex');
  const [out] = await pool.inflate(Buffer.from(gz), 'gzip', [{ start: 0, end: gz.length, innerOffset: 100, size: 100, digest, what: 'packed' }]);
  assert.deepEqual(out, want);
});

test('a range that shares its memory (a pooled slice) is copied, not transferred', async () => {
  const data = Buffer.from('x'.repeat(5000));
  const gz = gzipSync(data);
  const backing = Buffer.alloc(gz.length + 10);
  gz.copy(backing, 5);
  const slice = backing.subarray(5, 5 + gz.length);
  const [out] = await pool.inflate(slice, 'gzip', [{ start: 0, end: gz.length, innerOffset: 0, size: data.length, what: 'slice' }]);
  assert.deepEqual(out, data);
  assert.equal(backing.length, gz.length + 10, 'the backing buffer is still usable');
  assert.deepEqual(backing.subarray(5, 5 + gz.length), gz);
});
