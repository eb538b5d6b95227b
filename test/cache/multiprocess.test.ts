// Several stargz-get processes share one cache dir: real child processes writing and reading
// it at once (SQLite WAL, busy timeout, rename atomics) must neither fail nor see wrong bytes.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
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
