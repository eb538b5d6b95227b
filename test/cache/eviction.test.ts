import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, utimesSync, writeFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { SCHEMA_VERSION } from '../../src/cache/schema.js';
import { DiskCache, ACCESS_UPDATE_INTERVAL_MS } from '../../src/cache/disk-cache.js';
import { chunkFile, makeChunk, makeTempDir, removeDir, type TestChunk } from './cache-fixtures.js';

const KiB = 1024;

/** A cache with a clock the test moves, so "least recently used" is exact. */
function openWithClock(dir: string, maxBytes: number): { cache: DiskCache; advance: (ms: number) => void } {
  let now = 1_700_000_000_000;
  const cache = DiskCache.open({ dir, maxBytes, now: () => now });
  return { cache, advance: (ms) => (now += ms) };
}

async function present(cache: DiskCache, chunks: TestChunk[]): Promise<boolean[]> {
  return Promise.all(chunks.map(async (c) => (await cache.readChunk(c.digest)) !== undefined));
}

describe('eviction after a write', () => {
  test('goes down to 90% of maxBytes, least recently used first, keeping what was read', async () => {
    const dir = makeTempDir();
    const { cache, advance } = openWithClock(dir, 100 * KiB);
    try {
      // Alternate inline (10 KiB) and file (20 KiB) chunks, written in turn.
      const chunks = Array.from({ length: 6 }, (_, i) => makeChunk(`e${i}`, i % 2 === 0 ? 10 * KiB : 20 * KiB));
      for (const c of chunks.slice(0, 5)) {
        await cache.writeChunk(c.digest, c.data);
        advance(1000);
      }
      assert.equal(cache.info().chunkBytes, 70 * KiB);
      // Reading chunk 0 long after it was written makes it the most recently used.
      advance(2 * ACCESS_UPDATE_INTERVAL_MS);
      assert.ok(await cache.readChunk(chunks[0]!.digest));
      advance(1000);
      const extra = makeChunk('e-extra', 20 * KiB);
      await cache.writeChunk(extra.digest, extra.data); // 90 KiB: under the bound
      advance(1000);
      await cache.writeChunk(chunks[5]!.digest, chunks[5]!.data); // 110 KiB > 100: evict to <= 90
      await cache.idle(); // eviction runs in the background
      const info = cache.info();
      assert.ok(info.chunkBytes <= 90 * KiB, `stored ${info.chunkBytes}`);
      // The oldest access is chunk 1's (chunk 0 was read since): removing it (20 KiB) reaches 90.
      assert.equal(info.chunkBytes, 90 * KiB);
      assert.deepEqual(await present(cache, [...chunks, extra]), [true, false, true, true, true, true, true]);
      assert.equal(existsSync(chunkFile(dir, chunks[1]!.digest)), false, 'evicted file removed');
    } finally {
      cache.close();
      removeDir(dir);
    }
  });

  test('reads refresh last access only coarsely (no index write per hot read)', async () => {
    const dir = makeTempDir();
    const { cache, advance } = openWithClock(dir, 30 * KiB);
    try {
      const [a, b, c] = ['a', 'b', 'c'].map((s) => makeChunk(`coarse-${s}`, 10 * KiB)) as [TestChunk, TestChunk, TestChunk];
      await cache.writeChunk(a.digest, a.data);
      advance(1000);
      await cache.writeChunk(b.digest, b.data);
      advance(1000);
      // Read within the update interval: not recorded, so `a` is still the oldest.
      assert.ok(await cache.readChunk(a.digest));
      advance(1000);
      await cache.writeChunk(c.digest, c.data);
      const d = makeChunk('coarse-d', 10 * KiB);
      advance(1000);
      await cache.writeChunk(d.digest, d.data); // 40 KiB > 30: evict to 27 -> two go
      await cache.idle();
      assert.deepEqual(await present(cache, [a, b, c, d]), [false, false, true, true]);
    } finally {
      cache.close();
      removeDir(dir);
    }
  });

  test('close finishes an eviction under way, leaving the cache within its bound', async () => {
    const dir = makeTempDir();
    try {
      const cache = DiskCache.open({ dir, maxBytes: 200 * KiB });
      const chunks = Array.from({ length: 60 }, (_, i) => makeChunk(`close${i}`, i % 2 ? 5 * KiB : 20 * KiB));
      for (const c of chunks) await cache.writeChunk(c.digest, c.data);
      cache.close(); // no idle(): the background eviction may be mid-way
      const again = DiskCache.open({ dir, maxBytes: 200 * KiB });
      const info = again.info();
      again.close();
      assert.ok(info.chunkBytes <= 200 * KiB, `stored ${info.chunkBytes}`);
      assert.ok(info.chunks > 0);
    } finally {
      removeDir(dir);
    }
  });

  test('a chunk larger than the whole cache is not stored (it would evict everything)', async () => {
    const dir = makeTempDir();
    const cache = DiskCache.open({ dir, maxBytes: 50 * KiB });
    try {
      const small = makeChunk('keep-me', 10 * KiB);
      const huge = makeChunk('huge', 60 * KiB);
      await cache.writeChunk(small.digest, small.data);
      await cache.writeChunk(huge.digest, huge.data);
      assert.equal(cache.hasChunk(huge.digest), false);
      assert.ok(cache.hasChunk(small.digest));
    } finally {
      cache.close();
      removeDir(dir);
    }
  });
});

