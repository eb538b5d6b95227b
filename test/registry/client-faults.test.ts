// RegistryClient through a fault-injecting proxy in front of a real registry: retries,
// resume, servers that ignore Range, CDN redirects, dead registries and timeouts.
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { RegistryClient, type RegistryClientOptions } from '../../src/registry/client.js';
import { ErrorCodes, isStargzError, type ErrorCode } from '../../src/errors.js';
import { freePort, pushLayout, startRegistry, type TestRegistry } from '../helpers/registry.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { layoutsDir } from '../helpers/paths.js';

const BIG_LAYER = 'sha256:c5e4a3cc121f3d03e1c566372a11782f97ac049ff3b0518ca8a3faf8fd9d73f8'; // 533722 bytes
const EDGE_CONFIG = 'sha256:61c5785e560c0bb4257ae0a82b6eff977ff98fe835135752eaf7ddb799674628';
const REPO = 'fixtures/edge';
const FAST: RegistryClientOptions = { retryBaseDelayMs: 5, plainHttp: true };

const hasCode = (code: ErrorCode) => (err: unknown) => isStargzError(err, code);
const blobFile = (digest: string): string => join(layoutsDir, 'edge', 'blobs', 'sha256', digest.slice(7));

describe('faults between client and a plain registry', () => {
  let reg: TestRegistry;
  let proxy: FaultProxy;
  let client: RegistryClient;
  let big: Buffer;

  before(async () => {
    reg = await startRegistry({ mode: 'plain' });
    await pushLayout(reg, 'edge', 'fixtures/edge:v1');
    proxy = await startFaultProxy(reg);
    big = await readFile(blobFile(BIG_LAYER));
  });
  after(async () => {
    await client?.close();
    await proxy?.close();
    await reg?.stop();
  });
  beforeEach(async () => {
    await client?.close();
    client = new RegistryClient(proxy.host, FAST);
    proxy.rules.length = 0;
    await client.getManifest(REPO, 'v1'); // ping done: the counts below are blob traffic only
    proxy.resetStats();
  });

  const blobGets = (): number => proxy.stats.log.filter((e) => e.path.includes('/blobs/')).length;
  const expect = async (offset: number, length: number): Promise<void> => {
    const got = await client.readBlobRange(REPO, BIG_LAYER, offset, length);
    assert.ok(got.equals(big.subarray(offset, offset + length)), `bytes ${offset}+${length}`);
  };

  test('429 with Retry-After, then success', async () => {
    proxy.rules.push({ match: { pathIncludes: '/blobs/' }, action: 'status', status: 429, retryAfter: 1, times: 1 });
    const t0 = Date.now();
    await expect(5000, 3000);
    assert.ok(Date.now() - t0 >= 950, 'waited for Retry-After');
    assert.equal(blobGets(), 2);
  });

  test('429 asking for a wait longer than we accept fails at once as REGISTRY_RATE_LIMITED', async () => {
    proxy.rules.push({ match: { pathIncludes: '/blobs/' }, action: 'status', status: 429, retryAfter: 3600 });
    await assert.rejects(client.readBlobRange(REPO, BIG_LAYER, 0, 10), hasCode(ErrorCodes.REGISTRY_RATE_LIMITED));
    assert.equal(blobGets(), 1);
  });

  test('503 twice, then success', async () => {
    proxy.rules.push({ match: { pathIncludes: '/blobs/' }, action: 'status', status: 503, times: 2 });
    await expect(100, 70000);
    assert.equal(blobGets(), 3);
  });

  test('500 for ever is REGISTRY_SERVER after the bounded retries', async () => {
    const c = new RegistryClient(proxy.host, { ...FAST, retries: 3 });
    try {
      proxy.rules.push({ match: { pathIncludes: '/manifests/' }, action: 'status', status: 500, body: '{"errors":[{"code":"UNKNOWN","message":"boom"}]}' });
      await assert.rejects(c.getManifest(REPO, 'v1'), (err: unknown) => {
        assert.ok(isStargzError(err, ErrorCodes.REGISTRY_SERVER));
        assert.match(err.message, /boom/);
        return true;
      });
      assert.equal(proxy.stats.log.filter((e) => e.path.includes('/manifests/')).length, 4);
    } finally {
      await c.close();
    }
  });

  test('404 is not retried', async () => {
    await assert.rejects(client.getManifest(REPO, 'missing'), hasCode(ErrorCodes.REGISTRY_NOT_FOUND));
    // The manifest, and the ping asking whether credentials would help (a pull pings only then).
    assert.deepEqual(proxy.stats.log.map((e) => e.path), [`/v2/${REPO}/manifests/missing`, '/v2/']);
  });

  test('connection reset before the answer, then success', async () => {
    proxy.rules.push({ match: { pathIncludes: '/blobs/' }, action: 'reset', times: 2 });
    await expect(0, 1000);
    assert.equal(blobGets(), 3);
  });

  test('body cut mid-way is resumed from where it broke', async () => {
    proxy.rules.push({ match: { hasRange: true }, action: 'truncate', truncateAfterBytes: 40_000, times: 1 });
    await expect(1000, 200_000);
    const ranges = proxy.stats.log.filter((e) => e.range).map((e) => e.range);
    assert.equal(ranges.length, 2);
    assert.equal(ranges[0], 'bytes=1000-200999');
    // The retry asks only for what is missing.
    const resumedAt = Number(/^bytes=(\d+)-/.exec(ranges[1]!)![1]);
    assert.ok(resumedAt > 1000 && resumedAt <= 41_000, `resumed at ${resumedAt}`);
    assert.equal(ranges[1], `bytes=${resumedAt}-200999`);
  });

  test('a stream cut mid-way is an error for the caller (no silent short blob)', async () => {
    proxy.rules.push({ match: { pathIncludes: '/blobs/' }, action: 'truncate', truncateAfterBytes: 100_000, times: 1 });
    const stream = await client.openBlobStream(REPO, BIG_LAYER);
    await assert.rejects(
      (async () => {
        for await (const chunk of stream) void chunk;
      })(),
      (err: unknown) => isStargzError(err) && err.retryable,
    );
  });

  test('a server that ignores Range: exact bytes anyway, and the quirk is remembered', async () => {
    proxy.rules.push({ action: 'ignore-range' });
    await expect(0, 100);
    await expect(50_000, 10_000);
    assert.equal(client.rangeSupport(), 'ignored');
    // We hung up after our bytes instead of reading the whole blob.
    const received = (await client.metrics.totals()).blobBytesReceived;
    assert.ok(received < big.length, `received ${received}`);
  });

  test('a dead registry is REGISTRY_UNREACHABLE after bounded retries', async () => {
    const c = new RegistryClient(reg.host, { ...FAST, retries: 2 });
    try {
      await c.readBlobRange(REPO, BIG_LAYER, 0, 10); // pinged and connected
      await reg.stopProcess();
      const t0 = Date.now();
      await assert.rejects(c.readBlobRange(REPO, BIG_LAYER, 0, 10), hasCode(ErrorCodes.REGISTRY_UNREACHABLE));
      assert.ok(Date.now() - t0 < 5000);
    } finally {
      await c.close();
      await reg.restart();
    }
  });

  test('nothing listening at all is REGISTRY_UNREACHABLE (HTTPS and HTTP both tried)', async () => {
    const port = await freePort();
    const c = new RegistryClient(`127.0.0.1:${port}`, { retryBaseDelayMs: 5, retries: 1 });
    try {
      await assert.rejects(c.getManifest(REPO, 'v1'), hasCode(ErrorCodes.REGISTRY_UNREACHABLE));
    } finally {
      await c.close();
    }
  });

  test('a registry slower than the timeout is TIMEOUT', async () => {
    const c = new RegistryClient(proxy.host, { ...FAST, retries: 1, requestTimeoutMs: 200 });
    try {
      proxy.rules.push({ match: { pathIncludes: '/manifests/' }, action: 'delay', delayMs: 2000 });
      await assert.rejects(c.getManifest(REPO, 'v1'), hasCode(ErrorCodes.TIMEOUT));
    } finally {
      await c.close();
    }
  });

  test('an aborted read stops at once with ABORTED', async () => {
    proxy.rules.push({ match: { pathIncludes: '/blobs/' }, action: 'delay', delayMs: 5000 });
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 50);
    const t0 = Date.now();
    await assert.rejects(client.readBlobRange(REPO, BIG_LAYER, 0, 10, ac.signal), hasCode(ErrorCodes.ABORTED));
    assert.ok(Date.now() - t0 < 2000);
  });
});

