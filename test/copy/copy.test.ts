// `stargz-get copy` run as a user runs it, between real registry processes: the target then
// serves the same manifests byte for byte, `sync` from it equals the oracle unpack of the
// source, blobs it has are skipped, blobs of its own other repositories are mounted, and its
// refusals come back as coded errors.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startRegistry, pushLayout, credsOf, layoutPath, type TestRegistry } from '../helpers/registry.js';
import { readFile, writeFile } from 'node:fs/promises';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { oracleUnpack, compareTrees, formatDiffs } from '../helpers/oracle.js';
import { registryFetch, OCI_ACCEPT, sha256Digest } from '../helpers/registry-fetch.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';
import { runCli } from '../helpers/cli.js';

interface CopyJson {
  digest: string;
  manifests: number;
  blobs: { copied: number; skipped: number; mounted: number };
  bytes: { copied: number; skipped: number; mounted: number };
  items: Array<{ digest: string; action: string }>;
}

/** The manifest bytes a registry serves for repo:ref, and their digest. */
async function manifestOf(reg: TestRegistry, repo: string, ref: string, host = reg.url): Promise<{ digest: string; bytes: Buffer }> {
  const res = await registryFetch(host, `/v2/${repo}/manifests/${ref}`, { headers: { accept: OCI_ACCEPT }, ...(credsOf(reg) ? { creds: credsOf(reg)! } : {}) });
  assert.equal(res.status, 200, `manifest ${repo}:${ref} on ${host}`);
  const bytes = Buffer.from(await res.arrayBuffer());
  return { digest: sha256Digest(bytes), bytes };
}

