// RegistryClient against a real registry (no auth): manifests, indexes, blobs and ranges.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { RegistryClient } from '../../src/registry/client.js';
import { parseReference } from '../../src/reference/reference.js';
import { ErrorCodes, isStargzError, type ErrorCode } from '../../src/errors.js';
import { pushLayout, startRegistry, type TestRegistry } from '../helpers/registry.js';
import { layoutsDir } from '../helpers/paths.js';

const EDGE_MANIFEST = 'sha256:f8db2b250d97211e124f909aae96c22e87944dddbcac6702e9b3373399c644b1';
const MIXED_MANIFEST = 'sha256:239f2a3aef5266788372e372b0cde1360ce2b9223baba08a6d92a26c5b6b456a';
const MULTI_INDEX = 'sha256:c954d35ac72d7091298358bcc89661ea420104a0c47fb1df314d41eb50297ec0';
const EDGE_CONFIG = 'sha256:61c5785e560c0bb4257ae0a82b6eff977ff98fe835135752eaf7ddb799674628';
const BIG_LAYER = 'sha256:c5e4a3cc121f3d03e1c566372a11782f97ac049ff3b0518ca8a3faf8fd9d73f8'; // 533722 bytes

const blobFile = (digest: string): string => join(layoutsDir, 'edge', 'blobs', 'sha256', digest.slice(7));
const hasCode = (code: ErrorCode) => (err: unknown) => isStargzError(err, code);

