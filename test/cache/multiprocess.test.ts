// Several stargz-get processes share one cache dir: real child processes writing and reading
// it at once (SQLite WAL, busy timeout, rename atomics) must neither fail nor see wrong bytes.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { DiskCache } from '../../src/cache/disk-cache.js';
import { projectRoot } from '../helpers/paths.js';
import { makeChunk, makeTempDir, removeDir, roundChunks } from './cache-fixtures.js';

const workerPath = join(dirname(fileURLToPath(import.meta.url)), 'cache-worker.js');
const MiB = 1024 * 1024;

interface WorkerResult {
  id: number;
  hits: number;
  misses: number;
  writes: number;
}

function runWorker(args: { dir: string; maxBytes: number; id: number; workers: number; rounds: number }): Promise<WorkerResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [workerPath, JSON.stringify(args)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(JSON.parse(out) as WorkerResult);
      else reject(new Error(`worker ${args.id} exited ${code ?? signal}: ${err}`));
    });
  });
}

/** The totals the triggers keep must match the rows (no lost or doubled update under contention). */
function assertTotalsConsistent(dir: string): void {
  const db = new Database(join(dir, 'index.sqlite'), { readonly: true });
  try {
    const rows = db.prepare('SELECT count(*) AS n, coalesce(sum(size), 0) AS bytes FROM chunks').get() as { n: number; bytes: number };
    const meta = Object.fromEntries((db.prepare('SELECT key, value FROM meta').all() as Array<{ key: string; value: number }>).map((r) => [r.key, r.value]));
    assert.equal(meta.chunk_count, rows.n);
    assert.equal(meta.chunk_bytes, rows.bytes);
    const orphanBlobs = db.prepare('SELECT count(*) FROM chunk_blobs WHERE id NOT IN (SELECT blob_id FROM chunks WHERE blob_id IS NOT NULL)').pluck().get();
    assert.equal(orphanBlobs, 0);
  } finally {
    db.close();
  }
}

