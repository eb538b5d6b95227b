// Issue 8: four files of one 1 GiB chunk in a 4 MB layer took 5.2 GB RSS: their extents are
// tiny (zeros), so one merged range held every chunk inflated at once, and ranges were counted,
// not bytes. Scaled: 6 files of one 32 MiB chunk of zeros, made by the reference writer, read
// at once under a 32 MiB budget: ranges are split by inflated size and run one at a time.
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
import { Limiter } from '../../src/util/limiter.js';
import { ByteBudget } from '../../src/util/byte-budget.js';
import { tempDirFor } from '../helpers/tmp.js';
import { tarHeader } from '../helpers/big-tar.js';
import { esgzRefPath } from '../helpers/paths.js';

const MiB = 1024 * 1024;
const esgzRef = esgzRefPath;

class CountingSource extends FileBlobSource {
  reads = 0;
  override async readRange(offset: number, length: number): Promise<Buffer> {
    this.reads++;
    return super.readRange(offset, length);
  }
}

function run(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} exited ${code}: ${err}`))));
  });
}

test('big chunks of zeros are held within the byte budget, not all at once', { skip: esgzRef ? false : 'esgz-ref not built (scripts/tools/esgz-ref/build.sh)' }, async (t) => {
  const dir = await tempDirFor(t, 'budget-');
  const files = 6;
  const size = 32 * MiB;
  const parts: Buffer[] = [];
  for (let i = 0; i < files; i++) parts.push(tarHeader(`big${i}`, size), Buffer.alloc(size, i)); // distinct: identical chunks are fetched once
  await writeFile(join(dir, 'layer.tar'), Buffer.concat([...parts, Buffer.alloc(1024)]));
  const blobPath = join(dir, 'blob');
  await run(esgzRef!, ['build', '-in', join(dir, 'layer.tar'), '-out', blobPath, '-chunk', String(size)]);
  const blob = readFileSync(blobPath);
  assert.ok(blob.length < 2 * MiB, `the blob is tiny (${blob.length} bytes)`);
  const desc = { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: 'sha256:' + '0'.repeat(64), size: blob.length };
  const source = new CountingSource(blobPath, desc.digest, blob.length);
  const ctx: LayerContext = {
    cache: new ChunkCache(new MemoryChunkCache(4 * MiB)),
    limiter: new Limiter(8),
    memory: new ByteBudget(32 * MiB),
    tuning: DEFAULT_FETCH_TUNING,
    metrics: new FetchMetrics(),
    offline: false,
    insecureSkipTocVerify: true,
    notice: () => undefined,
  };
  const layer = await EstargzLayer.open(desc, source, ctx);
  const refs = [...layer.index.entries.values()].filter((e) => e.type === 'reg').flatMap((e) => e.chunks);
  assert.equal(refs.length, files);
  source.reads = 0;
  const base = process.memoryUsage().arrayBuffers;
  let peak = 0;
  let delivered = 0;
  await layer.readChunks(refs, (_ref, data) => {
    assert.equal(data.length, size);
    delivered++;
    peak = Math.max(peak, process.memoryUsage().arrayBuffers - base);
  });
  assert.equal(delivered, files);
  assert.equal(source.reads, files, 'one range per chunk: merging would put them all in one');
  // All six inflated at once is 192 MiB; one at a time is one chunk (and garbage not yet collected).
  assert.ok(peak < 4 * size, `peak of buffers at delivery ${(peak / MiB).toFixed(0)} MiB`);
});