describe('RegistryClient on a plain registry', () => {
  let reg: TestRegistry;
  let client: RegistryClient;
  let big: Buffer;

  before(async () => {
    reg = await startRegistry({ mode: 'plain' });
    await pushLayout(reg, 'edge', 'fixtures/edge:v1');
    await pushLayout(reg, 'multi', 'fixtures/multi:v1', { all: true });
    big = await readFile(blobFile(BIG_LAYER));
    // No plainHttp: a loopback registry is tried over HTTPS first, then HTTP, as Docker does.
    client = new RegistryClient(reg.host, { retryBaseDelayMs: 5 });
  });
  after(async () => {
    await client?.close();
    await reg?.stop();
  });

  test('resolveImage of a single manifest by tag', async () => {
    const r = await client.resolveImage(parseReference(`${reg.host}/fixtures/edge:v1`));
    assert.equal(r.manifestDigest, EDGE_MANIFEST);
    assert.equal('sha256:' + createHash('sha256').update(r.manifestBytes).digest('hex'), EDGE_MANIFEST);
    assert.equal(r.manifest.mediaType, 'application/vnd.oci.image.manifest.v1+json');
    assert.equal(r.manifest.config.digest, EDGE_CONFIG);
    assert.equal(r.manifest.layers.length, 3);
    assert.equal(r.manifest.layers[1]!.digest, BIG_LAYER);
    assert.ok(r.manifest.layers[0]!.annotations?.['containerd.io/snapshot/stargz/toc.digest']);
    assert.equal(r.indexDigest, undefined);
  });

  test('resolveImage by digest', async () => {
    const r = await client.resolveImage(parseReference(`${reg.host}/fixtures/edge@${EDGE_MANIFEST}`));
    assert.equal(r.manifestDigest, EDGE_MANIFEST);
  });

  test('resolveImage of an index picks the platform', async () => {
    const ref = parseReference(`${reg.host}/fixtures/multi:v1`);
    const amd = await client.resolveImage(ref, { os: 'linux', architecture: 'amd64' });
    assert.equal(amd.manifestDigest, EDGE_MANIFEST);
    assert.equal(amd.indexDigest, MULTI_INDEX);
    assert.deepEqual(amd.platform, { os: 'linux', architecture: 'amd64' });
    const arm = await client.resolveImage(ref, { os: 'linux', architecture: 'arm64' });
    assert.equal(arm.manifestDigest, MIXED_MANIFEST);
    assert.deepEqual(arm.platform, { os: 'linux', architecture: 'arm64', variant: 'v8' });
    const armV8 = await client.resolveImage(ref, { os: 'linux', architecture: 'arm64', variant: 'v8' });
    assert.equal(armV8.manifestDigest, MIXED_MANIFEST);
    // The default is this host's platform; the fixture has amd64 and arm64.
    if (process.arch === 'x64' || process.arch === 'arm64') {
      const def = await client.resolveImage(ref);
      assert.equal(def.manifestDigest, process.arch === 'x64' ? EDGE_MANIFEST : MIXED_MANIFEST);
    }
  });

  test('a platform the index lacks is PLATFORM_NOT_FOUND, naming what there is', async () => {
    const ref = parseReference(`${reg.host}/fixtures/multi:v1`);
    await assert.rejects(client.resolveImage(ref, { os: 'linux', architecture: 's390x' }), (err: unknown) => {
      assert.ok(isStargzError(err, ErrorCodes.PLATFORM_NOT_FOUND));
      assert.match(err.message, /linux\/amd64/);
      assert.match(err.message, /linux\/arm64\/v8/);
      return true;
    });
  });

  test('missing tag, repository and blob are REGISTRY_NOT_FOUND', async () => {
    await assert.rejects(client.resolveImage(parseReference(`${reg.host}/fixtures/edge:nope`)), hasCode(ErrorCodes.REGISTRY_NOT_FOUND));
    await assert.rejects(client.getManifest('fixtures/absent', 'v1'), hasCode(ErrorCodes.REGISTRY_NOT_FOUND));
    const absent = 'sha256:' + '0'.repeat(64);
    await assert.rejects(client.readBlobRange('fixtures/edge', absent, 0, 10), hasCode(ErrorCodes.REGISTRY_NOT_FOUND));
    await assert.rejects(client.getBlob('fixtures/edge', absent), hasCode(ErrorCodes.REGISTRY_NOT_FOUND));
  });

  test('getManifest verifies a digest and reports the media type', async () => {
    const m = await client.getManifest('fixtures/multi', MULTI_INDEX);
    assert.equal(m.digest, MULTI_INDEX);
    assert.equal(m.mediaType, 'application/vnd.oci.image.index.v1+json');
    await assert.rejects(client.getManifest('fixtures/edge', 'bad tag!'), hasCode(ErrorCodes.REFERENCE_INVALID));
    await assert.rejects(client.getManifest('fixtures/edge', 'sha512:abcd'), hasCode(ErrorCodes.REFERENCE_INVALID));
  });

  test('getBlob returns a verified small blob, bounded in size', async () => {
    const cfg = await client.getBlob('fixtures/edge', EDGE_CONFIG);
    assert.deepEqual(cfg, await readFile(blobFile(EDGE_CONFIG)));
    await assert.rejects(client.getBlob('fixtures/edge', BIG_LAYER, 1000), hasCode(ErrorCodes.REGISTRY_PROTOCOL));
  });

  test('readBlobRange returns exactly the bytes of the blob file', async () => {
    const cases: Array<[number, number]> = [
      [0, 1],
      [0, 100],
      [1, 65536],
      [12345, 54321],
      [big.length - 1, 1],
      [big.length - 30000, 30000],
      [0, big.length],
    ];
    for (const [offset, length] of cases) {
      const got = await client.readBlobRange('fixtures/edge', BIG_LAYER, offset, length);
      assert.equal(got.length, length);
      assert.ok(got.equals(big.subarray(offset, offset + length)), `bytes ${offset}+${length}`);
    }
    assert.equal(client.rangeSupport(), 'yes');
    assert.equal((await client.readBlobRange('fixtures/edge', BIG_LAYER, 10, 0)).length, 0);
  });

  test('many concurrent range reads', async () => {
    const reads = Array.from({ length: 40 }, (_, i) => {
      const offset = (i * 13001) % (big.length - 5000);
      return client.readBlobRange('fixtures/edge', BIG_LAYER, offset, 5000).then((b) => assert.ok(b.equals(big.subarray(offset, offset + 5000))));
    });
    await Promise.all(reads);
  });

  test('a range past the end of the blob is REGISTRY_PROTOCOL', async () => {
    await assert.rejects(client.readBlobRange('fixtures/edge', BIG_LAYER, big.length - 10, 20), hasCode(ErrorCodes.REGISTRY_PROTOCOL));
    await assert.rejects(client.readBlobRange('fixtures/edge', BIG_LAYER, big.length + 10, 20), hasCode(ErrorCodes.REGISTRY_PROTOCOL));
  });

  test('openBlobStream streams the whole blob', async () => {
    const stream = await client.openBlobStream('fixtures/edge', BIG_LAYER);
    const h = createHash('sha256');
    for await (const chunk of stream) h.update(chunk as Buffer);
    assert.equal('sha256:' + h.digest('hex'), BIG_LAYER);
  });

  test('metrics count requests and bytes, blob bytes by layer', async () => {
    const c = new RegistryClient(reg.host, { plainHttp: true });
    try {
      await c.readBlobRange('fixtures/edge', BIG_LAYER, 100, 4096);
      const t = await c.metrics.totals();
      assert.equal(t.blobRequests, 1);
      assert.equal(t.blobBytesReceived, 4096);
      assert.equal(t.requests, 1); // the GET alone: a plain-HTTP registry is not pinged
      assert.ok(t.bytesReceived >= 4096);
      assert.deepEqual((await c.metrics.layers()).get(BIG_LAYER), { blobBytes: 4096, blobRequests: 1, readRequestedBytes: 0, readDeliveredBytes: 0, readProgressBytes: 0 });
    } finally {
      await c.close();
    }
  });

  test('contradictory or unbounded options are refused when the client is built', () => {
    assert.throws(() => new RegistryClient(reg.host, { plainHttp: true, insecure: true }), hasCode(ErrorCodes.USAGE));
    assert.throws(() => new RegistryClient(reg.host, { retries: -1 }), hasCode(ErrorCodes.USAGE));
    assert.throws(() => new RegistryClient(reg.host, { maxConnectionsPerHost: 0 }), hasCode(ErrorCodes.USAGE));
    assert.throws(() => new RegistryClient(reg.host, { requestTimeoutMs: 0 }), hasCode(ErrorCodes.USAGE));
  });
});
