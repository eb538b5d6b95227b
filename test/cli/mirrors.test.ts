// Mirrors and pull-through caches through the real CLI: hosts.toml and --mirror, a real
// docker-registry in pull-through mode as the mirror, a fault proxy logging what it is asked,
// failing mirrors falling through to the origin, and the result compared with the oracle.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startRegistry, pushLayout, freePort, type TestRegistry } from '../helpers/registry.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';
import { runCli } from '../helpers/cli.js';
import { oracleUnpack, compareTrees, formatDiffs } from '../helpers/oracle.js';

const CMP = { ignoreEmptyXattrs: true, ignoreDirMtime: true };

describe('mirrors', () => {
  let origin: TestRegistry; // holds the image
  let cache: TestRegistry; // pull-through cache of origin
  let front: FaultProxy; // in front of the cache: logs paths, injects faults
  let work: string;
  let expected: string;
  let deadHost: string; // a registry name where nothing listens
  let digest: string;
  before(async () => {
    origin = await startRegistry({ mode: 'plain' });
    await pushLayout(origin, 'edge', 'fixtures/edge:v1');
    cache = await startRegistry({ mode: 'plain', proxyRemoteUrl: origin.url });
    front = await startFaultProxy(cache);
    work = await makeTempDir('mirrors-');
    expected = await oracleUnpack(origin, 'fixtures/edge:v1', join(work, 'oracle'));
    deadHost = `127.0.0.1:${await freePort()}`;
    const info = await runCli(['info', '--json', `${origin.host}/fixtures/edge:v1`, '--cache-dir', join(work, 'c0')]);
    assert.equal(info.code, 0, info.stderr);
    digest = JSON.parse(info.stdout).manifestDigest;
  });
  after(async () => {
    await front?.close();
    await cache?.stop();
    await origin?.stop();
    if (work) await removeDir(work);
  });

  let n = 0;
  /** A hosts dir with one hosts.toml for `registry`. */
  async function hostsDir(registry: string, toml: string): Promise<string> {
    const dir = join(work, `hosts-${++n}`);
    await mkdir(join(dir, registry), { recursive: true });
    await writeFile(join(dir, registry, 'hosts.toml'), toml);
    return dir;
  }
  const sync = (source: string, extra: string[]) => {
    const dest = join(work, `out-${++n}`);
    return runCli(['sync', source, dest, '--cache-dir', join(work, `cache-${n}`), '--retries', '1', '--timeout', '5s', ...extra]).then((r) => ({ ...r, dest }));
  };
  const v2Paths = () => front.stats.log.map((e) => e.path).filter((p) => p.startsWith('/v2/fixtures/'));

  test('hosts.toml: a pull-through cache serves an image whose registry is down, every request with ?ns=', async () => {
    front.rules = [];
    front.resetStats();
    const dir = await hostsDir(deadHost, `server = "http://${deadHost}"\n\n[host."http://${front.host}"]\n  capabilities = ["pull", "resolve"]\n`);
    const r = await sync(`${deadHost}/fixtures/edge:v1/`, ['--hosts-dir', dir]);
    assert.equal(r.code, 0, r.stderr);
    const d = await compareTrees(expected, r.dest, CMP);
    assert.deepEqual(d, [], formatDiffs(d));
    const paths = v2Paths();
    assert.ok(paths.some((p) => p.includes('/manifests/v1')), paths.join('\n'));
    assert.ok(paths.some((p) => p.includes('/blobs/')), paths.join('\n'));
    for (const p of paths) assert.ok(p.endsWith(`?ns=${encodeURIComponent(deadHost)}`), `no ?ns=: ${p}`);
  });

  test('a pull-only mirror is never asked to resolve a tag; by digest it serves the image', async () => {
    front.rules = [];
    front.resetStats();
    const dir = await hostsDir(deadHost, `server = "http://${deadHost}"\n\n[host."http://${front.host}"]\n  capabilities = ["pull"]\n`);
    const byTag = await sync(`${deadHost}/fixtures/edge:v1/`, ['--hosts-dir', dir]);
    assert.equal(byTag.code, 5, byTag.stderr); // the origin, the only resolve host, is down
    assert.match(byTag.stderr, /ERR_REGISTRY_UNREACHABLE/);
    assert.ok(!v2Paths().some((p) => p.includes('/manifests/v1')), 'the pull-only mirror was asked for the tag');
    const byDigest = await sync(`${deadHost}/fixtures/edge@${digest}/`, ['--hosts-dir', dir]);
    assert.equal(byDigest.code, 0, byDigest.stderr);
    const d = await compareTrees(expected, byDigest.dest, CMP);
    assert.deepEqual(d, [], formatDiffs(d));
  });

  test('a mirror answering 503 falls through to the origin, with one log line', async () => {
    front.rules = [{ action: 'status', status: 503 }];
    front.resetStats();
    const dir = await hostsDir(origin.host, `[host."http://${front.host}"]\n  capabilities = ["pull", "resolve"]\n`);
    const r = await sync(`${origin.host}/fixtures/edge:v1/`, ['--hosts-dir', dir]);
    assert.equal(r.code, 0, r.stderr);
    const d = await compareTrees(expected, r.dest, CMP);
    assert.deepEqual(d, [], formatDiffs(d));
    const lines = r.stderr.split('\n').filter((l) => l.includes(front.host));
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, /ERR_REGISTRY_SERVER.*trying 127\.0\.0\.1:/);
    assert.ok(front.stats.requests >= 1, 'the mirror was tried first');
  });

  test('a mirror serving a swapped manifest falls through to the origin, with one log line', async () => {
    const swapped = join(work, 'swapped.json');
    await writeFile(swapped, JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', layers: [] }));
    front.rules = [{ action: 'serve-file', file: swapped, contentType: 'application/vnd.oci.image.manifest.v1+json', match: { pathIncludes: '/manifests/' } }];
    front.resetStats();
    const dir = await hostsDir(origin.host, `[host."http://${front.host}"]\n`);
    const r = await sync(`${origin.host}/fixtures/edge@${digest}/`, ['--hosts-dir', dir]);
    assert.equal(r.code, 0, r.stderr);
    const d = await compareTrees(expected, r.dest, CMP);
    assert.deepEqual(d, [], formatDiffs(d));
    const lines = r.stderr.split('\n').filter((l) => l.includes(front.host));
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, /ERR_DIGEST_MISMATCH/);
    assert.ok(front.stats.log.some((e) => e.rule === 'serve-file'), 'the mirror was asked first');
  });

  test('--mirror URL from the command line, before a dead origin', async () => {
    front.rules = [];
    front.resetStats();
    const r = await sync(`${deadHost}/fixtures/edge:v1/`, ['--mirror', `http://${front.host}`, '--hosts-dir', join(work, 'none')]);
    assert.equal(r.code, 0, r.stderr);
    const d = await compareTrees(expected, r.dest, CMP);
    assert.deepEqual(d, [], formatDiffs(d));
    assert.ok(v2Paths().length > 0 && v2Paths().every((p) => p.endsWith(`?ns=${encodeURIComponent(deadHost)}`)), v2Paths().join('\n'));
  });
});
