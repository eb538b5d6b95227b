// sync against registries that misbehave: corrupted storage, flaky links, hostile
// redirects, dead servers. Each failure must end in one line with a stable code, a
// non-zero exit, and no wrong file under a final name.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir, writeFile, lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { startRegistry, pushLayout, layoutPath, type TestRegistry } from '../helpers/registry.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';
import { runCli } from '../helpers/cli.js';

interface Layer {
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

async function edgeLayers(): Promise<Layer[]> {
  const dir = layoutPath('edge');
  const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
  const blob = (d: string) => join(dir, 'blobs', 'sha256', d.slice('sha256:'.length));
  const manifest = JSON.parse(await readFile(blob(index.manifests[0]!.digest), 'utf8')) as { layers: Layer[] };
  return manifest.layers;
}

/** Regular files below dir (symlinks may point at files the failed run never wrote). */
async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const name of await readdir(d).catch(() => [] as string[])) {
      const p = join(d, name);
      const st = await lstat(p);
      if (st.isDirectory()) await walk(p);
      else if (st.isFile()) out.push(p);
    }
  };
  await walk(dir);
  return out;
}

describe('sync under faults', () => {
  let reg: TestRegistry;
  let proxy: FaultProxy;
  let work: string;
  let layers: Layer[];

  before(async () => {
    reg = await startRegistry({ mode: 'plain' });
    await pushLayout(reg, 'edge', 'fixtures/edge:v1');
    proxy = await startFaultProxy(reg, { cdn: true });
    work = await makeTempDir('sync-faults-');
    layers = await edgeLayers();
  });
  after(async () => {
    await proxy?.close();
    await reg?.stop();
    if (work) await removeDir(work);
  });

  let n = 0;
  const sync = (src: string, dest: string, extra: string[] = []) =>
    runCli(['sync', '--plain-http', '--retries', '3', '--cache-dir', join(work, `cache-${n++}`), src, dest, ...extra]);

  test('a small path from the image fetches little more than the TOCs and its chunks', async () => {
    proxy.resetStats();
    const dest = join(work, 'passwd');
    const r = await sync(`${proxy.host}/fixtures/edge:v1/etc/passwd`, dest);
    assert.equal(r.code, 0, r.stderr);
    const total = layers.reduce((s, l) => s + l.size, 0);
    const fetched = proxy.stats.blobBytesToClient;
    // Per layer at most one 32 KiB tail (footer + TOC), plus the chunk of etc/passwd.
    assert.ok(fetched <= layers.length * 32 * 1024 + 4096, `fetched ${fetched} bytes of ${total}`);
    assert.ok(fetched < total * 0.2, `fetched ${fetched} bytes of ${total}`);
    assert.match(r.stderr, /saved (\d+)\.\d%/);
    assert.equal(await readFile(dest, 'utf8'), 'root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n');
  });

  test('429 with Retry-After, 503s and connection resets are retried', async () => {
    proxy.rules.push(
      { match: { pathIncludes: '/blobs/', hasRange: true }, action: 'status', status: 429, retryAfter: 1, times: 1 },
      { match: { pathIncludes: '/blobs/', hasRange: true }, action: 'status', status: 503, times: 2 },
      { match: { pathIncludes: '/blobs/', hasRange: true }, action: 'reset', times: 2 },
      { match: { pathIncludes: '/blobs/', hasRange: true }, action: 'truncate', truncateAfterBytes: 1000, times: 2 },
    );
    try {
      const dest = join(work, 'flaky');
      const r = await sync(`${proxy.host}/fixtures/edge:v1/bin`, dest);
      assert.equal(r.code, 0, r.stderr);
      assert.equal((await lstat(join(dest, 'tool'))).size, 300000);
      assert.equal(proxy.rules.filter((x) => (x.times ?? 0) > 0).length, 0, 'every fault fired');
    } finally {
      proxy.rules.length = 0;
    }
  });

  test('a server that ignores Range and a redirect to a CDN still give exact bytes, without leaking credentials', async () => {
    proxy.rules.push({ match: { pathIncludes: '/blobs/' }, action: 'ignore-range', times: 2 }, { match: { pathIncludes: '/blobs/' }, action: 'redirect' });
    try {
      const dest = join(work, 'cdn');
      const r = await sync(`${proxy.host}/fixtures/edge:v1/bin`, dest);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(proxy.stats.cdnRequests > 0);
      assert.equal(proxy.stats.authHeadersSeenOnCdn, 0);
      assert.equal((await lstat(join(dest, 'big2'))).size, 1_000_000);
    } finally {
      proxy.rules.length = 0;
    }
  });

  test('a corrupted chunk in registry storage: integrity error, exit 6, no wrong file', async () => {
    const reg2 = await startRegistry({ mode: 'plain' });
    try {
      await pushLayout(reg2, 'edge', 'fixtures/edge:v1');
      // Layer 0 holds bin/tool, whose first half is random bytes (stored deflate blocks):
      // flip one byte in the middle of the blob.
      const path = reg2.blobPath(layers[0]!.digest);
      const data = await readFile(path);
      const at = Math.floor(data.length / 3);
      data[at] = data[at]! ^ 0xff;
      await writeFile(path, data);
      const dest = join(work, 'corrupt');
      const r = await sync(`${reg2.host}/fixtures/edge:v1`, dest);
      assert.equal(r.code, 6, r.stderr);
      assert.match(r.stderr, /ERR_(DIGEST_MISMATCH|CORRUPT_DATA)/);
      assert.equal(r.stderr.trim().split('\n').filter((l) => l.includes('ERR_')).length, 1);
      // What was written is right; nothing else is left under a final or temporary name.
      const expected = join(work, 'healthy');
      const ok = await sync(`${proxy.host}/fixtures/edge:v1`, expected);
      assert.equal(ok.code, 0, ok.stderr);
      for (const file of await listFiles(dest)) {
        assert.doesNotMatch(file, /\.sgtmp-/, 'temporary file left behind');
        const rel = file.slice(dest.length);
        assert.deepEqual(await readFile(file), await readFile(expected + rel), `${rel} has wrong content`);
      }
    } finally {
      await reg2.stop();
    }
  });

  test('a TOC that does not match its annotated digest is refused', async () => {
    const reg3 = await startRegistry({ mode: 'plain' });
    try {
      await pushLayout(reg3, 'edge', 'fixtures/edge:v1');
      const layer = layers[1]!;
      const path = reg3.blobPath(layer.digest);
      const data = await readFile(path);
      data[data.length - 51 - 20] = data[data.length - 51 - 20]! ^ 0x01; // inside the TOC's gzip member, just before the footer
      await writeFile(path, data);
      const r = await sync(`${reg3.host}/fixtures/edge:v1/etc`, join(work, 'bad-toc'));
      assert.equal(r.code, 6, r.stderr);
      assert.match(r.stderr, /ERR_(DIGEST_MISMATCH|CORRUPT_DATA|TOC_INVALID)/);
      await assert.rejects(lstat(join(work, 'bad-toc', 'passwd')));
    } finally {
      await reg3.stop();
    }
  });

  test('a dead registry: ERR_REGISTRY_UNREACHABLE, exit 5, within bounded time', async () => {
    const reg4 = await startRegistry({ mode: 'plain' });
    const host = reg4.host;
    await reg4.stop();
    const started = Date.now();
    const r = await sync(`${host}/fixtures/edge:v1/etc`, join(work, 'dead'), ['--retries', '1']);
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, /ERR_REGISTRY_UNREACHABLE/);
    assert.ok(Date.now() - started < 30_000);
  });

  test('malformed references and missing tags have their own codes', async () => {
    let r = await sync('UPPER/Case::bad', join(work, 'x'));
    assert.equal(r.code, 2);
    assert.match(r.stderr, /ERR_REFERENCE_INVALID/);
    r = await sync(`${reg.host}/fixtures/edge:nope/etc`, join(work, 'x'));
    assert.equal(r.code, 3);
    assert.match(r.stderr, /ERR_REGISTRY_NOT_FOUND/);
  });
});
