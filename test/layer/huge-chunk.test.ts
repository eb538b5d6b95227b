// Chunks larger than the memory cache (issue 8), at the layer: streamed into the disk cache once
// (gzip and zstd), then served by position for a window; refused without a disk cache when
// larger than the budget.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EstargzLayer } from '../../src/layer/estargz-layer.js';
import { DEFAULT_FETCH_TUNING, type LayerContext } from '../../src/layer/layer.js';
import { FetchMetrics } from '../../src/metrics/fetch-metrics.js';
import { FileBlobSource } from '../../src/blob/blob-source.js';
import { ChunkCache } from '../../src/cache/chunk-cache.js';
import { MemoryChunkCache } from '../../src/cache/memory-cache.js';
import { DiskCache } from '../../src/cache/disk-cache.js';
import { Limiter } from '../../src/util/limiter.js';
import { ByteBudget } from '../../src/util/byte-budget.js';
import { tempDirFor } from '../helpers/tmp.js';
import { tarHeader } from '../helpers/big-tar.js';
import { esgzRefPath } from '../helpers/paths.js';
import type { ChunkRef } from '../../src/estargz/index.js';

const MiB = 1024 * 1024;
const SIZE = 7 * MiB;

function run(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} exited ${code}: ${err}`))));
  });
}

function content(size: number): Buffer {
  const b = Buffer.alloc(size);
  for (let at = 0; at + 4 <= size; at += 4) b.writeUInt32BE(at, at); // every chunk distinct (identical ones are fetched once)
  return b;
}

async function openLayer(dir: string, zstd: boolean, disk: DiskCache | undefined, budget: number) {
  const data = content(SIZE);
  await writeFile(join(dir, 'layer.tar'), Buffer.concat([tarHeader('big', SIZE), data, Buffer.alloc(1024)]));
  const blobPath = join(dir, 'blob');
  await run(esgzRefPath!, ['build', '-in', join(dir, 'layer.tar'), '-out', blobPath, '-chunk', String(3 * MiB), ...(zstd ? ['-zstd'] : [])]);
  const size = readFileSync(blobPath).length;
  const desc = { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: 'sha256:' + '0'.repeat(64), size };
  const ctx: LayerContext = {
    cache: new ChunkCache(new MemoryChunkCache(4 * MiB), disk),
    ...(disk ? { disk } : {}),
    limiter: new Limiter(4),
    memory: new ByteBudget(budget),
    tuning: DEFAULT_FETCH_TUNING,
    metrics: new FetchMetrics(),
    offline: false,
    insecureSkipTocVerify: true,
    notice: () => undefined,
  };
  const layer = await EstargzLayer.open(desc, new FileBlobSource(blobPath, desc.digest, size), ctx);
  return { layer, ctx, data, refs: layer.index.entries.get('big')!.chunks };
}

for (const zstd of [false, true]) {
  test(`${zstd ? 'zstd' : 'gzip'}: chunks above a quarter of the memory cache are streamed once and served by position`, { skip: esgzRefPath ? false : 'esgz-ref not built' }, async (t) => {
    const dir = await tempDirFor(t, 'huge-layer-');
    const disk = DiskCache.open({ dir: join(dir, 'cache'), maxBytes: 100 * MiB });
    t.after(() => disk.close());
    const { layer, ctx, data, refs } = await openLayer(dir, zstd, disk, 16 * MiB);
    assert.deepEqual(refs.map((r) => r.size), [3 * MiB, 3 * MiB, MiB]);
    // The whole file, in pieces (sync's way): every byte where it belongs.
    const out = Buffer.alloc(SIZE, 0xee);
    await layer.readChunks(refs, (ref: ChunkRef, piece: Buffer, at = 0) => void piece.copy(out, ref.fileOffset + at));
    assert.ok(out.equals(data));
    assert.equal((await ctx.metrics.totals()).chunksFromNetwork, 3);
    // A window inside the second chunk: only its overlap is delivered, from the file.
    const pieces: Array<[number, number]> = [];
    await layer.readChunks([refs[1]!], (_ref, piece, at = 0) => void pieces.push([at, piece.length]), { window: { offset: 4 * MiB + 5, length: 1000 } });
    assert.deepEqual(pieces, [[MiB + 5, 1000]]);
    assert.equal((await ctx.metrics.totals()).chunksFromNetwork, 3, 'nothing fetched again');
  });
}

test('without a disk cache, a chunk larger than the memory budget is refused with ERR_CACHE naming both sizes', { skip: esgzRefPath ? false : 'esgz-ref not built' }, async (t) => {
  const dir = await tempDirFor(t, 'huge-layer-');
  const { layer, refs } = await openLayer(dir, false, undefined, 2 * MiB);
  await assert.rejects(layer.readChunks([refs[0]!], () => undefined), (err: { code?: string; message: string }) => {
    assert.equal(err.code, 'ERR_CACHE');
    assert.match(err.message, new RegExp(`${3 * MiB} bytes, more than the memory budget of ${2 * MiB} bytes`));
    return true;
  });
});
