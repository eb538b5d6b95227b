// Chunks larger than the memory cache (issue 8), through the CLI against a real registry: they
// are streamed and verified once into the disk cache, then served by position. An image with a
// 200 MiB file of two chunks (128 + 72 MiB) and a 40 MiB one-chunk file, read with a 16 MiB
// budget and an 8 MiB memory cache (chunks above 2 MiB stream: config.ts STREAMED_CHUNK_SHARE).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { mkdir, open, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';
import { esgzRefPath, projectRoot } from '../helpers/paths.js';
import { runCli, runMeasured } from '../helpers/cli.js';
import { writeLayout, pushCraftedImage } from '../helpers/craft-image.js';
import { tarHeader } from '../helpers/big-tar.js';
import { tamperChunk } from '../helpers/hostile-blobs.js';
import { oracleUnpack, compareTrees, formatDiffs } from '../helpers/oracle.js';
import { openFixtureLayer, type FixtureLayer } from '../estargz/fixture-layers.js';
import { Mounts } from '../fuse/mount-helpers.js';

const MiB = 1024 * 1024;
const BIG = 200 * MiB;
const MID = 40 * MiB;
const CHUNK = 128 * MiB;
const MEMORY = ['--memory-budget', '16M', '--memory-cache', '8M'];

/** Distinct bytes at every 4 KiB (so a read at a wrong position shows), yet gzip compresses them well. */
function content(seed: number, size: number): Buffer {
  const block = Buffer.alloc(16 * 1024);
  for (let i = 0; i < block.length; i++) block[i] = (i * 31 + seed * 7) & 0xff;
  const b = Buffer.allocUnsafe(size);
  for (let at = 0; at < size; at += block.length) block.copy(b, at);
  for (let at = 0; at + 8 <= size; at += 4096) b.writeUInt32BE(at / 4096, at), b.writeUInt32BE(seed, at + 4);
  return b;
}


