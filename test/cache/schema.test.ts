import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { DiskCache } from '../../src/cache/disk-cache.js';
import { SCHEMA_VERSION, PAGE_SIZE } from '../../src/cache/schema.js';
import { chunkFile, makeChunk, makeTempDir, removeDir } from './cache-fixtures.js';

const MiB = 1024 * 1024;

test('a new index states its version, uses WAL and large pages', () => {
  const dir = makeTempDir();
  try {
    DiskCache.open({ dir, maxBytes: MiB }).close();
    const db = new Database(join(dir, 'index.sqlite'), { readonly: true });
    assert.equal(db.pragma('user_version', { simple: true }), SCHEMA_VERSION);
    assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
    assert.equal(db.pragma('page_size', { simple: true }), PAGE_SIZE);
    db.close();
  } finally {
    removeDir(dir);
  }
});

test('an index from a newer stargz-get is refused, read-write and read-only', () => {
  const dir = makeTempDir();
  try {
    DiskCache.open({ dir, maxBytes: MiB }).close();
    const db = new Database(join(dir, 'index.sqlite'));
    db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    db.close();
    assert.throws(() => DiskCache.open({ dir, maxBytes: MiB }), { code: 'ERR_CACHE' });
    assert.throws(() => DiskCache.open({ dir, maxBytes: MiB, readOnly: true }), { code: 'ERR_CACHE' });
    // Refused, not damaged: the version is untouched.
    const check = new Database(join(dir, 'index.sqlite'), { readonly: true });
    assert.equal(check.pragma('user_version', { simple: true }), SCHEMA_VERSION + 1);
    check.close();
  } finally {
    removeDir(dir);
  }
});

test('an index of an older layout is rebuilt, chunk files included', async () => {
  const dir = makeTempDir();
  try {
    // An unversioned layout of an earlier development build: a differently shaped chunks table.
    const db = new Database(join(dir, 'index.sqlite'));
    db.exec("CREATE TABLE chunks (digest TEXT PRIMARY KEY, path TEXT); INSERT INTO chunks VALUES ('sha256:x', 'y');");
    db.close();
    const stale = makeChunk('stale', 20_000);
    mkdirSync(join(chunkFile(dir, stale.digest), '..'), { recursive: true });
    writeFileSync(chunkFile(dir, stale.digest), stale.data);

    const cache = DiskCache.open({ dir, maxBytes: MiB });
    try {
      assert.equal(existsSync(chunkFile(dir, stale.digest)), false, 'old chunk files dropped');
      assert.equal(cache.info().chunks, 0);
      const c = makeChunk('fresh', 20_000);
      await cache.writeChunk(c.digest, c.data);
      assert.deepEqual(await cache.readChunk(c.digest), c.data);
    } finally {
      cache.close();
    }
    const check = new Database(join(dir, 'index.sqlite'), { readonly: true });
    assert.equal(check.pragma('user_version', { simple: true }), SCHEMA_VERSION);
    check.close();
  } finally {
    removeDir(dir);
  }
});

test('an older index opened read-only is refused rather than rebuilt', () => {
  const dir = makeTempDir();
  try {
    const db = new Database(join(dir, 'index.sqlite'));
    db.exec('CREATE TABLE chunks (digest TEXT PRIMARY KEY)');
    db.close();
    assert.throws(() => DiskCache.open({ dir, maxBytes: MiB, readOnly: true }), { code: 'ERR_CACHE' });
  } finally {
    removeDir(dir);
  }
});
