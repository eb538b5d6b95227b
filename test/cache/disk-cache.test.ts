import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, truncateSync, readFileSync, writeFileSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import Database from 'better-sqlite3';
import { DiskCache, INLINE_MAX_BYTES, defaultCacheDir } from '../../src/cache/disk-cache.js';
import { chunkFile, makeChunk, makeTempDir, removeDir } from './cache-fixtures.js';

const MiB = 1024 * 1024;

describe('DiskCache chunks', () => {
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

  test('round-trips small chunks inside the index and large ones as files', async () => {
    const sizes = [0, 1, 3000, INLINE_MAX_BYTES - 1, INLINE_MAX_BYTES, 200_000, 4 * MiB];
    const chunks = sizes.map((n) => makeChunk(`rt${n}`, n));
    for (const c of chunks) await cache.writeChunk(c.digest, c.data);
    for (const c of chunks) {
      assert.ok(cache.hasChunk(c.digest));
      assert.deepEqual(await cache.readChunk(c.digest), c.data);
      assert.equal(existsSync(chunkFile(dir, c.digest)), c.data.length >= INLINE_MAX_BYTES, `file for ${c.data.length}`);
    }
    // Another instance (as another process would) sees them too.
    const again = DiskCache.open({ dir, maxBytes: 100 * MiB });
    try {
      for (const c of chunks) assert.deepEqual(await again.readChunk(c.digest), c.data);
    } finally {
      again.close();
    }
  });

  test('an absent chunk is a miss', async () => {
    const c = makeChunk('absent', 10);
    assert.equal(await cache.readChunk(c.digest), undefined);
    assert.equal(cache.hasChunk(c.digest), false);
  });

  test('the same digest written twice (in turn or at once) is stored once', async () => {
    const before = cache.info();
    const small = makeChunk('dup-small', 5000);
    const large = makeChunk('dup-large', 50_000);
    await cache.writeChunk(small.digest, small.data);
    await cache.writeChunk(small.digest, small.data);
    await Promise.all([large, large, large].map((c) => cache.writeChunk(c.digest, c.data)));
    const other = DiskCache.open({ dir, maxBytes: 100 * MiB });
    await other.writeChunk(large.digest, large.data);
    other.close();
    const info = cache.info();
    assert.equal(info.chunks - before.chunks, 2);
    assert.equal(info.chunkBytes - before.chunkBytes, 55_000);
    assert.deepEqual(await cache.readChunk(large.digest), large.data);
  });

  test('a chunk being written is readable by its process before the write settles', async () => {
    const c = makeChunk('inflight', 30_000);
    const writing = cache.writeChunk(c.digest, c.data);
    assert.ok(cache.hasChunk(c.digest));
    assert.deepEqual(await cache.readChunk(c.digest), c.data);
    await writing;
  });

  test('malformed digests are refused before any path is built from them', async () => {
    for (const bad of ['sha256:../../etc/passwd', 'sha256:' + 'A'.repeat(64), 'sha512:' + 'a'.repeat(128), 'abc', '']) {
      await assert.rejects(cache.readChunk(bad), { code: 'ERR_CACHE' });
      await assert.rejects(cache.writeChunk(bad, Buffer.from('x')), { code: 'ERR_CACHE' });
      assert.throws(() => cache.hasChunk(bad), { code: 'ERR_CACHE' });
    }
  });
});

