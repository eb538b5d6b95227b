// Issue 9: "a mirror that fails (… a blob whose bytes don't verify) falls through to the next
// host and finally to the origin, with one log line each". The mirror here is a real
// docker-registry in pull-through mode behind a fault proxy whose 'serve-file' rule swaps one
// layer blob for a tampered copy that inflates cleanly and keeps its size (hostile-blobs.ts):
// only a digest check can tell, and it runs after the bytes arrived, so the fall-through must
// reach past the HTTP exchange (BlobSource.verified). The origin is behind a second fault
// proxy, to see that it was asked and to make it bad too.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startRegistry, pushLayout, type TestRegistry } from '../helpers/registry.js';
import { startFaultProxy, type FaultProxy, type FaultRule } from '../helpers/fault-proxy.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';
import { runCli, type CliResult } from '../helpers/cli.js';
import { oracleUnpack, compareTrees, formatDiffs } from '../helpers/oracle.js';
import { fixtureLayers, openFixtureLayer, type FixtureLayer } from '../estargz/fixture-layers.js';
import { sameSizeToc, tamperChunk, tamperedPlainGzip } from '../helpers/hostile-blobs.js';
import { pushCraftedImage, rewriteToc, writeLayout } from '../helpers/craft-image.js';
import { createHash } from 'node:crypto';
import { swapBlob, MULTI_CHUNK_FILE } from '../helpers/integrity-images.js';
import { layoutsDir } from '../helpers/paths.js';
import { RegistryClient } from '../../src/registry/client.js';
import { registryHosts } from '../../src/registry/hosts.js';

const CMP = { ignoreEmptyXattrs: true, ignoreDirMtime: true };

