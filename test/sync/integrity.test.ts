// Issue 7, "every byte served is covered by a digest", through `sync` and `ls` as a user runs
// them. Registries here serve bytes that inflate cleanly and keep their size but hash wrong
// (a fault proxy's 'serve-file' rule): only the digest chain (src/layer/trust.ts) can refuse
// them, so each test fails when the check it names is removed.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { lstat, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pushLayout, startRegistry, type TestRegistry } from '../helpers/registry.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { compareTrees, formatDiffs, oracleUnpack, type TreeDiff } from '../helpers/oracle.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';
import { runCli, type CliResult } from '../helpers/cli.js';
import { alteredManifest, MULTI_CHUNK_FILE, prepareIntegrityImages, swapBlob, type IntegrityImages } from '../helpers/integrity-images.js';
import { TOC_DIGEST_ANNOTATION } from '../helpers/craft-image.js';
import { layoutsDir } from '../helpers/paths.js';

const suiteStart = Math.floor(Date.now() / 1000) - 5;
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

async function diff(expected: string, actual: string): Promise<TreeDiff[]> {
  const all = await compareTrees(expected, actual, {});
  return all.filter((d) => !(d.field === 'mtime' && typeof d.expected === 'number' && d.expected >= suiteStart));
}

/** Every name below dir, hidden temporary files included. */
async function allNames(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string, rel: string): Promise<void> => {
    for (const name of await readdir(d).catch(() => [] as string[])) {
      out.push(rel + name);
      if ((await lstat(join(d, name))).isDirectory()) await walk(join(d, name), rel + name + '/');
    }
  };
  await walk(dir, '');
  return out;
}

function refused(r: CliResult, what: string): void {
  assert.equal(r.code, 6, `${what}: exit ${r.code}\n${r.stderr}`);
  assert.match(r.stderr, /ERR_DIGEST_MISMATCH/, what);
}