describe('DiskCache never serves a corrupt chunk', () => {
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

  async function assertDropped(digest: string): Promise<void> {
    assert.equal(await cache.readChunk(digest), undefined);
    assert.equal(cache.hasChunk(digest), false, 'entry removed');
    assert.equal(existsSync(chunkFile(dir, digest)), false, 'file removed');
  }

  test('a truncated chunk file', async () => {
    const c = makeChunk('trunc', 100_000);
    await cache.writeChunk(c.digest, c.data);
    truncateSync(chunkFile(dir, c.digest), 50_000);
    const chunksBefore = cache.info().chunks;
    await assertDropped(c.digest);
    assert.equal(cache.info().chunks, chunksBefore - 1);
  });

  test('a chunk file with one flipped byte', async () => {
    const c = makeChunk('flip', 100_000);
    await cache.writeChunk(c.digest, c.data);
    const bytes = readFileSync(chunkFile(dir, c.digest));
    bytes[12345] = bytes[12345]! ^ 0x01;
    writeFileSync(chunkFile(dir, c.digest), bytes);
    await assertDropped(c.digest);
  });

  test('a chunk file deleted behind the index', async () => {
    const c = makeChunk('gone', 100_000);
    await cache.writeChunk(c.digest, c.data);
    unlinkSync(chunkFile(dir, c.digest));
    await assertDropped(c.digest);
  });

  test('a corrupt or truncated BLOB inside the index', async () => {
    const flipped = makeChunk('blob-flip', 3000);
    const cut = makeChunk('blob-cut', 3000);
    await cache.writeChunk(flipped.digest, flipped.data);
    await cache.writeChunk(cut.digest, cut.data);
    const bad = Buffer.from(flipped.data);
    bad[0] = bad[0]! ^ 0x80;
    const db = new Database(join(dir, 'index.sqlite'));
    const blobOf = 'SELECT blob_id FROM chunks WHERE digest = ?';
    const update = db.prepare('UPDATE chunk_blobs SET data = ? WHERE id = ?');
    update.run(bad, db.prepare(blobOf).pluck().get(Buffer.from(flipped.digest.slice(7), 'hex')));
    update.run(cut.data.subarray(0, 2999), db.prepare(blobOf).pluck().get(Buffer.from(cut.digest.slice(7), 'hex')));
    db.close();
    await assertDropped(flipped.digest);
    await assertDropped(cut.digest);
    // Rewritten after the drop, the chunk is served again.
    await cache.writeChunk(flipped.digest, flipped.data);
    assert.deepEqual(await cache.readChunk(flipped.digest), flipped.data);
  });
});

describe('DiskCache TOCs, manifests, tags, layer indexes', () => {
  let dir: string;
  let cache: DiskCache;
  let clock = 1_700_000_000_000;
  before(() => {
    dir = makeTempDir();
    cache = DiskCache.open({ dir, maxBytes: MiB, now: () => clock });
  });
  after(() => {
    cache.close();
    removeDir(dir);
  });

  test('round-trip and overwrite', () => {
    const layer = 'sha256:' + '1'.repeat(64);
    assert.equal(cache.getToc(layer), undefined);
    cache.putToc(layer, Buffer.from('{"version":1}'));
    cache.putToc(layer, Buffer.from('{"version":1,"entries":[]}'));
    assert.equal(cache.getToc(layer)?.toString(), '{"version":1,"entries":[]}');

    const bigToc = makeChunk('toc', 5 * MiB).data; // TOCs of large images run to megabytes
    cache.putToc('sha256:' + '2'.repeat(64), bigToc);
    assert.deepEqual(cache.getToc('sha256:' + '2'.repeat(64)), bigToc);

    const index = Buffer.from([0, 1, 2, 255]);
    cache.putLayerIndex(layer, index);
    assert.deepEqual(cache.getLayerIndex(layer), index);
    assert.equal(cache.getLayerIndex('sha256:' + '3'.repeat(64)), undefined);

    const info = cache.info();
    assert.equal(info.tocs, 2);
    assert.equal(info.chunks, 0, 'TOCs and indexes are not chunks');
  });

  test('manifests are verified against their sha256 digest', () => {
    const bytes = Buffer.from('{"schemaVersion":2}');
    const digest = 'sha256:' + createHash('sha256').update(bytes).digest('hex');
    cache.putManifest(digest, bytes);
    assert.deepEqual(cache.getManifest(digest), bytes);
    const wrong = 'sha256:' + 'f'.repeat(64);
    cache.putManifest(wrong, bytes);
    assert.equal(cache.getManifest(wrong), undefined);
    assert.equal(cache.info().manifests, 1, 'the mismatching one was dropped');
  });

  test('tag resolutions carry when they were made', () => {
    const key = 'registry.example/app:1.0 linux/amd64';
    assert.equal(cache.getTagResolution(key), undefined);
    cache.putTagResolution(key, 'sha256:' + 'a'.repeat(64));
    clock += 5000;
    assert.deepEqual(cache.getTagResolution(key), { digest: 'sha256:' + 'a'.repeat(64), resolvedAt: 1_700_000_000_000 });
    cache.putTagResolution(key, 'sha256:' + 'b'.repeat(64));
    assert.deepEqual(cache.getTagResolution(key), { digest: 'sha256:' + 'b'.repeat(64), resolvedAt: 1_700_000_005_000 });
  });
});

