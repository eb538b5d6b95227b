// Background prefetch: what it plans (landmark files first, each chunk once, only visible
// files) and how it runs (low priority, skips the cache, stops on abort and on failures).
import type { LazyChunkRef } from '../../src/file-index/index.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MergedFs } from '../../src/vfs/merged-fs.js';
import { parsePrefetchMode, planPrefetch, runPrefetch } from '../../src/prefetch/prefetch.js';
import { ErrorCodes, StargzError, isStargzError } from '../../src/errors.js';
import { FakeLayer } from './fake-layer.js';

/** Non-repeating bytes: equal chunks would share a digest and be planned once. */
function bytes(n: number, seed: number): Buffer {
  const out = Buffer.alloc(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

function image(connections?: number) {
  const base = new FakeLayer(
    [
      { path: 'etc/hostname', content: bytes(12, 1) },
      { path: 'bin/tool', content: bytes(200_000, 2), chunkSize: 65_536 },
      { path: 'bin/tool-hardlink', type: 'hardlink', linkName: 'bin/tool' },
      { path: 'etc/passwd', content: bytes(60, 3) },
      { path: 'etc/shadow', content: bytes(70, 4), noDigest: true },
      { path: 'usr/lib/big', content: bytes(300_000, 5), chunkSize: 65_536 },
    ],
    { digest: 'sha256:' + '1'.repeat(64), landmarkAfter: 3 },
  );
  const upper = new FakeLayer(
    [
      { path: 'etc/passwd', content: bytes(61, 6) }, // hides the base layer's passwd
      { path: 'opt/app', content: bytes(100, 7) },
    ],
    { digest: 'sha256:' + '2'.repeat(64), noPrefetch: true },
  );
  return { base, upper, fs: new MergedFs([base, upper], { connections }) };
}

test('landmark plans the prioritized files of each layer, once each, in blob order', () => {
  const { fs, base } = image();
  const batches = planPrefetch(fs, 'landmark');
  assert.ok(batches.every((b) => b.prioritized && b.layer === base));
  const refs = batches.flatMap((b) => b.refs);
  const hostname = fs.get('/etc/hostname')!.inode.entry.chunks;
  const tool = fs.get('/bin/tool')!.inode.entry.chunks;
  assert.deepEqual(refs, [...hostname, ...tool], 'hostname and tool (the hardlink shares its chunks), nothing else');
  assert.deepEqual(planPrefetch(fs, 'none'), []);
});

test('all adds every other visible chunk after the prioritized ones; hidden and digest-less chunks are left out', () => {
  const { fs, base, upper } = image();
  const batches = planPrefetch(fs, 'all');
  const firstRest = batches.findIndex((b) => !b.prioritized);
  assert.ok(firstRest > 0 && batches.slice(firstRest).every((b) => !b.prioritized));
  const offsets = new Set(batches.flatMap((b) => b.refs.map((r) => `${b.layer.descriptor.digest}@${r.offset}`)));
  const has = (layer: FakeLayer, path: string): boolean =>
    layer.index.entries.get(path)!.chunks.every((r) => offsets.has(`${layer.descriptor.digest}@${r.offset}`));
  assert.ok(has(base, 'usr/lib/big'));
  assert.ok(has(upper, 'etc/passwd') && has(upper, 'opt/app'), 'a layer without a landmark is fetched in all mode');
  assert.ok(!base.index.entries.get('etc/passwd')!.chunks.some((r) => offsets.has(`${base.descriptor.digest}@${r.offset}`)), 'hidden by the upper layer');
  assert.ok(!base.index.entries.get('etc/shadow')!.chunks.some((r) => offsets.has(`${base.descriptor.digest}@${r.offset}`)), 'no digest: never cached');
});

test('batches are bounded by the compressed span they cover', () => {
  const { fs } = image();
  for (const b of planPrefetch(fs, 'all', 25)) {
    assert.ok(b.refs.length === 1 || b.refs[b.refs.length - 1]!.end - b.refs[0]!.offset <= 25);
  }
});

test('runPrefetch fetches at low priority and skips what is at hand', async () => {
  const { fs, base } = image();
  const cached = fs.chunksFor(fs.get('/bin/tool')!)[1] as LazyChunkRef;
  const skip = cached.digest!;
  base.memory.set(skip, base.bytesOf(cached));
  const r = await runPrefetch(fs, 'landmark');
  assert.ok(base.calls.length > 0);
  assert.ok(base.calls.every((c) => c.options.priority === 'low'));
  const fetched = base.calls.flatMap((c) => c.refs);
  assert.ok(!fetched.some((ref) => ref.digest === skip));
  assert.equal(r.chunks, fetched.length);
  assert.equal(r.stopped, false);
});

test('runPrefetch stops when aborted and gives up after repeated failures', async () => {
  const { fs, base, upper } = image();
  const controller = new AbortController();
  controller.abort();
  let r = await runPrefetch(fs, 'all', { signal: controller.signal });
  assert.equal(r.stopped, true);
  assert.equal(base.calls.length + upper.calls.length, 0);

  const failing = image(1);
  failing.base.behaviour = { fail: new StargzError(ErrorCodes.REGISTRY_UNREACHABLE, 'down') };
  failing.upper.behaviour = failing.base.behaviour;
  const logs: string[] = [];
  r = await runPrefetch(failing.fs, 'all', { batchBytes: 10, maxConsecutiveFailures: 3, log: (l) => logs.push(l) });
  assert.equal(r.failedBatches, 3);
  assert.equal(r.stopped, true);
  assert.match(logs.join('\n'), /giving up/);
});

test('parsePrefetchMode accepts none, landmark, all', () => {
  assert.equal(parsePrefetchMode(undefined), 'landmark');
  assert.equal(parsePrefetchMode('all'), 'all');
  assert.throws(() => parsePrefetchMode('some'), (e: unknown) => isStargzError(e, ErrorCodes.USAGE));
});