describe('mirrors: bytes that do not verify fall through to the next host', () => {
  let origin: TestRegistry;
  let originFront: FaultProxy; // the image's registry as the CLI names it
  let cache: TestRegistry; // pull-through cache of origin: the mirror
  let mirror: FaultProxy; // in front of the cache: swaps blobs
  let work: string;
  const oracle: Record<string, string> = {};
  let edge: FixtureLayer[];
  let mixed: FixtureLayer[];
  const files = { chunk: '', toc: '', plain: '', noChunkDigest: '' };
  let noChunkLayer = ''; // the digest of fixtures/no-chunk-digest's layer 0

  before(async () => {
    origin = await startRegistry({ mode: 'plain' });
    await pushLayout(origin, 'edge', 'fixtures/edge:v1');
    await pushLayout(origin, 'mixed', 'fixtures/mixed:v1');
    originFront = await startFaultProxy(origin);
    cache = await startRegistry({ mode: 'plain', proxyRemoteUrl: origin.url });
    mirror = await startFaultProxy(cache);
    work = await makeTempDir('mirror-verify-');
    // edge with bin/tool's chunks lacking chunkDigest: only its file digest vouches for them.
    const edgeLayers = fixtureLayers('edge');
    const noChunk = rewriteToc(edgeLayers[0]!.blob, (toc) => {
      for (const e of toc.entries) if (e.name.replace(/^\.?\//, '') === MULTI_CHUNK_FILE) delete e.chunkDigest;
    });
    const layout = await writeLayout(join(work, 'no-chunk-digest'), { layers: [noChunk, ...edgeLayers.slice(1).map((l) => ({ blob: l.blob, annotations: l.annotations }))] });
    await pushCraftedImage(origin, layout, 'fixtures/no-chunk-digest:v1');
    noChunkLayer = 'sha256:' + createHash('sha256').update(noChunk.blob).digest('hex');
    const noChunkTool = openFixtureLayer({ ...edgeLayers[0]!, blob: noChunk.blob }).index.entries.get(MULTI_CHUNK_FILE)!;
    files.noChunkDigest = join(work, 'no-chunk-digest.blob');
    await writeFile(files.noChunkDigest, tamperChunk(noChunk.blob, noChunkTool.chunks[noChunkTool.chunks.length - 1]!));
    for (const name of ['edge', 'mixed', 'no-chunk-digest']) oracle[name] = await oracleUnpack(origin, `fixtures/${name}:v1`, join(work, `oracle-${name}`));
    edge = fixtureLayers('edge');
    mixed = fixtureLayers('mixed');
    assert.ok(!mixed[0]!.annotations['containerd.io/snapshot/stargz/toc.digest'] && mixed[0]!.mediaType.endsWith('gzip'), 'mixed layer 0 is plain tar+gzip');
    const tool = openFixtureLayer(edge[0]!).index.entries.get(MULTI_CHUNK_FILE)!;
    // bin/tool's last chunk overwritten, TOC intact: the TOC verifies, the chunk does not.
    files.chunk = join(work, 'chunk.blob');
    await writeFile(files.chunk, tamperChunk(edge[0]!.blob, tool.chunks[tool.chunks.length - 1]!));
    // etc/passwd's mode changed in the TOC, chunks intact: the TOC digest does not match.
    files.toc = join(work, 'toc.blob');
    const wrongToc = rewriteToc(edge[0]!.blob, (toc) => {
      for (const e of toc.entries) if (e.name.replace(/^\.?\//, '') === 'etc/passwd') e.mode = 0o777;
    });
    await writeFile(files.toc, sameSizeToc(edge[0]!.blob, wrongToc.blob));
    // A plain layer with a file's bytes changed: only the layer digest, at the end of the stream, tells.
    files.plain = join(work, 'plain.blob');
    await writeFile(files.plain, tamperedPlainGzip(mixed[0]!.blob));
  });
  after(async () => {
    await mirror?.close();
    await originFront?.close();
    await cache?.stop();
    await origin?.stop();
    if (work) await removeDir(work);
  });

  let n = 0;
  async function sync(image: string, viaHostsToml: boolean): Promise<CliResult & { dest: string }> {
    const dest = join(work, `out-${++n}`);
    const hostsDir = join(work, `hosts-${n}`);
    await mkdir(join(hostsDir, originFront.host), { recursive: true });
    await writeFile(join(hostsDir, originFront.host, 'hosts.toml'), viaHostsToml ? `[host."${mirror.url}"]\n  capabilities = ["pull", "resolve"]\n` : '');
    const extra = viaHostsToml ? [] : ['--mirror', mirror.url];
    const r = await runCli(['sync', `${originFront.host}/fixtures/${image}:v1/`, dest, '--plain-http', '--cache-dir', join(work, `cache-${n}`), '--retries', '1', '--timeout', '10s', '--hosts-dir', hostsDir, ...extra]);
    return { ...r, dest };
  }
  function reset(mirrorRules: FaultRule[], originRules: FaultRule[] = []): void {
    mirror.rules = mirrorRules;
    originFront.rules = originRules;
    mirror.resetStats();
    originFront.resetStats();
  }
  /** The one notice naming the mirror, with its error code. */
  function oneNotice(r: CliResult, code: string): void {
    const lines = r.stderr.split('\n').filter((l) => l.includes(mirror.host));
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, new RegExp(`${code}.*passing over it from now on, trying ${originFront.host.replace(/\./g, '\\.')}`));
  }
  async function sameAsOracle(name: string, dest: string): Promise<void> {
    const d = await compareTrees(oracle[name]!, dest, CMP);
    assert.deepEqual(d, [], formatDiffs(d));
  }
  const servedSwapped = (): boolean => mirror.stats.log.some((e) => e.rule === 'serve-file');
  const originServed = (digest: string): boolean => originFront.stats.log.some((e) => e.path.includes(`/blobs/${digest}`) && (e.status === 200 || e.status === 206));

  test('a mirror serving a chunk that does not match its chunk digest: the range is fetched again from the origin', async () => {
    reset([swapBlob(edge[0]!.digest, files.chunk)]);
    const r = await sync('edge', true);
    assert.equal(r.code, 0, r.stderr);
    await sameAsOracle('edge', r.dest);
    oneNotice(r, 'ERR_DIGEST_MISMATCH');
    assert.ok(servedSwapped(), 'the mirror was asked for the layer');
    assert.ok(originServed(edge[0]!.digest), 'the origin served the layer after');
  });

  // Issue 9: whole-file verification (chunks without chunkDigest) failed the read on a mirror's bad bytes.
  test('a mirror serving digest-less chunks that do not add up to the file digest: the file is fetched again from the origin', async () => {
    reset([swapBlob(noChunkLayer, files.noChunkDigest)]);
    const r = await sync('no-chunk-digest', true);
    assert.equal(r.code, 0, r.stderr);
    await sameAsOracle('no-chunk-digest', r.dest);
    oneNotice(r, 'ERR_DIGEST_MISMATCH');
    assert.match(r.stderr, /content has digest/);
    assert.ok(servedSwapped(), 'the mirror was asked for the chunks');
    assert.ok(originServed(noChunkLayer), 'the origin served them after');
  });

  test('a mirror serving a TOC that does not match the annotation: the TOC is fetched again from the origin (--mirror)', async () => {
    reset([swapBlob(edge[0]!.digest, files.toc)]);
    const r = await sync('edge', false);
    assert.equal(r.code, 0, r.stderr);
    await sameAsOracle('edge', r.dest);
    oneNotice(r, 'ERR_DIGEST_MISMATCH');
    assert.match(r.stderr, /TOC of layer/);
    assert.ok(servedSwapped(), 'the mirror was asked for the TOC');
    assert.ok(originServed(edge[0]!.digest), 'the origin served the TOC after');
  });

  test('a mirror serving a plain layer whose digest does not match: the layer is streamed again from the origin', async () => {
    reset([swapBlob(mixed[0]!.digest, files.plain)]);
    const r = await sync('mixed', true);
    assert.equal(r.code, 0, r.stderr);
    await sameAsOracle('mixed', r.dest);
    oneNotice(r, 'ERR_DIGEST_MISMATCH');
    assert.match(r.stderr, /layer blob sha256:[0-9a-f]{64}: the bytes hash to/);
    assert.ok(servedSwapped(), 'the mirror streamed the layer first');
    assert.ok(originServed(mixed[0]!.digest), 'the origin streamed it after');
  });

  test('library: a config blob (getBlob) from a mirror that does not match its digest is fetched again from the origin', async () => {
    // The CLI never fetches configs; openImage() users may (RegistryClient.getBlob).
    const index = JSON.parse(await readFile(join(layoutsDir, 'edge', 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
    const manifest = JSON.parse(await readFile(join(layoutsDir, 'edge', 'blobs', 'sha256', index.manifests[0]!.digest.slice(7)), 'utf8')) as { config: { digest: string } };
    const configPath = join(layoutsDir, 'edge', 'blobs', 'sha256', manifest.config.digest.slice(7));
    const swapped = join(work, 'config.json');
    await writeFile(swapped, JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
    reset([swapBlob(manifest.config.digest, swapped)]);
    const notices: string[] = [];
    const client = new RegistryClient(originFront.host, { plainHttp: true, retries: 0, hosts: registryHosts(originFront.host, { mirrors: [mirror.url] }), notice: (m) => notices.push(m) });
    try {
      const bytes = await client.getBlob('fixtures/edge', manifest.config.digest);
      assert.deepEqual(bytes, await readFile(configPath));
    } finally {
      await client.close();
    }
    assert.equal(notices.length, 1, notices.join('\n'));
    assert.match(notices[0]!, /ERR_DIGEST_MISMATCH/);
    assert.ok(servedSwapped(), 'the mirror was asked for the config');
  });

  test('a mirror failing every range read, for layers opened at once: one notice, not one per layer', async () => {
    reset([{ match: { hasRange: true }, action: 'status', status: 503 }]);
    const r = await sync('edge', true);
    assert.equal(r.code, 0, r.stderr);
    await sameAsOracle('edge', r.dest);
    oneNotice(r, 'ERR_REGISTRY_SERVER');
    assert.ok(edge.length >= 2, 'edge has several layers');
  });

  test('the origin serving bad bytes too, or alone: exit 6 (the last host\'s error is the answer)', async () => {
    for (const [what, name, digest, file] of [
      ['chunk', 'edge', edge[0]!.digest, files.chunk],
      ['toc', 'edge', edge[0]!.digest, files.toc],
      ['plain', 'mixed', mixed[0]!.digest, files.plain],
    ] as const) {
      reset([swapBlob(digest, file)], [swapBlob(digest, file)]);
      const both = await sync(name, true);
      assert.equal(both.code, 6, `${what}, both bad: exit ${both.code}\n${both.stderr}`);
      assert.match(both.stderr, /ERR_DIGEST_MISMATCH/);
      oneNotice(both, 'ERR_DIGEST_MISMATCH');
      // The origin alone (an empty hosts.toml, no --mirror): no host to fall through to.
      reset([], [swapBlob(digest, file)]);
      const dest = join(work, `out-${++n}`);
      const alone = await runCli(['sync', `${originFront.host}/fixtures/${name}:v1/`, dest, '--plain-http', '--cache-dir', join(work, `cache-${n}`), '--retries', '1', '--hosts-dir', join(work, 'none')]);
      assert.equal(alone.code, 6, `${what}, origin alone: exit ${alone.code}\n${alone.stderr}`);
      assert.match(alone.stderr, /ERR_DIGEST_MISMATCH/);
      assert.ok(!alone.stderr.includes('passing over'), alone.stderr);
    }
  });
});
