import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryChunkCache } from '../../src/cache/memory-cache.js';
import { makeChunk } from './cache-fixtures.js';

test('rejects a missing, zero, negative or fractional bound', () => {
  for (const bad of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
    assert.throws(() => new MemoryChunkCache(bad), { code: 'ERR_USAGE' });
  }
});

test('holds at most maxBytes, dropping the least recently used', () => {
  const cache = new MemoryChunkCache(10 * 1024);
  const chunks = Array.from({ length: 30 }, (_, i) => makeChunk(`m${i}`, 1024));
  for (const c of chunks) cache.set(c.digest, c.data);
  assert.ok(cache.size <= 10 * 1024, `size ${cache.size}`);
  assert.equal(cache.size, 10 * 1024);
  assert.equal(cache.get(chunks[0]!.digest), undefined);
  assert.deepEqual(cache.get(chunks[29]!.digest), chunks[29]!.data);
});

test('a get makes an entry recently used', () => {
  const cache = new MemoryChunkCache(3 * 100);
  const [a, b, c, d] = ['a', 'b', 'c', 'd'].map((s) => makeChunk(s, 100));
  cache.set(a!.digest, a!.data);
  cache.set(b!.digest, b!.data);
  cache.set(c!.digest, c!.data);
  assert.ok(cache.get(a!.digest));
  cache.set(d!.digest, d!.data);
  assert.ok(cache.has(a!.digest));
  assert.ok(!cache.has(b!.digest));
});

test('an entry larger than the whole bound is not stored', () => {
  const cache = new MemoryChunkCache(1000);
  const big = makeChunk('big', 1001);
  cache.set(big.digest, big.data);
  assert.equal(cache.get(big.digest), undefined);
  assert.equal(cache.size, 0);
});

test('a small view of a large buffer is copied, so the bound counts what is retained', () => {
  const cache = new MemoryChunkCache(1 << 20);
  const backing = Buffer.alloc(4 << 20, 7);
  const view = backing.subarray(100, 100 + 64 * 1024);
  cache.set('sha256:' + 'a'.repeat(64), view);
  const held = cache.get('sha256:' + 'a'.repeat(64))!;
  assert.deepEqual(held, view);
  assert.ok(held.buffer.byteLength < 1 << 20, `retains ${held.buffer.byteLength} bytes`);
});

test('empty chunks are stored; clear empties the cache', () => {
  const cache = new MemoryChunkCache(100);
  const empty = makeChunk('e', 0);
  cache.set(empty.digest, empty.data);
  assert.equal(cache.get(empty.digest)?.length, 0);
  cache.clear();
  assert.equal(cache.size, 0);
  assert.equal(cache.get(empty.digest), undefined);
});