describe('DiskCache.open', () => {
  test('rejects unbounded or contradictory options, before creating anything', () => {
    const parent = makeTempDir();
    try {
      const dir = join(parent, 'cache');
      assert.throws(() => DiskCache.open({ dir, maxBytes: 0 }), { code: 'ERR_USAGE' });
      assert.throws(() => DiskCache.open({ dir, maxBytes: Number.POSITIVE_INFINITY }), { code: 'ERR_USAGE' });
      assert.throws(() => DiskCache.open({ dir: '', maxBytes: 1 }), { code: 'ERR_USAGE' });
      assert.equal(existsSync(dir), false);
    } finally {
      removeDir(parent);
    }
  });

  test('a directory that cannot be one is a CACHE error', () => {
    const parent = makeTempDir();
    try {
      writeFileSync(join(parent, 'file'), 'x');
      assert.throws(() => DiskCache.open({ dir: join(parent, 'file'), maxBytes: MiB }), { code: 'ERR_CACHE' });
      assert.throws(() => DiskCache.open({ dir: join(parent, 'file', 'below'), maxBytes: MiB }), { code: 'ERR_CACHE' });
    } finally {
      removeDir(parent);
    }
  });

  test('an index that is not SQLite is a CACHE error', () => {
    const dir = makeTempDir();
    try {
      writeFileSync(join(dir, 'index.sqlite'), Buffer.alloc(8192, 0x5a));
      assert.throws(() => DiskCache.open({ dir, maxBytes: MiB }), { code: 'ERR_CACHE' });
    } finally {
      removeDir(dir);
    }
  });

  test('is idempotent and keeps what was stored', async () => {
    const dir = makeTempDir();
    try {
      const a = DiskCache.open({ dir, maxBytes: MiB });
      const b = DiskCache.open({ dir, maxBytes: MiB });
      const c = makeChunk('keep', 100);
      await a.writeChunk(c.digest, c.data);
      a.close();
      a.close(); // close twice is fine
      assert.deepEqual(await b.readChunk(c.digest), c.data);
      b.close();
      await assert.rejects(b.readChunk(c.digest), { code: 'ERR_CACHE' });
    } finally {
      removeDir(dir);
    }
  });

  test('read-only: reads what is there, ignores puts, creates nothing', async () => {
    const dir = makeTempDir();
    try {
      assert.throws(() => DiskCache.open({ dir: join(dir, 'none'), maxBytes: MiB, readOnly: true }), { code: 'ERR_CACHE' });
      assert.equal(existsSync(join(dir, 'none')), false);
      const rw = DiskCache.open({ dir, maxBytes: MiB });
      const c = makeChunk('ro', 50_000);
      await rw.writeChunk(c.digest, c.data);
      rw.close();
      const ro = DiskCache.open({ dir, maxBytes: MiB, readOnly: true });
      try {
        assert.deepEqual(await ro.readChunk(c.digest), c.data);
        const d = makeChunk('ro2', 10);
        await ro.writeChunk(d.digest, d.data);
        ro.putToc('sha256:' + '1'.repeat(64), Buffer.from('{}'));
        assert.equal(ro.hasChunk(d.digest), false);
        assert.equal(ro.getToc('sha256:' + '1'.repeat(64)), undefined);
      } finally {
        ro.close();
      }
    } finally {
      removeDir(dir);
    }
  });
});

test('defaultCacheDir follows XDG_CACHE_HOME, ignoring a relative one', () => {
  assert.equal(defaultCacheDir({ XDG_CACHE_HOME: '/x/cache' }), '/x/cache/stargz-get');
  assert.match(defaultCacheDir({ XDG_CACHE_HOME: 'rel' }), /\/\.cache\/stargz-get$/);
  assert.match(defaultCacheDir({}), /\/\.cache\/stargz-get$/);
});

test('no temporary files are left behind by writes', async () => {
  const dir = makeTempDir();
  try {
    const cache = DiskCache.open({ dir, maxBytes: 100 * MiB });
    await Promise.all(Array.from({ length: 20 }, (_, i) => makeChunk(`t${i}`, 30_000)).map((c) => cache.writeChunk(c.digest, c.data)));
    cache.close();
    assert.deepEqual(readdirSync(join(dir, 'tmp')), []);
  } finally {
    removeDir(dir);
  }
});