describe('integrity: every byte served is covered by a digest', () => {
  let reg: TestRegistry;
  let proxy: FaultProxy;
  let work: string;
  let img: IntegrityImages;
  const oracle: Record<string, string> = {};
  let n = 0;
  const cache = (): string => join(work, `cache-${n++}`);
  const sync = (src: string, dest: string, cacheDir = cache(), extra: string[] = []) =>
    runCli(['sync', '--plain-http', '--retries', '1', '--cache-dir', cacheDir, ...extra, src, dest]);
  const ls = (src: string, cacheDir = cache()) => runCli(['ls', '-l', '--plain-http', '--retries', '1', '--cache-dir', cacheDir, src]);
  const dest = (): string => join(work, `dest-${n++}`);

  before(async () => {
    reg = await startRegistry({ mode: 'plain' });
    work = await makeTempDir('integrity-');
    img = await prepareIntegrityImages(reg, join(work, 'images'));
    await pushLayout(reg, 'legacy', 'fixtures/legacy:v1');
    for (const name of ['edge', 'mixed', 'legacy']) oracle[name] = await oracleUnpack(reg, `fixtures/${name}:v1`, join(work, 'oracle-' + name));
    proxy = await startFaultProxy(reg);
  });
  after(async () => {
    await proxy?.close();
    await reg?.stop();
    if (work) await removeDir(work);
  });
  const withRules = async (rules: ReturnType<typeof swapBlob>[], fn: () => Promise<void>): Promise<void> => {
    proxy.rules.push(...rules);
    try {
      await fn();
    } finally {
      proxy.rules.length = 0;
    }
  };

  test('TOC cache poisoning across registries (issue 7.2): a TOC another registry served under a plain layer digest is never used', async () => {
    // A hostile registry serves edge's eStargz layer 1 (other files: bin/big2, ...) under the
    // digest of mixed's plain base layer.
    const hostile = await startFaultProxy(reg);
    try {
      const plain = img.mixed[0]!;
      const evil = img.edge[1]!;
      const evilBlob = join(work, 'evil.blob');
      await writeFile(evilBlob, evil.blob);
      const manifestFor = async (annotations?: Record<string, string>): Promise<string> => {
        const file = join(work, `evil-manifest-${n++}.json`);
        const layer = { mediaType: plain.mediaType, digest: plain.digest, size: evil.blob.length, ...(annotations ? { annotations } : {}) };
        const config = { mediaType: 'application/vnd.oci.image.config.v1+json', digest: plain.digest, size: 2 };
        await writeFile(file, JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config, layers: [layer] }));
        return file;
      };
      const shared = cache();
      // Without an annotation the hostile layer is read whole and its digest does not match.
      hostile.rules.push(
        { match: { method: 'GET', pathIncludes: '/v2/evil/app/manifests/' }, action: 'serve-file', file: await manifestFor(), contentType: OCI_MANIFEST },
        swapBlob(plain.digest, evilBlob),
      );
      refused(await sync(`${hostile.host}/evil/app:v1/bin/big2`, dest(), shared), 'unannotated hostile layer');
      // With its own TOC digest annotated, it is read lazily: the user asked for that image.
      hostile.rules[0]!.file = await manifestFor({ [TOC_DIGEST_ANNOTATION]: evil.annotations[TOC_DIGEST_ANNOTATION]! });
      const r = await sync(`${hostile.host}/evil/app:v1/bin/big2`, dest(), shared);
      assert.equal(r.code, 0, r.stderr);
      // The legitimate image from the legitimate registry, same cache: its own bytes only.
      const out = dest();
      const legit = await sync(`${proxy.host}/fixtures/mixed:v1`, out, shared);
      assert.equal(legit.code, 0, legit.stderr);
      const d = await diff(oracle.mixed!, out);
      assert.deepEqual(d, [], formatDiffs(d));
      const again = await ls(`${proxy.host}/fixtures/mixed:v1/bin`, shared);
      const fresh = await ls(`${proxy.host}/fixtures/mixed:v1/bin`);
      assert.equal(again.code, 0, again.stderr);
      assert.equal(again.stdout, fresh.stdout, 'ls lists what a fresh cache lists');
    } finally {
      await hostile.close();
    }
  });

  test('a layer without the TOC annotation is read whole and verified (issue 7.3), even when the image is pinned', async () => {
    const ref = `${proxy.host}/crafted/bare@${img.manifests['crafted/bare:v1']}`;
    // The registry swaps layer 0 for a self-consistent eStargz blob of the same size: its TOC's
    // digests match its tampered bin/tool, so only the layer digest can tell.
    await withRules([swapBlob(img.edge[0]!.digest, img.files.consistent)], async () => {
      const out = dest();
      refused(await sync(ref, out), 'swapped unannotated layer');
      assert.deepEqual(await allNames(out), [], 'nothing written');
      refused(await ls(`${ref}/bin`), 'ls of a swapped unannotated layer');
    });
    const good = dest();
    const r = await sync(ref, good);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /has no TOC-digest annotation: fetching it whole to verify it/);
    const d = await diff(oracle.edge!, good);
    assert.deepEqual(d, [], formatDiffs(d));
    // Legacy stargz (47-byte footer) read whole the same way.
    const legacy = dest();
    const l = await sync(`${proxy.host}/crafted/bare-legacy:v1`, legacy);
    assert.equal(l.code, 0, l.stderr);
    const dl = await diff(oracle.legacy!, legacy);
    assert.deepEqual(dl, [], formatDiffs(dl));
  });

  test('info probes an unannotated layer by its footer alone: format named, nothing downloaded or trusted', async () => {
    proxy.resetStats();
    const r = await runCli(['info', '--json', '--plain-http', '--cache-dir', cache(), `${proxy.host}/crafted/bare:v1`]);
    assert.equal(r.code, 0, r.stderr);
    const layers = (JSON.parse(r.stdout) as { layers: Array<{ format: string; lazy: boolean; files: number | null }> }).layers;
    assert.deepEqual(layers.map((l) => [l.format, l.lazy, l.files]), layers.map(() => ['estargz', false, null]));
    assert.ok(proxy.stats.blobBytesToClient <= layers.length * 51, `fetched ${proxy.stats.blobBytesToClient} bytes`);
  });

  test('--insecure-skip-toc-verify reads an unannotated layer lazily', async () => {
    const r = await sync(`${proxy.host}/crafted/bare:v1/etc/passwd`, dest(), cache(), ['--insecure-skip-toc-verify']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /unverified \(--insecure-skip-toc-verify\)/);
  });

  test('chunks without chunkDigest are verified by the file digest before any byte is written (issue 7.4)', async () => {
    const out = dest();
    const shared = cache();
    const r = await sync(`${proxy.host}/crafted/no-chunk-digest:v1/${MULTI_CHUNK_FILE}`, out, shared);
    assert.equal(r.code, 0, r.stderr);
    assert.ok((await readFile(out)).equals(img.tool), 'bin/tool as the image has it');
    // The verified file's chunks are known by content digest from then on: offline works.
    const offline = dest();
    const o = await sync(`${proxy.host}/crafted/no-chunk-digest:v1/${MULTI_CHUNK_FILE}`, offline, shared, ['--offline']);
    assert.equal(o.code, 0, o.stderr);
    assert.ok((await readFile(offline)).equals(img.tool), 'bin/tool offline');
    await withRules([swapBlob(img.layers['crafted/no-chunk-digest:v1']![0]!, img.files.noChunkDigestLateChunk)], async () => {
      const bad = dest();
      refused(await sync(`${proxy.host}/crafted/no-chunk-digest:v1/bin`, bad), 'tampered digest-less chunk');
      assert.deepEqual((await allNames(bad)).filter((x) => x.includes('tool')), [], 'no bin/tool, final or temporary');
    });
  });

  test('a file whose chunks no digest covers puts its layer under the whole-blob rule', async () => {
    const out = dest();
    const r = await sync(`${proxy.host}/crafted/uncovered:v1`, out);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /has chunks no digest covers/);
    const d = await diff(oracle.edge!, out);
    assert.deepEqual(d, [], formatDiffs(d));
  });

  test('an unannotated eStargz layer whose TOC contradicts its own (verified) data is refused', async () => {
    for (const image of ['crafted/lying-chunk-digest:v1', 'crafted/lying-file-digest:v1']) {
      const out = dest();
      const r = await sync(`${proxy.host}/${image}`, out);
      refused(r, image);
      assert.match(r.stderr, /the TOC says/, image);
      assert.deepEqual(await allNames(out), [], image);
    }
  });

  test('a later chunk that inflates cleanly but has the wrong digest leaves no file under its final name, nor a temporary one', async () => {
    await withRules([swapBlob(img.edge[0]!.digest, img.files.lateChunk)], async () => {
      const out = dest();
      const r = await sync(`${proxy.host}/fixtures/edge:v1/bin`, out);
      refused(r, 'tampered last chunk');
      assert.match(r.stderr, /chunk at \d+/);
      assert.deepEqual((await allNames(out)).filter((x) => x.includes('tool')), [], 'no tool, final or temporary');
    });
  });

  test('a TOC that inflates cleanly but does not match its annotation is refused by sync and ls', async () => {
    await withRules([swapBlob(img.edge[0]!.digest, img.files.wrongToc)], async () => {
      refused(await ls(`${proxy.host}/fixtures/edge:v1/etc`), 'ls, wrong TOC');
      const out = dest();
      refused(await sync(`${proxy.host}/fixtures/edge:v1/etc`, out), 'sync, wrong TOC');
      assert.deepEqual(await allNames(out), []);
    });
  });

  test('a whole plain blob that inflates cleanly but has the wrong digest is refused by sync and ls', async () => {
    await withRules([swapBlob(img.mixed[0]!.digest, img.files.plain)], async () => {
      const out = dest();
      refused(await sync(`${proxy.host}/fixtures/mixed:v1`, out), 'sync, wrong plain blob');
      assert.deepEqual(await allNames(out), []);
      refused(await ls(`${proxy.host}/fixtures/mixed:v1/etc`), 'ls, wrong plain blob');
    });
  });

  test('a manifest (or an index\'s child) that parses but does not match the pinned digest is refused', async () => {
    const edgeDigest = img.manifests['fixtures/edge:v1']!;
    await withRules(
      [{ match: { method: 'GET', pathIncludes: `/manifests/${edgeDigest}` }, action: 'serve-file', file: await alteredManifest('edge', edgeDigest, join(work, 'edge-manifest')), contentType: OCI_MANIFEST }],
      async () => {
        refused(await sync(`${proxy.host}/fixtures/edge@${edgeDigest}/etc`, dest()), 'sync, swapped manifest');
        refused(await ls(`${proxy.host}/fixtures/edge@${edgeDigest}/etc`), 'ls, swapped manifest');
      },
    );
    // An index pinned by digest: its child is verified against the index's descriptor.
    await pushLayout(reg, 'multi', 'fixtures/multi:v1');
    const layoutIndex = JSON.parse(await readFile(join(layoutsDir, 'multi', 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
    const indexDigest = layoutIndex.manifests[0]!.digest;
    const index = JSON.parse(await readFile(join(layoutsDir, 'multi', 'blobs', 'sha256', indexDigest.slice(7)), 'utf8')) as {
      manifests: Array<{ digest: string; platform: { architecture: string } }>;
    };
    const child = index.manifests.find((m) => m.platform.architecture === 'amd64')!.digest;
    const ref = `${proxy.host}/fixtures/multi@${indexDigest}/etc`;
    const ok = await sync(ref, dest(), cache(), ['--platform', 'linux/amd64']);
    assert.equal(ok.code, 0, ok.stderr);
    await withRules(
      [{ match: { method: 'GET', pathIncludes: `/manifests/${child}` }, action: 'serve-file', file: await alteredManifest('multi', child, join(work, 'child-manifest')), contentType: OCI_MANIFEST }],
      async () => {
        refused(await sync(ref, dest(), cache(), ['--platform', 'linux/amd64']), 'sync, swapped child manifest');
      },
    );
  });
});
