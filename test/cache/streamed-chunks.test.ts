// Chunks streamed into the disk cache (issue 8): recorded as verified once, served by position
// on the strength of that record and their size; a missing or resized file drops the record.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { DiskCache } from '../../src/cache/disk-cache.js';
import { SCHEMA_VERSION } from '../../src/cache/schema.js';
import { makeChunk, makeTempDir, removeDir } from './cache-fixtures.js';

const MiB = 1024 * 1024;

describe('DiskCache streamed chunks', () => {
  let dir: string;
  let cache: DiskCache;
  before(() => {
    dir = makeTempDir();
    cache = DiskCache.open({ dir, maxBytes: 100 * MiB });
  });
  after(() => {
    cache.close();
    removeDir(dir);
  });

  const stream = async (name: string, size: number): Promise<{ digest: string; data: Buffer; path: string }> => {
    const c = makeChunk(name, size);
    const tmp = cache.streamTempPath();
    writeFileSync(tmp, c.data);
    const path = await cache.commitStreamedChunk(c.digest, tmp, c.data.length);
    assert.ok(!existsSync(tmp), 'the temporary is renamed, not copied');
    return { ...c, path };
  };

  test('schema 3 records verified_once', () => {
    assert.equal(SCHEMA_VERSION, 3);
  });

  test('a committed chunk is found by position, and also readable whole (re-hashed)', async () => {
    const c = await stream('s1', 3 * MiB);
    const found = cache.streamedChunk(c.digest);
    assert.deepEqual(found, { path: c.path, size: c.data.length });
    assert.ok(readFileSync(found.path).equals(c.data));
    assert.ok(cache.hasChunk(c.digest));
    assert.ok((await cache.readChunk(c.digest))!.equals(c.data));
  });

  test('a chunk stored whole is not served by position until streamed (then its row learns it)', async () => {
    const c = makeChunk('s2', 2 * MiB);
    await cache.writeChunk(c.digest, c.data);
    assert.equal(cache.streamedChunk(c.digest), undefined);
    const tmp = cache.streamTempPath();
    writeFileSync(tmp, c.data);
    await cache.commitStreamedChunk(c.digest, tmp, c.data.length);
    assert.ok(cache.streamedChunk(c.digest));
  });

  test('a file of another size, or gone, drops the record: a miss, fetched again', async () => {
    const shrunk = await stream('s3', MiB);
    truncateSync(shrunk.path, MiB - 1);
    assert.equal(cache.streamedChunk(shrunk.digest), undefined);
    assert.equal(cache.hasChunk(shrunk.digest), false);
    assert.ok(!existsSync(shrunk.path));
    const gone = await stream('s4', MiB);
    unlinkSync(gone.path);
    assert.equal(cache.streamedChunk(gone.digest), undefined);
    assert.equal(cache.hasChunk(gone.digest), false);
  });

  test('streaming needs a writable cache that can hold the chunk', () => {
    assert.equal(cache.canStream(100 * MiB), true);
    assert.equal(cache.canStream(100 * MiB + 1), false);
  });
});
