// The registry helper: each auth mode starts, accepts a push of the edge layout with digests
// unchanged, serves the manifest through the auth flow, and stop() leaves nothing behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startRegistry, pushLayout, type RegistryMode } from '../helpers/registry.js';
import { registryFetch, OCI_ACCEPT, sha256Digest } from '../helpers/registry-fetch.js';
import { layoutsDir } from '../helpers/paths.js';

const edgeIndex = JSON.parse(readFileSync(join(layoutsDir, 'edge', 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
const edgeManifestDigest = edgeIndex.manifests[0]!.digest;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

for (const mode of ['plain', 'basic', 'token'] as RegistryMode[]) {
  test(`registry in ${mode} mode serves a pushed layout with its digests`, async () => {
    const reg = await startRegistry({ mode });
    try {
      assert.match(reg.host, /^127\.0\.0\.1:\d+$/);
      assert.ok(alive(reg.pid));
      await pushLayout(reg, 'edge', 'fixtures/edge:v1');
      const creds = reg.username ? `${reg.username}:${reg.password}` : undefined;
      if (mode !== 'plain') {
        const anon = await registryFetch(reg.url, '/v2/fixtures/edge/manifests/v1', { headers: { accept: OCI_ACCEPT } });
        assert.equal(anon.status, 401, 'anonymous access must be refused');
        const wrong = await registryFetch(reg.url, '/v2/fixtures/edge/manifests/v1', { headers: { accept: OCI_ACCEPT }, creds: 'tester:wrong' });
        assert.equal(wrong.status, 401, 'wrong password must be refused');
      }
      const res = await registryFetch(reg.url, '/v2/fixtures/edge/manifests/v1', { headers: { accept: OCI_ACCEPT }, creds });
      assert.equal(res.status, 200);
      const body = new Uint8Array(await res.arrayBuffer());
      assert.equal(sha256Digest(body), edgeManifestDigest);
      assert.equal(res.headers.get('docker-content-digest'), edgeManifestDigest);
      const manifest = JSON.parse(Buffer.from(body).toString()) as { layers: Array<{ digest: string; annotations?: Record<string, string> }> };
      assert.ok(manifest.layers.every((l) => l.annotations?.['containerd.io/snapshot/stargz/toc.digest']));
      const layer = manifest.layers[0]!;
      assert.ok(existsSync(reg.blobPath(layer.digest)));
      const blob = await registryFetch(reg.url, `/v2/fixtures/edge/blobs/${layer.digest}`, { creds });
      assert.equal(sha256Digest(new Uint8Array(await blob.arrayBuffer())), layer.digest);
      if (mode === 'token') assert.ok(reg.tokenServer!.issued >= 2);

      // restart keeps storage and the port; stopProcess makes it unreachable
      const { pid, url } = reg;
      await reg.restart();
      assert.equal(reg.url, url);
      assert.ok(!alive(pid));
      const again = await registryFetch(reg.url, '/v2/fixtures/edge/manifests/v1', { headers: { accept: OCI_ACCEPT }, creds });
      assert.equal(again.status, 200);
      await again.arrayBuffer();
      await reg.stopProcess();
      await assert.rejects(fetch(reg.url + '/v2/'));
      await reg.restart();
      assert.equal((await registryFetch(reg.url, '/v2/', { creds })).status, 200);
    } finally {
      const { pid, dataDir } = reg;
      await reg.stop();
      assert.ok(!alive(pid), 'registry process must be gone');
      assert.ok(!existsSync(dataDir), 'dataDir must be removed');
      if (reg.tokenServer) await assert.rejects(fetch(reg.tokenServer.url));
    }
  });
}

test('token mode: anonymous pull tokens are pull-only when anonymousPull is set', async () => {
  const reg = await startRegistry({ mode: 'token', anonymousPull: true });
  try {
    await pushLayout(reg, 'edge', 'fixtures/edge:v1');
    const res = await registryFetch(reg.url, '/v2/fixtures/edge/manifests/v1', { headers: { accept: OCI_ACCEPT } });
    assert.equal(res.status, 200);
    assert.equal(sha256Digest(new Uint8Array(await res.arrayBuffer())), edgeManifestDigest);
    // an anonymous push must be refused: the token carries no push action
    const up = await registryFetch(reg.url, '/v2/fixtures/edge/blobs/uploads/', { method: 'POST' });
    assert.equal(up.status, 401);
    const wrong = await fetch(`${reg.tokenServer!.url}?service=stargz-test-registry&scope=repository:fixtures/edge:pull`, {
      headers: { authorization: 'Basic ' + Buffer.from('tester:nope').toString('base64') },
    });
    assert.equal(wrong.status, 401);
  } finally {
    await reg.stop();
  }
});

test('multi layout is pushed as an index with all its images', async () => {
  const reg = await startRegistry();
  try {
    await pushLayout(reg, 'multi', 'fixtures/multi:v1');
    const idx = JSON.parse(readFileSync(join(layoutsDir, 'multi', 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
    const res = await registryFetch(reg.url, '/v2/fixtures/multi/manifests/v1', { headers: { accept: OCI_ACCEPT } });
    const body = new Uint8Array(await res.arrayBuffer());
    assert.equal(sha256Digest(body), idx.manifests[0]!.digest);
    const list = JSON.parse(Buffer.from(body).toString()) as { manifests: Array<{ digest: string }> };
    for (const m of list.manifests) {
      const r = await registryFetch(reg.url, `/v2/fixtures/multi/manifests/${m.digest}`, { headers: { accept: OCI_ACCEPT } });
      assert.equal(r.status, 200);
      await r.arrayBuffer();
    }
  } finally {
    await reg.stop();
  }
});
