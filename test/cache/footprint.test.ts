// The disk footprint of many small chunks: as files they would cost a 4 KiB block each (2000
// chunks of ~3 KiB -> 8 MiB for 6 MiB of data); inside the index they must cost little more
// than the data, also after eviction has punched holes in the index.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DiskCache, ACCESS_UPDATE_INTERVAL_MS } from '../../src/cache/disk-cache.js';
import { diskUsage } from '../../src/cache/chunk-files.js';
import { makeChunk, makeTempDir, removeDir, type TestChunk } from './cache-fixtures.js';

/** What an empty cache occupies (a few 64 KiB index pages, directories): the fixed overhead. */
function emptyCacheUsage(): number {
  const dir = makeTempDir();
  try {
    DiskCache.open({ dir, maxBytes: 1024 }).close();
    return diskUsage(dir);
  } finally {
    removeDir(dir);
  }
}
const FIXED_OVERHEAD = emptyCacheUsage();

test('an empty cache takes under 512 KiB', () => {
  assert.ok(FIXED_OVERHEAD < 512 * 1024, `${FIXED_OVERHEAD}`);
});

test('2000 chunks of ~3 KiB take at most 1.1x their size on disk (plus a fixed overhead)', async () => {
  const dir = makeTempDir();
  let now = 1_700_000_000_000;
  const clock = (): number => now;
  try {
    const cache = DiskCache.open({ dir, maxBytes: 1024 ** 3, now: clock });
    const chunks: TestChunk[] = [];
    for (let i = 0; i < 2000; i += 50) {
      const batch = Array.from({ length: 50 }, (_, j) => makeChunk(`fp${i + j}`, 2560 + (((i + j) * 7919) % 1024)));
      chunks.push(...batch);
      await Promise.all(batch.map((c) => cache.writeChunk(c.digest, c.data)));
      now += 1000;
    }
    const data = chunks.reduce((n, c) => n + c.data.length, 0);
    assert.equal(cache.info().chunkBytes, data);
    cache.close();
    const used = diskUsage(dir);
    assert.ok(used <= 1.1 * data + FIXED_OVERHEAD, `disk ${used} for ${data} bytes (${((used - FIXED_OVERHEAD) / data).toFixed(3)}x beyond an empty cache)`);

    // Read every other chunk, then prune to half: eviction takes the unread ones, leaving every
    // page of the index half empty until prune repacks it.
    now += 2 * ACCESS_UPDATE_INTERVAL_MS;
    const again = DiskCache.open({ dir, maxBytes: 1024 ** 3, now: clock });
    for (let i = 0; i < chunks.length; i += 2) assert.ok(await again.readChunk(chunks[i]!.digest));
    const kept = chunks.filter((_, i) => i % 2 === 0).reduce((n, c) => n + c.data.length, 0);
    const r = again.prune(kept);
    assert.equal(r.removedChunks, 1000);
    assert.equal(again.info().chunkBytes, kept);
    assert.ok(await again.readChunk(chunks[0]!.digest));
    assert.equal(await again.readChunk(chunks[1]!.digest), undefined);
    again.close();
    const usedAfter = diskUsage(dir);
    assert.ok(usedAfter <= 1.1 * kept + FIXED_OVERHEAD, `after prune: disk ${usedAfter} for ${kept} bytes (${((usedAfter - FIXED_OVERHEAD) / kept).toFixed(3)}x beyond an empty cache)`);
  } finally {
    removeDir(dir);
  }
});

test('under steady eviction with scattered survivors the index stays compact', async () => {
  const dir = makeTempDir();
  let now = 1_700_000_000_000;
  const maxBytes = 3 * 1024 * 1024;
  const cache = DiskCache.open({ dir, maxBytes, now: () => now });
  try {
    const written: TestChunk[][] = [];
    for (let b = 0; b < 80; b++) {
      const batch = Array.from({ length: 50 }, (_, j) => makeChunk(`churn${b}-${j}`, 2560 + (((b * 50 + j) * 7919) % 1024)));
      written.push(batch);
      await Promise.all(batch.map((c) => cache.writeChunk(c.digest, c.data)));
      now += 2 * ACCESS_UPDATE_INTERVAL_MS;
      // A hot set spread over every batch written so far: each page keeps a few survivors.
      for (let k = 0; k < b; k++) for (let j = k % 5; j < 50; j += 7 + (k % 5)) await cache.readChunk(written[k]![j]!.digest);
    }
    await cache.idle();
    const held = cache.info().chunkBytes;
    assert.ok(held <= maxBytes);
    cache.close();
    const used = diskUsage(dir);
    assert.ok(used <= 1.1 * held + FIXED_OVERHEAD, `disk ${used} for ${held} bytes (${((used - FIXED_OVERHEAD) / held).toFixed(3)}x beyond an empty cache)`);
  } finally {
    cache.close();
    removeDir(dir);
  }
});