describe('copy between two registries', () => {
  let src: TestRegistry;
  let dst: TestRegistry; // Basic auth
  let proxy: FaultProxy; // in front of dst
  let work: string;
  const dest = (): string[] => ['--dest-creds', credsOf(dst)!];

  before(async () => {
    [src, dst] = await Promise.all([startRegistry({ mode: 'plain' }), startRegistry({ mode: 'basic' })]);
    proxy = await startFaultProxy(dst);
    work = await makeTempDir('copy-');
    for (const name of ['edge', 'mixed', 'multi']) await pushLayout(src, name, `fixtures/${name}:v1`);
  });
  after(async () => {
    await proxy?.close();
    await Promise.all([src?.stop(), dst?.stop()]);
    if (work) await removeDir(work);
  });

  const copy = (args: string[]) => runCli(['copy', ...args]);

  for (const name of ['edge', 'mixed']) {
    test(`${name}: the target serves the same manifest, and sync from it equals the oracle unpack of the source`, async () => {
      const r = await copy(['--json', ...dest(), `${src.host}/fixtures/${name}:v1`, `${dst.host}/copied/${name}:v1`]);
      assert.equal(r.code, 0, r.stderr);
      const out = JSON.parse(r.stdout) as CopyJson;
      const original = await manifestOf(src, `fixtures/${name}`, 'v1');
      assert.equal(out.digest, original.digest);
      assert.deepEqual(await manifestOf(dst, `copied/${name}`, 'v1'), original);
      assert.equal(out.blobs.copied, out.items.length);
      const rootfs = join(work, `sync-${name}`);
      const s = await runCli(['sync', '--credential', credsOf(dst)!, '--cache-dir', join(work, `cache-${name}`), `${dst.host}/copied/${name}:v1`, rootfs]);
      assert.equal(s.code, 0, s.stderr);
      const expected = await oracleUnpack(src, `fixtures/${name}:v1`, join(work, `oracle-${name}`));
      // umoci stamps directories the layers lack with the unpack time: not the image's.
      const diffs = (await compareTrees(expected, rootfs, { ignoreEmptyXattrs: true, ignoreDirMtime: true }));
      assert.deepEqual(diffs, [], formatDiffs(diffs));
    });
  }

  test('a second copy finds every blob on the target (HEAD) and uploads nothing', async () => {
    const ref = `${src.host}/fixtures/edge:v1`;
    let r = await copy([...dest(), ref, `${proxy.host}/again/edge:v1`]);
    assert.equal(r.code, 0, r.stderr);
    proxy.resetStats();
    r = await copy(['--json', ...dest(), ref, `${proxy.host}/again/edge:v1`]);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as CopyJson;
    assert.equal(out.blobs.skipped, out.items.length);
    assert.equal(out.blobs.copied + out.blobs.mounted, 0);
    const uploads = proxy.stats.log.filter((e) => e.method === 'PATCH' || (e.method === 'POST' && e.path.includes('/blobs/uploads/')));
    assert.deepEqual(uploads, [], 'no upload started');
    assert.equal(proxy.stats.log.filter((e) => e.method === 'HEAD' && e.status === 200).length, out.items.length);
  });

  test('blobs of another repository of the same registry are mounted, not uploaded', async () => {
    let r = await copy([...dest(), `${src.host}/fixtures/edge:v1`, `${proxy.host}/mount-from/edge:v1`]);
    assert.equal(r.code, 0, r.stderr);
    proxy.resetStats();
    r = await copy(['--json', '--src-creds', credsOf(dst)!, ...dest(), `${proxy.host}/mount-from/edge:v1`, `${proxy.host}/mount-to/edge:v1`]);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as CopyJson;
    assert.equal(out.blobs.mounted, out.items.length);
    const mounts = proxy.stats.log.filter((e) => e.method === 'POST' && e.path.includes('mount=') && e.path.includes('from=mount-from%2Fedge'));
    assert.equal(mounts.length, out.items.length);
    assert.ok(mounts.every((e) => e.status === 201), JSON.stringify(mounts));
    assert.equal(proxy.stats.log.filter((e) => e.method === 'PATCH').length, 0);
    assert.deepEqual(await manifestOf(dst, 'mount-to/edge', 'v1'), await manifestOf(src, 'fixtures/edge', 'v1'));
  });

  test('a registry that answers a mount with 202 gets the blob uploaded into that session', async () => {
    let r = await copy([...dest(), `${src.host}/fixtures/edge:v1`, `${proxy.host}/nomount-from/edge:v1`]);
    assert.equal(r.code, 0, r.stderr);
    // The proxy drops the mount parameters: the registry opens a plain upload session (202).
    proxy.rules = [{ match: { method: 'POST', pathIncludes: 'mount=' }, action: 'rewrite', rewritePath: (p) => p.replace(/\?.*$/, '') }];
    proxy.resetStats();
    r = await copy(['--json', '--src-creds', credsOf(dst)!, ...dest(), `${proxy.host}/nomount-from/edge:v1`, `${proxy.host}/nomount-to/edge:v1`]);
    proxy.rules = [];
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as CopyJson;
    assert.equal(out.blobs.copied, out.items.length);
    assert.equal(proxy.stats.log.filter((e) => e.method === 'POST').length, out.items.length, 'one session per blob: the 202 one');
    assert.deepEqual(await manifestOf(dst, 'nomount-to/edge', 'v1'), await manifestOf(src, 'fixtures/edge', 'v1'));
  });

  test('--all-platforms copies the index and every manifest it names, digests kept; without it, one platform', async () => {
    const index = await manifestOf(src, 'fixtures/multi', 'v1');
    let r = await copy(['--json', '--all-platforms', ...dest(), `${src.host}/fixtures/multi:v1`, `${dst.host}/copied/multi:all`]);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as CopyJson;
    assert.equal(out.digest, index.digest);
    assert.deepEqual(await manifestOf(dst, 'copied/multi', 'all'), index);
    const children = (JSON.parse(index.bytes.toString()) as { manifests: Array<{ digest: string; platform: { architecture: string } }> }).manifests;
    assert.equal(out.manifests, children.length + 1);
    for (const c of children) assert.equal((await manifestOf(dst, 'copied/multi', c.digest)).digest, c.digest);

    const arm = children.find((c) => c.platform.architecture === 'arm64')!;
    r = await copy(['--json', '--platform', 'linux/arm64', ...dest(), `${src.host}/fixtures/multi:v1`, `${dst.host}/copied/multi:arm64`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as CopyJson).digest, arm.digest);
    assert.equal((await manifestOf(dst, 'copied/multi', 'arm64')).digest, arm.digest);
  });

  test('wrong destination credentials: ERR_REGISTRY_AUTH, exit 4, the password never printed', async () => {
    const r = await copy(['--dest-creds', 'tester:wrong-password-123', `${src.host}/fixtures/edge:v1`, `${dst.host}/denied/edge:v1`]);
    assert.equal(r.code, 4, r.stderr);
    assert.match(r.stderr, /ERR_REGISTRY_AUTH/);
    assert.doesNotMatch(r.stderr + r.stdout, /wrong-password-123/);
  });

  test('a source blob whose bytes do not match its digest: ERR_DIGEST_MISMATCH, exit 6, and the target gets neither it nor the manifest', async () => {
    const manifest = JSON.parse((await manifestOf(src, 'fixtures/edge', 'v1')).bytes.toString()) as { layers: Array<{ digest: string; size: number }> };
    const victim = [...manifest.layers].sort((a, b) => b.size - a.size)[0]!;
    const bytes = await readFile(join(layoutPath('edge'), 'blobs', 'sha256', victim.digest.slice(7)));
    bytes[Math.floor(bytes.length / 2)]! ^= 0xff; // one flipped byte, same size
    const bad = join(work, 'flipped.blob');
    await writeFile(bad, bytes);
    const source = await startFaultProxy(src);
    try {
      source.rules.push({ match: { pathIncludes: `/blobs/${victim.digest}` }, action: 'serve-file', file: bad });
      const r = await copy(['--retries', '0', ...dest(), `${source.host}/fixtures/edge:v1`, `${dst.host}/flipped/edge:v1`]);
      assert.equal(r.code, 6, r.stderr);
      assert.match(r.stderr, /ERR_DIGEST_MISMATCH/);
      const auth = { creds: credsOf(dst)! };
      assert.equal((await registryFetch(dst.url, `/v2/flipped/edge/blobs/${victim.digest}`, { method: 'HEAD', ...auth })).status, 404, 'the bad blob was not completed');
      assert.equal((await registryFetch(dst.url, '/v2/flipped/edge/manifests/v1', { method: 'HEAD', headers: { accept: OCI_ACCEPT }, ...auth })).status, 404, 'no manifest');
    } finally {
      await source.close();
    }
  });

  test("the configuration file's quiet and timeout reach copy, on both sides", async () => {
    const config = join(work, 'copy.toml');
    await writeFile(config, 'quiet = true\ntimeout = "1s"\nretries = 0\n');
    const edge = `${src.host}/fixtures/edge:v1`;
    let r = await copy(['--config', config, ...dest(), edge, `${dst.host}/config-quiet/edge:v1`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '', 'quiet: no notice per blob, no summary');
    // An answer 5 s late: within the default timeout, past the file's 1 s.
    const late = { action: 'delay' as const, delayMs: 5000 };
    proxy.rules = [{ match: { method: 'PUT', pathIncludes: '/manifests/' }, ...late }];
    r = await copy(['--config', config, ...dest(), edge, `${proxy.host}/config-slow-target/edge:v1`]);
    proxy.rules = [];
    assert.match(r.stderr, /ERR_TIMEOUT/, 'the target side');
    const source = await startFaultProxy(src);
    try {
      source.rules.push({ match: { method: 'GET', pathIncludes: '/manifests/' }, ...late });
      r = await copy(['--config', config, ...dest(), `${source.host}/fixtures/edge:v1`, `${dst.host}/config-slow-source/edge:v1`]);
      assert.match(r.stderr, /ERR_TIMEOUT/, 'the source side');
    } finally {
      await source.close();
    }
  });

  const refusals: Array<{ name: string; rule: FaultProxy['rules'][number]; code: string }> = [
    { name: 'a PATCH answered 413', rule: { match: { method: 'PATCH' }, action: 'status', status: 413, body: '{"errors":[{"code":"SIZE_INVALID","message":"blob too large"}]}' }, code: 'ERR_BLOB_REFUSED' },
    {
      name: 'a completing PUT answered 400 DIGEST_INVALID',
      rule: { match: { method: 'PUT', pathIncludes: 'digest=' }, action: 'status', status: 400, body: '{"errors":[{"code":"DIGEST_INVALID","message":"provided digest did not match uploaded content"}]}' },
      code: 'ERR_BLOB_REFUSED',
    },
    {
      name: 'a manifest PUT answered 400 MANIFEST_INVALID',
      rule: { match: { method: 'PUT', pathIncludes: '/manifests/' }, action: 'status', status: 400, body: '{"errors":[{"code":"MANIFEST_INVALID","message":"manifest invalid"}]}' },
      code: 'ERR_MANIFEST_REFUSED',
    },
    { name: 'a manifest PUT answered 415', rule: { match: { method: 'PUT', pathIncludes: '/manifests/' }, action: 'status', status: 415, body: 'unsupported media type' }, code: 'ERR_MANIFEST_REFUSED' },
  ];
  for (const { name, rule, code } of refusals) {
    test(`${name}: ${code}, exit 5, as JSON with --json`, async () => {
      proxy.rules = [rule];
      const target = `${proxy.host}/refused-${code.toLowerCase()}-${rule.status}/edge:v1`;
      const r = await copy(['--json', ...dest(), `${src.host}/fixtures/edge:v1`, target]);
      proxy.rules = [];
      assert.equal(r.code, 5, r.stderr);
      const err = (JSON.parse(r.stderr.trim().split('\n').pop()!) as { error: { code: string; message: string } }).error;
      assert.equal(err.code, code, err.message);
      assert.equal(r.stdout, '');
    });
  }
});