describe('blob redirects to a CDN (Basic auth registry)', () => {
  let reg: TestRegistry;
  let proxy: FaultProxy;
  let big: Buffer;

  before(async () => {
    reg = await startRegistry({ mode: 'basic' });
    await pushLayout(reg, 'edge', 'fixtures/edge:v1');
    proxy = await startFaultProxy(reg, { cdn: true });
    proxy.rules.push({ action: 'redirect' });
    big = await readFile(blobFile(BIG_LAYER));
  });
  after(async () => {
    await proxy?.close();
    await reg?.stop();
  });

  test('ranges, small blobs and streams come from the CDN, which never sees credentials', async () => {
    const c = new RegistryClient(proxy.host, { ...FAST, credentials: { username: reg.username!, password: reg.password! } });
    try {
      for (const [offset, length] of [
        [0, 100],
        [200_000, 50_000],
        [big.length - 10, 10],
      ] as Array<[number, number]>) {
        const got = await c.readBlobRange(REPO, BIG_LAYER, offset, length);
        assert.ok(got.equals(big.subarray(offset, offset + length)));
      }
      const cfg = await c.getBlob(REPO, EDGE_CONFIG);
      assert.ok(cfg.equals(await readFile(blobFile(EDGE_CONFIG))));
      const stream = await c.openBlobStream(REPO, BIG_LAYER);
      const h = createHash('sha256');
      for await (const chunk of stream) h.update(chunk as Buffer);
      assert.equal('sha256:' + h.digest('hex'), BIG_LAYER);

      assert.ok(proxy.stats.cdnRequests >= 3);
      assert.equal(proxy.stats.authHeadersSeenOnCdn, 0);
      // The CDN URL is reused: 3 range reads + stream of one blob, 1 of the config, went
      // through the registry only once per blob, and once more for the first one's 401 (no ping).
      assert.equal(proxy.stats.blobRequests, 3);
    } finally {
      await c.close();
    }
  });

  test('without credentials the registry refuses before any redirect', async () => {
    const c = new RegistryClient(proxy.host, FAST);
    try {
      await assert.rejects(c.readBlobRange(REPO, BIG_LAYER, 0, 10), hasCode(ErrorCodes.REGISTRY_AUTH));
    } finally {
      await c.close();
    }
  });
});