describe('prune, clear, info', () => {
  test('info counts chunks, bytes, TOCs and manifests', async () => {
    const dir = makeTempDir();
    const cache = DiskCache.open({ dir, maxBytes: 10 * 1024 * KiB });
    try {
      const empty = cache.info();
      assert.equal(empty.dir, dir);
      assert.equal(empty.chunks, 0);
      assert.equal(empty.chunkBytes, 0);
      assert.equal(empty.maxBytes, 10 * 1024 * KiB);
      assert.equal(empty.schemaVersion, SCHEMA_VERSION);
      assert.ok(empty.diskBytes > 0);
      const chunks = [3, 30, 300].map((k) => makeChunk(`info${k}`, k * KiB));
      for (const c of chunks) await cache.writeChunk(c.digest, c.data);
      cache.putToc('sha256:' + '1'.repeat(64), Buffer.from('{}'));
      cache.putManifest('sha256:' + '2'.repeat(64), Buffer.from('{}'));
      const info = cache.info();
      assert.equal(info.chunks, 3);
      assert.equal(info.chunkBytes, 333 * KiB);
      assert.equal(info.tocs, 1);
      assert.equal(info.manifests, 1);
      assert.ok(info.diskBytes >= 333 * KiB, `disk ${info.diskBytes}`);
    } finally {
      cache.close();
      removeDir(dir);
    }
  });

  test('prune(n) removes least recently used chunks down to n and reports them', async () => {
    const dir = makeTempDir();
    const { cache, advance } = openWithClock(dir, 10 * 1024 * KiB);
    try {
      const chunks = Array.from({ length: 10 }, (_, i) => makeChunk(`p${i}`, (i + 1) * 4 * KiB)); // 4..40 KiB, 220 in all
      for (const c of chunks) {
        await cache.writeChunk(c.digest, c.data);
        advance(1000);
      }
      cache.putToc('sha256:' + '1'.repeat(64), Buffer.from('{}'));
      const r = cache.prune(150 * KiB);
      // Oldest first: 4+8+12+16+20+24 = 84 KiB removed, leaving 136 <= 150.
      assert.deepEqual(r, { removedChunks: 6, removedBytes: 84 * KiB });
      assert.equal(cache.info().chunkBytes, 136 * KiB);
      assert.deepEqual(await present(cache, chunks), [false, false, false, false, false, false, true, true, true, true]);
      assert.deepEqual(cache.prune(1000 * KiB), { removedChunks: 0, removedBytes: 0 });
      assert.deepEqual(cache.prune(0), { removedChunks: 4, removedBytes: 136 * KiB });
      const info = cache.info();
      assert.equal(info.chunks, 0);
      assert.equal(info.chunkBytes, 0);
      assert.equal(info.tocs, 1, 'prune leaves TOCs');
      assert.throws(() => cache.prune(-1), { code: 'ERR_USAGE' });
    } finally {
      cache.close();
      removeDir(dir);
    }
  });

  test('prune sweeps orphaned chunk files and stale temporary files, sparing young ones', async () => {
    const dir = makeTempDir();
    const cache = DiskCache.open({ dir, maxBytes: 10 * 1024 * KiB });
    try {
      const kept = makeChunk('kept', 40 * KiB);
      await cache.writeChunk(kept.digest, kept.data);
      const orphan = chunkFile(dir, makeChunk('orphan', 1).digest);
      const young = chunkFile(dir, makeChunk('young', 1).digest);
      for (const p of [orphan, young]) {
        mkdirSync(join(p, '..'), { recursive: true });
        writeFileSync(p, 'x');
      }
      const staleTmp = join(dir, 'tmp', 'dead.1.tmp');
      writeFileSync(staleTmp, 'x');
      const old = new Date(Date.now() - 24 * 3600_000);
      utimesSync(orphan, old, old);
      utimesSync(staleTmp, old, old);
      cache.prune(10 * 1024 * KiB);
      assert.equal(existsSync(orphan), false);
      assert.equal(existsSync(staleTmp), false);
      assert.equal(existsSync(young), true, 'a young file may be a write about to be recorded');
      assert.deepEqual(await cache.readChunk(kept.digest), kept.data);
    } finally {
      cache.close();
      removeDir(dir);
    }
  });

  test('clear removes everything and gives the space back', async () => {
    const dir = makeTempDir();
    const cache = DiskCache.open({ dir, maxBytes: 100 * 1024 * KiB });
    try {
      const chunks = Array.from({ length: 300 }, (_, i) => makeChunk(`c${i}`, i % 3 === 0 ? 40 * KiB : 6 * KiB));
      await Promise.all(chunks.map((c) => cache.writeChunk(c.digest, c.data)));
      cache.putToc('sha256:' + '1'.repeat(64), Buffer.from('{}'));
      cache.putManifest('sha256:' + '2'.repeat(64), Buffer.from('{}'));
      cache.putLayerIndex('sha256:' + '1'.repeat(64), Buffer.from('{}'));
      cache.putTagResolution('r/x:1', 'sha256:' + '2'.repeat(64));
      const full = cache.info();
      cache.clear();
      const info = cache.info();
      assert.deepEqual([info.chunks, info.chunkBytes, info.tocs, info.manifests], [0, 0, 0, 0]);
      assert.equal(cache.getLayerIndex('sha256:' + '1'.repeat(64)), undefined);
      assert.equal(cache.getTagResolution('r/x:1'), undefined);
      assert.equal(await cache.readChunk(chunks[0]!.digest), undefined);
      cache.close();
      assert.ok(statSync(join(dir, 'index.sqlite')).size < full.diskBytes / 4, 'index file shrank');
      // Usable again afterwards.
      const again = DiskCache.open({ dir, maxBytes: 100 * 1024 * KiB });
      await again.writeChunk(chunks[0]!.digest, chunks[0]!.data);
      assert.deepEqual(await again.readChunk(chunks[0]!.digest), chunks[0]!.data);
      again.close();
    } finally {
      cache.close();
      removeDir(dir);
    }
  });
});
