// Metrics as a user gets them (issue 12 item 7): `mount -d --metrics-addr` scraped over HTTP
// while a real FUSE mount is read, and `sync --metrics-file` read back — each number checked
// against what a byte-counting proxy in front of the real registry saw, or against the summary.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startRegistry, pushLayout, freePort, type TestRegistry } from '../helpers/registry.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';
import { runCli } from '../helpers/cli.js';
import { Mounts, isAlive, isMounted, run, waitFor } from '../fuse/mount-helpers.js';
import { parseExposition, type Exposition } from './prom-text.js';
import type { SyncJson } from '../../src/cli/commands/sync.js';

const BIG_LAYER = 'sha256:c5e4a3cc121f3d03e1c566372a11782f97ac049ff3b0518ca8a3faf8fd9d73f8'; // edge's layer with bin/big2 (1 MB)

/** Blob body bytes the proxy sent for one layer. */
function proxiedBytes(proxy: FaultProxy, layer: string): number {
  return proxy.stats.log.filter((e) => e.path.includes(`/blobs/${layer}`)).reduce((n, e) => n + e.bytes, 0);
}

async function scrape(url: string): Promise<{ status: number; type: string | null; text: string }> {
  const res = await fetch(url);
  return { status: res.status, type: res.headers.get('content-type'), text: await res.text() };
}