function execOut(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: projectRoot });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} exited ${code}: ${err}`))));
  });
}

/** Files under the cache's chunks/ and tmp/ (names only). */
function cacheFiles(cacheDir: string): string[] {
  const out: string[] = [];
  for (const top of ['chunks', 'tmp']) {
    const walk = (d: string): void => {
      if (!existsSync(d)) return;
      for (const e of readdirSync(d, { withFileTypes: true })) e.isDirectory() ? walk(join(d, e.name)) : out.push(`${top}/${e.name}`);
    };
    walk(join(cacheDir, top));
  }
  return out;
}

describe('chunks larger than the memory cache', { skip: esgzRefPath ? false : 'esgz-ref not built (scripts/tools/esgz-ref/build.sh)' }, () => {
  let reg: TestRegistry;
  let proxy: FaultProxy;
  let work: string;
  let blobSize = 0;
  let tamperedDigest = '';
  const mounts = new Mounts();
  const files = { big: content(1, BIG), mid: content(2, MID) };

  before(async () => {
    reg = await startRegistry({ mode: 'plain' });
    proxy = await startFaultProxy(reg);
    work = await makeTempDir('huge-chunks-');
    const tar = Buffer.concat([tarHeader('big', BIG), files.big, tarHeader('mid', MID), files.mid, Buffer.alloc(1024)]);
    await writeFile(join(work, 'layer.tar'), tar);
    const built = JSON.parse(await execOut(esgzRefPath!, ['build', '-in', join(work, 'layer.tar'), '-out', join(work, 'layer.esgz'), '-chunk', String(CHUNK)])) as Record<string, string>;
    const tocDigest = built.tocDigest ?? built.TOCDigest ?? Object.values(built).find((v) => typeof v === 'string' && v.startsWith('sha256:') && v !== built.digest)!;
    const blob = await readFile(join(work, 'layer.esgz'));
    blobSize = blob.length;
    await pushCraftedImage(reg, await writeLayout(join(work, 'good'), { layers: [{ blob, tocDigest }] }), 'huge/good:v1');
    // The second chunk of big (at 128 MiB) overwritten, its member re-gzipped to the same size.
    const second = openFixtureLayer({ blob } as FixtureLayer).index.entries.get('big')!.chunks[1]!;
    assert.equal(second.fileOffset, CHUNK);
    tamperedDigest = second.digest!;
    await pushCraftedImage(reg, await writeLayout(join(work, 'bad'), { layers: [{ blob: tamperChunk(blob, second), tocDigest }] }), 'huge/bad:v1');
  });
  after(async () => {
    await mounts.cleanup();
    await proxy?.close();
    await reg?.stop();
    if (work) await removeDir(work);
  });
  const cacheDir = (name: string): string => join(work, `cache-${name}`);
  const common = (name: string): string[] => ['--plain-http', '--cache-dir', cacheDir(name), '--retries', '0', ...MEMORY];

  test('sync of 128 MiB chunks equals the oracle, with peak RSS bounded by the budget, not the chunk', async (t) => {
    const dest = join(work, 'sync-dest');
    const r = await runMeasured(['sync', '-q', ...common('sync'), `${proxy.host}/huge/good:v1/`, dest]);
    assert.equal(r.code, 0, r.stderr);
    const oracle = await oracleUnpack(reg, 'huge/good:v1', join(work, 'oracle'));
    const diffs = await compareTrees(oracle, dest);
    assert.deepEqual(diffs, [], formatDiffs(diffs));
    // A safety bound with a wide margin: budget + memory cache + 180 MiB for node itself (146 MiB measured in all). Holding
    // one 128 MiB chunk whole (before: inflater output, hash, cache write) cannot stay under it.
    const bound = 16 * MiB + 8 * MiB + 180 * MiB;
    t.diagnostic(`peak RSS ${(r.peakRss / MiB).toFixed(0)} MiB (budget 16 MiB, memory cache 8 MiB, chunks of 128 MiB)`);
    assert.ok(r.peakRss < bound, `peak RSS ${(r.peakRss / MiB).toFixed(0)} MiB, bound ${(bound / MiB).toFixed(0)} MiB`);
    await removeDir(dest);
  });

  test('mount: 4 MiB reads inside huge chunks are correct, and the chunks are fetched once, not per read', async (t) => {
    const mnt = join(work, 'mnt');
    await mkdir(mnt, { recursive: true });
    await mounts.foreground(`${proxy.host}/huge/good:v1`, mnt, cacheDir('mount'), ['--prefetch', 'none', ...MEMORY]);
    const offsets = [0, 50 * MiB, CHUNK - 2 * MiB /* across the two chunks */, CHUNK + 10 * MiB, BIG - 4 * MiB];
    // The second pass reads other pages of the same chunks: the kernel's page cache holds what the first read.
    const later = [8 * MiB, 60 * MiB, CHUNK - 6 * MiB, CHUNK + 2 * MiB, BIG - 12 * MiB];
    const pass = async (offsets: number[]): Promise<number[]> => {
      const times: number[] = [];
      const fh = await open(join(mnt, 'big'), 'r');
      try {
        for (const at of offsets) {
          const buf = Buffer.alloc(4 * MiB);
          const t0 = performance.now();
          const { bytesRead } = await fh.read(buf, 0, buf.length, at);
          times.push(performance.now() - t0);
          assert.equal(bytesRead, buf.length);
          assert.ok(buf.equals(files.big.subarray(at, at + buf.length)), `bytes at ${at} differ from the file`);
        }
      } finally {
        await fh.close();
      }
      return times;
    };
    proxy.resetStats();
    const first = await pass(offsets);
    const afterFirst = { requests: proxy.stats.rangeRequests, bytes: proxy.stats.blobBytesToClient };
    const second = await pass(later);
    t.diagnostic(`4 MiB reads at ${offsets.map((o) => o / MiB).join(', ')} MiB then ${later.map((o) => o / MiB).join(', ')} MiB: first ${first.map((ms) => ms.toFixed(0)).join(', ')} ms; second ${second.map((ms) => ms.toFixed(0)).join(', ')} ms; ${afterFirst.requests} range requests, ${afterFirst.bytes} of ${blobSize} blob bytes`);
    // Every chunk's bytes came over the wire once (the blob is fetched at most once in all).
    assert.ok(afterFirst.bytes <= blobSize, `${afterFirst.bytes} blob bytes fetched for a ${blobSize}-byte blob`);
    assert.equal(proxy.stats.rangeRequests, afterFirst.requests, `the second pass made ${proxy.stats.rangeRequests - afterFirst.requests} range requests`);
    // Served by position: well under the time it takes to read and hash a 128 MiB chunk (seconds per
    // 4 MiB read when the whole chunk is read back per FUSE read; tens of ms when served by position).
    for (const ms of second) assert.ok(ms < 1500, `4 MiB reads in streamed chunks took ${second.map((t) => t.toFixed(0)).join(', ')} ms (first ${first.map((t) => t.toFixed(0)).join(', ')})`);
    const mid = await readFile(join(mnt, 'mid'));
    assert.ok(mid.equals(files.mid));
  });

  test('a tampered huge chunk: EIO on the mount, exit 6 on sync, and nothing under its name in the cache', async () => {
    const hex = tamperedDigest.slice('sha256:'.length);
    const r = await runCli(['sync', '-q', ...common('bad-sync'), `${proxy.host}/huge/bad:v1/`, join(work, 'bad-dest')]);
    assert.equal(r.code, 6, r.stderr);
    assert.match(r.stderr, /ERR_DIGEST_MISMATCH/);
    assert.deepEqual(cacheFiles(cacheDir('bad-sync')).filter((f) => f.includes(hex) || f.startsWith('tmp/')), []);

    const mnt = join(work, 'mnt-bad');
    await mkdir(mnt, { recursive: true });
    await mounts.foreground(`${proxy.host}/huge/bad:v1`, mnt, cacheDir('bad-mount'), ['--prefetch', 'none', ...MEMORY]);
    const fh = await open(join(mnt, 'big'), 'r');
    try {
      const good = Buffer.alloc(MiB);
      await fh.read(good, 0, good.length, 0); // the first chunk verifies
      assert.ok(good.equals(files.big.subarray(0, MiB)));
      await assert.rejects(fh.read(Buffer.alloc(MiB), 0, MiB, CHUNK + MiB), (err: NodeJS.ErrnoException) => err.code === 'EIO');
    } finally {
      await fh.close();
    }
    assert.deepEqual(cacheFiles(cacheDir('bad-mount')).filter((f) => f.includes(hex) || f.startsWith('tmp/')), []);
  });
});

