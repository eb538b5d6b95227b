import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ChunkCache } from '../../src/cache/chunk-cache.js';
import { DiskCache } from '../../src/cache/disk-cache.js';
import { MemoryChunkCache } from '../../src/cache/memory-cache.js';
import type { StargzError } from '../../src/errors.js';
import { makeChunk, makeTempDir, removeDir } from './cache-fixtures.js';

const MiB = 1024 * 1024;

/** What the cache counted in its metrics, for layer 'L' (every lookup here is for it). */
async function lookups(cache: ChunkCache): Promise<{ memory: number; disk: number; misses: number; errors: number }> {
  const t = await cache.metrics.totals();
  const text = await cache.metrics.text();
  const errors = [...text.matchAll(/^stargz_get_errors_total\{kind="cache",code="ERR_CACHE"\} (\d+)$/gm)].reduce((n, m) => n + Number(m[1]), 0);
  return { memory: t.chunksFromMemory, disk: t.chunksFromDisk, misses: t.chunkCacheMisses, errors };
}

describe('ChunkCache', () => {
  test('memory, then disk (promoting into memory), then a miss', async () => {
    const dir = makeTempDir();
    const disk = DiskCache.open({ dir, maxBytes: 10 * MiB });
    try {
      const first = new ChunkCache(new MemoryChunkCache(MiB), disk);
      const c = makeChunk('tiers', 50_000);
      await first.put(c.digest, c.data);
      assert.deepEqual(await first.get(c.digest, 'L'), c.data);
      assert.deepEqual(await lookups(first), { memory: 1, disk: 0, misses: 0, errors: 0 });

      // A fresh memory tier (another run): the disk serves it once, memory afterwards.
      const memory = new MemoryChunkCache(MiB);
      const second = new ChunkCache(memory, disk);
      assert.ok(second.has(c.digest));
      assert.deepEqual(await second.get(c.digest, 'L'), c.data);
      assert.ok(memory.has(c.digest), 'promoted');
      assert.deepEqual(await second.get(c.digest, 'L'), c.data);
      assert.equal(await second.get(makeChunk('none', 1).digest, 'L'), undefined);
      assert.deepEqual(await lookups(second), { memory: 1, disk: 1, misses: 1, errors: 0 });
    } finally {
      disk.close();
      removeDir(dir);
    }
  });

  test('works without a disk tier', async () => {
    const cache = new ChunkCache(new MemoryChunkCache(MiB));
    const c = makeChunk('memonly', 100);
    assert.equal(cache.has(c.digest), false);
    await cache.put(c.digest, c.data);
    assert.ok(cache.has(c.digest));
    assert.deepEqual(await cache.get(c.digest, 'L'), c.data);
  });

  test('concurrent gets of one chunk read the disk once', async () => {
    const dir = makeTempDir();
    const disk = DiskCache.open({ dir, maxBytes: 10 * MiB });
    try {
      const c = makeChunk('once', 100_000);
      await disk.writeChunk(c.digest, c.data);
      let reads = 0;
      const readChunk = disk.readChunk.bind(disk);
      disk.readChunk = (d: string) => {
        reads++;
        return readChunk(d);
      };
      const cache = new ChunkCache(new MemoryChunkCache(MiB), disk);
      const got = await Promise.all(Array.from({ length: 8 }, () => cache.get(c.digest, 'L')));
      for (const g of got) assert.deepEqual(g, c.data);
      assert.equal(reads, 1);
    } finally {
      disk.close();
      removeDir(dir);
    }
  });

  test('disk failures become misses and skipped writes, reported, never thrown', async () => {
    const dir = makeTempDir();
    const disk = DiskCache.open({ dir, maxBytes: 10 * MiB });
    disk.close(); // every disk call now fails with ERR_CACHE
    try {
      const seen: StargzError[] = [];
      const cache = new ChunkCache(new MemoryChunkCache(MiB), disk, { onDiskError: (e) => seen.push(e) });
      const c = makeChunk('failing', 100);
      assert.equal(await cache.get(c.digest, 'L'), undefined);
      await cache.put(c.digest, c.data);
      assert.deepEqual(await cache.get(c.digest, 'L'), c.data, 'memory still works');
      assert.equal((await lookups(cache)).errors, 2);
      assert.deepEqual(
        seen.map((e) => e.code),
        ['ERR_CACHE', 'ERR_CACHE'],
      );
    } finally {
      removeDir(dir);
    }
  });

  test('a key that is not a chunk digest (a chunk the TOC gives no digest) stays in memory', async () => {
    const dir = makeTempDir();
    const disk = DiskCache.open({ dir, maxBytes: 10 * MiB });
    try {
      const cache = new ChunkCache(new MemoryChunkCache(MiB), disk);
      const key = 'sha256:' + 'a'.repeat(64) + '@1234+0';
      await cache.put(key, Buffer.from('positional'));
      assert.deepEqual(await cache.get(key, 'L'), Buffer.from('positional'));
      assert.ok(cache.has(key));
      assert.equal(disk.info().chunks, 0, 'nothing on disk');
      const fresh = new ChunkCache(new MemoryChunkCache(MiB), disk);
      assert.equal(await fresh.get(key, 'L'), undefined);
      assert.equal(fresh.has(key), false);
      assert.equal((await lookups(fresh)).errors, 0);
    } finally {
      disk.close();
      removeDir(dir);
    }
  });
});
