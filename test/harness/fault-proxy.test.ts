// The fault-injection proxy: pass-through with counting, and each action with plain fetch.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startRegistry, pushLayout, type TestRegistry } from '../helpers/registry.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { registryFetch, OCI_ACCEPT, sha256Digest } from '../helpers/registry-fetch.js';
import { layoutsDir } from '../helpers/paths.js';

const edge = join(layoutsDir, 'edge');
const edgeIndex = JSON.parse(readFileSync(join(edge, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
const manifestDigest = edgeIndex.manifests[0]!.digest;
const manifest = JSON.parse(readFileSync(join(edge, 'blobs', 'sha256', manifestDigest.slice(7)), 'utf8')) as {
  layers: Array<{ digest: string; size: number }>;
};
const layer = manifest.layers[0]!;
const layerBytes = readFileSync(join(edge, 'blobs', 'sha256', layer.digest.slice(7)));
const blobPath = `/v2/fixtures/edge/blobs/${layer.digest}`;

describe('fault proxy over a plain registry', () => {
  let reg: TestRegistry;
  let proxy: FaultProxy;
  before(async () => {
    reg = await startRegistry();
    await pushLayout(reg, 'edge', 'fixtures/edge:v1');
    proxy = await startFaultProxy(reg, { cdn: true });
  });
  after(async () => {
    await proxy.close();
    await reg.stop();
  });
  const reset = (): void => {
    proxy.rules.length = 0;
    proxy.resetStats();
  };

  test('passes requests through and counts them', async () => {
    reset();
    const m = await fetch(`${proxy.url}/v2/fixtures/edge/manifests/v1`, { headers: { accept: OCI_ACCEPT } });
    assert.equal(m.status, 200);
    assert.equal(sha256Digest(new Uint8Array(await m.arrayBuffer())), manifestDigest);
    const r = await fetch(proxy.url + blobPath, { headers: { range: 'bytes=10-109' } });
    assert.equal(r.status, 206);
    const body = Buffer.from(await r.arrayBuffer());
    assert.deepEqual(body, layerBytes.subarray(10, 110));
    assert.equal(proxy.stats.requests, 2);
    assert.equal(proxy.stats.blobRequests, 1);
    assert.equal(proxy.stats.rangeRequests, 1);
    assert.equal(proxy.stats.blobBytesToClient, 100);
    assert.ok(proxy.stats.bytesToClient > 100);
    const { at, ...entry } = proxy.stats.log[1]!;
    assert.deepEqual(entry, { method: 'GET', path: blobPath, range: 'bytes=10-109', status: 206, bytes: 100, requestBytes: 0 });
    assert.ok(at >= proxy.stats.log[0]!.at, 'arrival times in order');
  });

  test("'status' answers the given status with Retry-After, `times` limits it", async () => {
    reset();
    proxy.rules.push({ match: { pathIncludes: '/blobs/' }, action: 'status', status: 429, retryAfter: 2, times: 1 });
    const a = await fetch(proxy.url + blobPath);
    assert.equal(a.status, 429);
    assert.equal(a.headers.get('retry-after'), '2');
    await a.arrayBuffer();
    const b = await fetch(proxy.url + blobPath);
    assert.equal(b.status, 200);
    assert.equal(sha256Digest(new Uint8Array(await b.arrayBuffer())), layer.digest);
    assert.equal(proxy.rules[0]!.times, 0);
  });

  test("'status' 400 on multi-range requests only", async () => {
    reset();
    proxy.rules.push({ match: { multiRange: true }, action: 'status', status: 400, body: 'multi-range not supported' });
    const multi = await fetch(proxy.url + blobPath, { headers: { range: 'bytes=0-9,20-29' } });
    assert.equal(multi.status, 400);
    assert.equal(await multi.text(), 'multi-range not supported');
    const single = await fetch(proxy.url + blobPath, { headers: { range: 'bytes=0-9' } });
    assert.equal(single.status, 206);
    await single.arrayBuffer();
  });

  test("'reset' kills the connection", async () => {
    reset();
    proxy.rules.push({ match: { method: 'GET', hasRange: true }, action: 'reset' });
    await assert.rejects(fetch(proxy.url + blobPath, { headers: { range: 'bytes=0-9' } }));
    const ok = await fetch(proxy.url + blobPath); // no Range: not matched
    assert.equal(ok.status, 200);
    await ok.arrayBuffer();
    assert.equal(proxy.stats.log[0]!.status, 0);
  });

  test("uploads: request bytes forwarded are counted; 'drop-request' (after N matches, big bodies only) forwards none; 'rewrite' changes the path", async () => {
    reset();
    const start = async (): Promise<string> => {
      const r = await fetch(`${proxy.url}/v2/fixtures/up/blobs/uploads/`, { method: 'POST' });
      assert.equal(r.status, 202);
      return r.headers.get('location')!;
    };
    const patch = (location: string, body: Buffer): Promise<Response> =>
      fetch(new URL(location, proxy.url), { method: 'PATCH', headers: { 'content-type': 'application/octet-stream' }, body });
    proxy.rules.push({ match: { method: 'PATCH', minContentLength: 1000 }, after: 1, times: 1, action: 'drop-request', dropAfterRequestBytes: 500 });
    const small = await patch(await start(), Buffer.alloc(10)); // too small to match
    assert.equal(small.status, 202);
    const first = await patch(await start(), Buffer.alloc(2000)); // the one let through
    assert.equal(first.status, 202);
    await assert.rejects(patch(await start(), Buffer.alloc(2000))); // dropped, never forwarded
    const patches = proxy.stats.log.filter((e) => e.method === 'PATCH');
    assert.deepEqual(patches.map((e) => [e.requestBytes, e.rule ?? null]), [[10, null], [2000, null], [0, 'drop-request']]);
    assert.equal(proxy.stats.requestBytesToUpstream, 2010);
    proxy.rules.push({ match: { pathIncludes: '/manifests/nope' }, action: 'rewrite', rewritePath: (p) => p.replace('nope', 'v1') });
    const m = await fetch(`${proxy.url}/v2/fixtures/edge/manifests/nope`, { headers: { accept: OCI_ACCEPT } });
    assert.equal(m.status, 200);
    assert.equal(sha256Digest(new Uint8Array(await m.arrayBuffer())), manifestDigest);
  });

  test("'truncate' sends headers and N bytes, then drops the connection", async () => {
    reset();
    proxy.rules.push({ match: { pathIncludes: '/blobs/' }, action: 'truncate', truncateAfterBytes: 1000 });
    const r = await fetch(proxy.url + blobPath);
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-length'), String(layer.size));
    await assert.rejects(r.arrayBuffer());
    assert.equal(proxy.stats.log[0]!.bytes, 1000);
    assert.equal(proxy.stats.blobBytesToClient, 1000);
  });

  test("'ignore-range' makes the registry answer 200 with the whole blob", async () => {
    reset();
    proxy.rules.push({ match: { hasRange: true }, action: 'ignore-range' });
    const r = await fetch(proxy.url + blobPath, { headers: { range: 'bytes=0-9' } });
    assert.equal(r.status, 200);
    assert.equal((await r.arrayBuffer()).byteLength, layer.size);
  });

  test("'delay' holds the request before forwarding", async () => {
    reset();
    proxy.rules.push({ match: { pathIncludes: '/manifests/' }, action: 'delay', delayMs: 300 });
    const t0 = Date.now();
    const r = await fetch(`${proxy.url}/v2/fixtures/edge/manifests/v1`, { headers: { accept: OCI_ACCEPT } });
    assert.equal(r.status, 200);
    await r.arrayBuffer();
    assert.ok(Date.now() - t0 >= 290);
  });

  test("'redirect' sends blob GETs to a CDN on another origin that serves ranges", async () => {
    reset();
    proxy.rules.push({ action: 'redirect' }); // only blob GETs are redirected
    const m = await fetch(`${proxy.url}/v2/fixtures/edge/manifests/v1`, { headers: { accept: OCI_ACCEPT } });
    assert.equal(m.status, 200);
    await m.arrayBuffer();
    const r = await fetch(proxy.url + blobPath, { redirect: 'manual', headers: { range: 'bytes=5-14' } });
    assert.equal(r.status, 307);
    const loc = r.headers.get('location')!;
    assert.ok(loc.startsWith(proxy.cdnUrl + '/cdn/' + layer.digest), loc);
    assert.notEqual(new URL(loc).host, proxy.host);
    const c = await fetch(loc, { headers: { range: 'bytes=5-14' } });
    assert.equal(c.status, 206);
    assert.equal(c.headers.get('content-range'), `bytes 5-14/${layer.size}`);
    assert.deepEqual(Buffer.from(await c.arrayBuffer()), layerBytes.subarray(5, 15));
    const whole = await fetch(proxy.url + blobPath); // fetch follows the redirect itself
    assert.equal(sha256Digest(new Uint8Array(await whole.arrayBuffer())), layer.digest);
    const bad = await fetch(loc, { headers: { range: `bytes=${layer.size + 10}-` } });
    assert.equal(bad.status, 416);
    assert.equal(proxy.stats.authHeadersSeenOnCdn, 0);
    const leaky = await fetch(loc, { headers: { authorization: 'Bearer leaked' } });
    await leaky.arrayBuffer();
    assert.equal(proxy.stats.authHeadersSeenOnCdn, 1);
    assert.equal(proxy.stats.cdnRequests, 4);
    assert.equal(proxy.stats.blobRequests, 2);
    assert.equal(proxy.stats.blobBytesToClient, 10 + layer.size + layer.size);
  });

  test('a dead registry behind the proxy gives 502', async () => {
    reset();
    await reg.stopProcess();
    try {
      const r = await fetch(proxy.url + '/v2/');
      assert.equal(r.status, 502);
      await r.arrayBuffer();
    } finally {
      await reg.restart();
    }
    const r = await fetch(proxy.url + '/v2/');
    assert.equal(r.status, 200);
    await r.arrayBuffer();
  });
});

test('fault proxy over a token registry routes token fetches through itself and checks auth before redirecting', async () => {
  const reg = await startRegistry({ mode: 'token' });
  const proxy = await startFaultProxy(reg, { cdn: true });
  try {
    await pushLayout(reg, 'edge', 'fixtures/edge:v1');
    const creds = `${reg.username}:${reg.password}`;
    const challenge = await fetch(`${proxy.url}/v2/fixtures/edge/manifests/v1`);
    assert.equal(challenge.status, 401);
    assert.match(challenge.headers.get('www-authenticate')!, new RegExp(`realm="${proxy.url}/token"`));
    await challenge.arrayBuffer();
    const issued = reg.tokenServer!.issued;
    const m = await registryFetch(proxy.url, '/v2/fixtures/edge/manifests/v1', { headers: { accept: OCI_ACCEPT }, creds });
    assert.equal(m.status, 200);
    assert.equal(sha256Digest(new Uint8Array(await m.arrayBuffer())), manifestDigest);
    assert.equal(reg.tokenServer!.issued, issued + 1);
    assert.ok(proxy.stats.log.some((e) => e.path.startsWith('/token?') && e.status === 200));

    proxy.rules.push({ action: 'redirect' });
    const anon = await fetch(proxy.url + blobPath, { redirect: 'manual' });
    assert.equal(anon.status, 401, 'no redirect without credentials');
    await anon.arrayBuffer();
    const r = await registryFetch(proxy.url, blobPath, { creds, redirect: 'manual' });
    assert.equal(r.status, 307);
    const c = await fetch(r.headers.get('location')!);
    assert.equal(sha256Digest(new Uint8Array(await c.arrayBuffer())), layer.digest);
    assert.equal(proxy.stats.authHeadersSeenOnCdn, 0);
  } finally {
    await proxy.close();
    await reg.stop();
  }
});