describe('several processes on one cache dir', () => {
  test('write and read concurrently, creating the cache together; all chunks end up readable', async () => {
    const dir = join(makeTempDir(), 'fresh'); // not created yet: the workers race to create it
    const workers = 3;
    const rounds = 40;
    try {
      const results = await Promise.all(
        Array.from({ length: workers }, (_, id) => runWorker({ dir, maxBytes: 1024 * MiB, id, workers, rounds })),
      );
      assert.ok(results.reduce((n, r) => n + r.hits, 0) > 0, 'workers saw each other’s chunks');
      const cache = DiskCache.open({ dir, maxBytes: 1024 * MiB });
      try {
        const expected = new Map<string, Buffer>();
        for (let w = 0; w < workers; w++) for (let r = 0; r < rounds; r++) for (const c of roundChunks(w, r)) expected.set(c.digest, c.data);
        for (const [digest, data] of expected) assert.deepEqual(await cache.readChunk(digest), data, digest);
        const info = cache.info();
        assert.equal(info.chunks, expected.size, 'shared chunks stored once');
        assert.equal(info.chunkBytes, [...expected.values()].reduce((n, d) => n + d.length, 0));
      } finally {
        cache.close();
      }
      assertTotalsConsistent(dir);
    } finally {
      removeDir(join(dir, '..'));
    }
  });

  test('with a small bound, concurrent eviction gives misses, never errors or wrong bytes', async () => {
    const dir = makeTempDir();
    const workers = 3;
    try {
      const results = await Promise.all(
        Array.from({ length: workers }, (_, id) => runWorker({ dir, maxBytes: 400 * 1024, id, workers, rounds: 40 })),
      );
      assert.ok(results.reduce((n, r) => n + r.misses, 0) > 0, 'eviction happened');
      const cache = DiskCache.open({ dir, maxBytes: 400 * 1024 });
      try {
        assert.ok(cache.info().chunkBytes <= 400 * 1024, `stored ${cache.info().chunkBytes}`);
      } finally {
        cache.close();
      }
      assertTotalsConsistent(dir);
    } finally {
      removeDir(dir);
    }
  });

  // Issue 11: a sync killed by SIGKILL, then run again, must find what the first run cached and
  // never be served a torn chunk. Writers are killed at random points of their writes (file,
  // rename, index batch); afterwards every row names complete, verifying bytes.
  test('writers killed by SIGKILL mid-write leave only complete chunks: every indexed chunk verifies and is served', async () => {
    const dir = makeTempDir();
    const rows = (): number => {
      if (!existsSync(join(dir, 'index.sqlite'))) return 0;
      const db = new Database(join(dir, 'index.sqlite'), { readonly: true, timeout: 10_000 });
      try {
        return (db.prepare('SELECT count(*) FROM chunks').pluck().get() as number | undefined) ?? 0;
      } catch {
        return 0; // the schema is not created yet
      } finally {
        db.close();
      }
    };
    try {
      for (let round = 0; round < 6; round++) {
        const before = rows();
        const children = Array.from({ length: 2 }, (_, id) =>
          spawn(process.execPath, [workerPath, JSON.stringify({ dir, maxBytes: 1024 * MiB, id: round * 2 + id, workers: 2, rounds: 1_000_000, writeOnly: true })], { stdio: 'ignore' }),
        );
        const exited = children.map((c) => new Promise((r) => c.on('close', r)));
        const deadline = Date.now() + 60_000;
        while (rows() < before + 20) {
          assert.ok(Date.now() < deadline, 'the writers never wrote');
          await new Promise((r) => setTimeout(r, 20));
        }
        await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 100)));
        for (const c of children) c.kill('SIGKILL');
        await Promise.all(exited);
      }
      const db = new Database(join(dir, 'index.sqlite'), { readonly: true });
      const indexed = db
        .prepare('SELECT c.digest AS digest, c.size AS size, b.data AS data FROM chunks c LEFT JOIN chunk_blobs b ON b.id = c.blob_id')
        .all() as Array<{ digest: Buffer; size: number; data: Buffer | null }>;
      db.close();
      assert.ok(indexed.length >= 120, `${indexed.length} chunks indexed`);
      // Below the cache's own checks: the stored bytes themselves, inline or in their file.
      for (const row of indexed) {
        const hex = row.digest.toString('hex');
        const file = join(dir, 'chunks', hex.slice(0, 2), hex);
        assert.ok(row.data || existsSync(file), `chunk ${hex}: indexed, but its file is not there`);
        const bytes = row.data ?? readFileSync(file);
        assert.equal(bytes.length, row.size, `chunk ${hex}: size`);
        assert.equal(createHash('sha256').update(bytes).digest('hex'), hex, `chunk ${hex}: torn or wrong bytes under its name`);
      }
      assertTotalsConsistent(dir);
      const cache = DiskCache.open({ dir, maxBytes: 1024 * MiB });
      try {
        for (const row of indexed) assert.ok(await cache.readChunk('sha256:' + row.digest.toString('hex')), 'an indexed chunk is served');
        const c = makeChunk('after-the-kills', 30_000);
        await cache.writeChunk(c.digest, c.data);
        assert.deepEqual(await cache.readChunk(c.digest), c.data);
      } finally {
        cache.close();
      }
    } finally {
      removeDir(dir);
    }
  });

  test('a write waits for another process holding the index lock (SQLITE_BUSY), then succeeds', async () => {
    const dir = makeTempDir();
    const cache = DiskCache.open({ dir, maxBytes: 10 * MiB });
    // Another process takes the write lock and keeps it for 700 ms.
    const holder = spawn(
      process.execPath,
      [
        '-e',
        `const db = new (require('better-sqlite3'))(process.argv[1]);
         db.exec('BEGIN IMMEDIATE');
         console.log('locked');
         Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 700);
         db.exec('COMMIT');
         db.close();`,
        join(dir, 'index.sqlite'),
      ],
      { cwd: projectRoot, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    try {
      await new Promise<void>((resolve, reject) => {
        holder.stdout.on('data', (d: Buffer) => d.toString().includes('locked') && resolve());
        holder.on('exit', (code) => reject(new Error(`lock holder exited ${code}`)));
      });
      const c = makeChunk('busy', 2000);
      const started = Date.now();
      await cache.writeChunk(c.digest, c.data);
      assert.ok(Date.now() - started >= 300, 'the write waited for the lock');
      assert.deepEqual(await cache.readChunk(c.digest), c.data);
    } finally {
      cache.close();
      if (holder.exitCode === null) holder.kill('SIGKILL');
      removeDir(dir);
    }
  });
});