describe('metrics', () => {
  let reg: TestRegistry;
  let proxy: FaultProxy;
  let work: string;
  const mounts = new Mounts();
  before(async () => {
    reg = await startRegistry({ mode: 'plain' });
    await pushLayout(reg, 'edge', 'fixtures/edge:v1');
    await pushLayout(reg, 'syncv1', 'f/sync:v1', { tag: 'v1' });
    proxy = await startFaultProxy(reg);
    work = await makeTempDir('metrics-');
  });
  after(async () => {
    await mounts.cleanup();
    await proxy?.close();
    await reg?.stop();
    if (work) await removeDir(work);
  });

  test('mount -d --metrics-addr: /metrics counts per layer what the proxy sent, and the reads', async () => {
    const mnt = join(work, 'mnt');
    await mkdir(mnt);
    const port = await freePort();
    const url = `http://127.0.0.1:${port}/metrics`;
    proxy.resetStats();
    const m = await mounts.detached(`${proxy.host}/fixtures/edge:v1`, mnt, join(work, 'cache-mount'), ['--prefetch', 'none', '--metrics-addr', `127.0.0.1:${port}`]);

    // Served by the background process, before anything is read: the TOCs it fetched to mount.
    let s = await scrape(url);
    assert.equal(s.status, 200, s.text);
    assert.match(s.type ?? '', /^text\/plain; version=0\.0\.4/);
    let e = parseExposition(s.text);
    assert.equal(e.sum('stargz_get_blob_bytes_total'), proxy.stats.blobBytesToClient);
    assert.equal(e.sum('stargz_get_read_duration_seconds_count'), 0);

    const r = await run('sha256sum', [join(mnt, 'bin/big2')]);
    assert.equal(r.code, 0, r.stderr);
    // Read-ahead may still be on the wire when sha256sum returns: the counts settle, then must agree byte for byte.
    let last: Exposition | undefined;
    await waitFor('the metrics to agree with the proxy', async () => {
      last = parseExposition((await scrape(url)).text);
      const big = last.sum('stargz_get_blob_bytes_total', { layer: BIG_LAYER });
      return big > 0 && big === proxiedBytes(proxy, BIG_LAYER) && last.sum('stargz_get_background_queued_ranges') === 0;
    }, 10_000).catch((err: Error) => {
      throw new Error(`${err.message}: metrics ${last?.sum('stargz_get_blob_bytes_total', { layer: BIG_LAYER })}, proxy ${proxiedBytes(proxy, BIG_LAYER)}`);
    });
    e = last!;
    for (const layer of new Set(proxy.stats.log.map((x) => /\/blobs\/(sha256:[a-f0-9]{64})/.exec(x.path)?.[1]).filter((d): d is string => d !== undefined))) {
      assert.equal(e.sum('stargz_get_blob_bytes_total', { layer }), proxiedBytes(proxy, layer), `blob bytes of ${layer}`);
    }
    assert.equal(e.sum('stargz_get_blob_requests_total', { layer: BIG_LAYER }), proxy.stats.log.filter((x) => x.path.includes(`/blobs/${BIG_LAYER}`)).length);
    assert.equal(e.types.get('stargz_get_read_duration_seconds'), 'histogram');
    const reads = e.sum('stargz_get_read_duration_seconds_count', { layer: BIG_LAYER });
    assert.ok(reads >= 1, 'the latency histogram counted the reads of bin/big2');
    assert.equal(e.sum('stargz_get_read_duration_seconds_bucket', { layer: BIG_LAYER, le: '+Inf' }), reads);
    assert.ok(e.sum('stargz_get_read_duration_seconds_sum', { layer: BIG_LAYER }) > 0);
    assert.ok(e.sum('stargz_get_chunks_total', { layer: BIG_LAYER, source: 'network' }) >= 1);
    assert.ok(e.sum('stargz_get_cache_bytes', { tier: 'memory' }) > 0, 'the memory cache holds what was read');
    assert.ok(e.sum('stargz_get_cache_chunks', { tier: 'disk' }) >= 1);

    assert.equal((await scrape(`http://127.0.0.1:${port}/`)).status, 404);
    assert.equal((await scrape(`http://127.0.0.1:${port}/metricsx`)).status, 404);

    const u = await runCli(['umount', mnt]);
    assert.equal(u.code, 0, u.stderr);
    await waitFor('the server to exit', () => !isAlive(m.pid), 10_000);
    await assert.rejects(fetch(url), 'the metrics end with the mount');
  });

  test('mount --metrics-addr with a bad address is a usage error, and nothing is mounted', async () => {
    const mnt = join(work, 'mnt-bad');
    await mkdir(mnt);
    for (const addr of ['9100', '127.0.0.1', '127.0.0.1:99999', 'example.com:9100', '[127.0.0.1]:9100']) {
      const r = await runCli(['mount', '-d', '--plain-http', '--cache-dir', join(work, 'cache-bad'), '--metrics-addr', addr, `${reg.host}/fixtures/edge:v1`, mnt]);
      assert.equal(r.code, 2, `${addr}: ${r.stderr}`);
      assert.match(r.stderr, /ERR_USAGE: --metrics-addr/, addr);
      assert.equal(isMounted(mnt), false);
    }
  });

  test('sync --metrics-file: a textfile that parses, written atomically, whose numbers are the summary', async () => {
    const out = join(work, 'textfile');
    await mkdir(out);
    const file = join(out, 'stargz_get.prom');
    proxy.resetStats();
    const r = await runCli(['sync', '--json', '--plain-http', '--cache-dir', join(work, 'cache-sync'), '--metrics-file', file, `${proxy.host}/f/sync:v1`, join(work, 'dest')]);
    assert.equal(r.code, 0, r.stderr);
    const summary = JSON.parse(r.stdout) as SyncJson;
    assert.deepEqual(await readdir(out), ['stargz_get.prom'], 'no temporary left beside it');
    const e = parseExposition(await readFile(file, 'utf8'));
    assert.equal(e.sum('stargz_get_blob_bytes_total'), summary.fetched.bytes);
    assert.equal(e.sum('stargz_get_blob_bytes_total'), proxy.stats.blobBytesToClient);
    assert.equal(e.sum('stargz_get_http_requests_total'), summary.fetched.requests);
    assert.equal(e.sum('stargz_get_chunks_total', { source: 'memory' }) + e.sum('stargz_get_chunks_total', { source: 'disk' }), summary.fetched.chunksFromCache);
    assert.ok(e.sum('stargz_get_chunks_total', { source: 'network' }) > 0);
    assert.ok(e.sum('stargz_get_read_delivered_bytes_total') >= summary.bytesWritten, 'every byte written was delivered by a read');
    for (const family of ['stargz_get_blob_requests_total', 'stargz_get_read_duration_seconds', 'stargz_get_background_queued_bytes_total', 'stargz_get_errors_total', 'stargz_get_cache_bytes']) {
      assert.ok(e.types.has(family), `${family} is in the file`);
    }
  });
});
