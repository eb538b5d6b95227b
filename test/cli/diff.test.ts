// `diff REF_A REF_B [PATH]` (issue 12 item 3) through the real CLI against a real registry:
// the lines against a second oracle (skopeo + umoci unpacks compared by lstat and sha256),
// --json, --ignore-mtime, PATH, exit statuses, and what it fetches (a fault proxy counts).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startRegistry, pushLayout, type TestRegistry } from '../helpers/registry.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';
import { runCli } from '../helpers/cli.js';
import { layoutsDir } from '../helpers/paths.js';
import { oracleUnpack } from '../helpers/oracle.js';
import { pushCraftedImage, readToc, rewriteToc, writeLayout, type CraftedLayer } from '../helpers/craft-image.js';
import { oracleDiff } from '../diff/oracle-diff.js';

interface Layout {
  layers: Array<{ digest: string; mediaType: string; annotations?: Record<string, string> }>;
}

async function layoutLayers(name: string): Promise<Array<CraftedLayer & { digest: string }>> {
  const dir = join(layoutsDir, name);
  const blob = (d: string): string => join(dir, 'blobs', 'sha256', d.slice(7));
  const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
  const manifest = JSON.parse(await readFile(blob(index.manifests[0]!.digest), 'utf8')) as Layout;
  return Promise.all(manifest.layers.map(async (l) => ({ digest: l.digest, blob: await readFile(blob(l.digest)), mediaType: l.mediaType, annotations: l.annotations ?? {} })));
}

/** syncv1 with one TOC entry edited (the layer's digest and TOC digest change with it). */
async function editedSyncv1(dir: string, edit: (entry: Record<string, unknown>) => void): Promise<string> {
  const [layer] = await layoutLayers('syncv1');
  const edited = rewriteToc(layer!.blob, (toc) => {
    edit(toc.entries.find((e: { name: string }) => e.name === 'etc/conf'));
  });
  return writeLayout(dir, { layers: [{ blob: edited.blob, tocDigest: edited.tocDigest }] });
}

describe('diff', () => {
  let reg: TestRegistry;
  let proxy: FaultProxy;
  let work: string;
  let cacheN = 0;
  before(async () => {
    reg = await startRegistry({ mode: 'plain' });
    work = await makeTempDir('cli-diff-');
    await pushLayout(reg, 'syncv1', 'f/sync:v1', { tag: 'v1' });
    await pushLayout(reg, 'syncv2', 'f/sync:v2', { tag: 'v2' });
    await pushLayout(reg, 'edge', 'f/edge:v1');
    await pushLayout(reg, 'mixed', 'f/mixed:v1');
    // edge without its top layer: the same image with one layer fewer.
    const edge = await layoutLayers('edge');
    await pushCraftedImage(reg, await writeLayout(join(work, 'edge2'), { layers: edge.slice(0, 2) }), 'f/edge:two');
    await pushCraftedImage(reg, await editedSyncv1(join(work, 'mtime'), (e) => (e.modtime = '2024-01-01T00:00:00Z')), 'f/sync:mtime');
    await pushCraftedImage(reg, await editedSyncv1(join(work, 'xattr'), (e) => (e.xattrs = { 'user.note': Buffer.from('hi').toString('base64') })), 'f/sync:xattr');
    await pushCraftedImage(reg, await editedSyncv1(join(work, 'mode'), (e) => (e.mode = 0o600)), 'f/sync:mode');
    proxy = await startFaultProxy(reg);
  });
  after(async () => {
    await proxy?.close();
    await reg?.stop();
    if (work) await removeDir(work);
  });
  /** A fresh cache per call unless one is named: nothing is served from an earlier test's fetches. */
  const diff = (args: string[], cache = `cache-${cacheN++}`) => runCli(['diff', ...args, '--plain-http', '--cache-dir', join(work, cache)]);
  const at = (repoTag: string, host = reg.host) => `${host}/${repoTag}`;
  const lines = (stdout: string) => (stdout === '' ? [] : stdout.replace(/\n$/, '').split('\n'));
  const oracle = async (a: string, b: string) =>
    oracleDiff(await oracleUnpack(reg, a, join(work, 'oracle', a.replace(/\W/g, '_'))), await oracleUnpack(reg, b, join(work, 'oracle', b.replace(/\W/g, '_'))));

  test('syncv1 -> syncv2: the lines the oracle unpacks give, exit status 1', async () => {
    const r = await diff([at('f/sync:v1'), at('f/sync:v2')]);
    assert.equal(r.code, 1, r.stderr);
    const expected = await oracle('f/sync:v1', 'f/sync:v2');
    assert.deepEqual(lines(r.stdout), expected);
    // And what sync_tars.py says it changed, so the oracle is not trivially empty.
    assert.deepEqual(expected, ['C /bin/tool', 'C /data/f03.bin', 'C /data/f07.bin', 'D /data/f11.bin', 'A /data/new.bin', 'C /link/cur']);
    assert.equal(r.stderr, '');
  });

  test('--json names the fields that differ', async () => {
    const r = await diff(['--json', at('f/sync:v1'), at('f/sync:v2')]);
    assert.equal(r.code, 1, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), [
      { path: '/bin/tool', change: 'C', fields: ['mode'] },
      { path: '/data/f03.bin', change: 'C', fields: ['digest'] },
      { path: '/data/f07.bin', change: 'C', fields: ['digest'] },
      { path: '/data/f11.bin', change: 'D' },
      { path: '/data/new.bin', change: 'A' },
      { path: '/link/cur', change: 'C', fields: ['linkTarget'] },
    ]);
  });

  test('the reverse direction swaps A and D', async () => {
    const r = await diff([at('f/sync:v2'), at('f/sync:v1')]);
    assert.equal(r.code, 1, r.stderr);
    assert.deepEqual(lines(r.stdout), await oracle('f/sync:v2', 'f/sync:v1'));
    assert.ok(lines(r.stdout).includes('A /data/f11.bin') && lines(r.stdout).includes('D /data/new.bin'));
  });

  test('an image against itself: exit 0, no output, no blob fetched (equal layer lists are not walked)', async () => {
    proxy.resetStats();
    const r = await diff([at('f/edge:v1', proxy.host), at('f/edge:v1', proxy.host)]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '');
    assert.equal(proxy.stats.blobRequests, 0, JSON.stringify(proxy.stats.log));
    const j = await diff(['--json', at('f/sync:v2'), at('f/sync:v2')]);
    assert.equal(j.code, 0, j.stderr);
    assert.deepEqual(JSON.parse(j.stdout), []);
  });

  test('no chunk is fetched: the blob bytes are those of listing both images from their TOCs', async () => {
    proxy.resetStats();
    const r = await diff([at('f/sync:v1', proxy.host), at('f/sync:v2', proxy.host)]);
    assert.equal(r.code, 1, r.stderr);
    const diffBytes = proxy.stats.blobBytesToClient;
    assert.ok(proxy.stats.log.filter((e) => e.path.includes('/blobs/')).every((e) => e.range !== undefined), 'every blob read is a range');
    proxy.resetStats();
    for (const tag of ['v1', 'v2']) {
      const ls = await runCli(['ls', '-R', at(`f/sync:${tag}`, proxy.host), '--plain-http', '--cache-dir', join(work, `cache-ls-${tag}`)]);
      assert.equal(ls.code, 0, ls.stderr);
    }
    assert.equal(diffBytes, proxy.stats.blobBytesToClient);
    // The two layers hold 1.6 MB of file data each; their TOCs are a few KB.
    assert.ok(diffBytes < 2 * 64 * 1024, `fetched ${diffBytes}`);
  });

  test('shared layers: the same image with one more layer shows only that layer\'s paths', async () => {
    const r = await diff([at('f/edge:two'), at('f/edge:v1')]);
    assert.equal(r.code, 1, r.stderr);
    const got = lines(r.stdout);
    assert.deepEqual(got, await oracle('f/edge:two', 'f/edge:v1'));
    assert.ok(got.length > 0);
    // Every path is one the top layer names (an entry, its parent, or a whiteout's target).
    const top = readToc((await layoutLayers('edge'))[2]!.blob);
    const touched = new Set<string>();
    for (const e of top.entries as Array<{ name: string }>) {
      const name = e.name.replace(/\/$/, '');
      const base = name.slice(name.lastIndexOf('/') + 1);
      const dir = name.includes('/') ? name.slice(0, name.lastIndexOf('/')) : '';
      // An opaque whiteout touches everything its directory held below.
      if (base === '.wh..wh..opq') touched.add('/' + dir);
      else touched.add('/' + (base.startsWith('.wh.') ? (dir ? dir + '/' : '') + base.slice(4) : name));
    }
    for (const line of got) {
      const path = line.slice(2);
      assert.ok([...touched].some((t) => path === t || path.startsWith(t + '/') || t.startsWith(path + '/')), `${line} is not from the top layer`);
    }
  });

  test('a plain tar+gzip layer has no TOC: it is fetched whole once, and its files are compared by content', async () => {
    const cache = 'cache-plain';
    const r = await diff([at('f/edge:two'), at('f/mixed:v1')], cache);
    assert.ok(r.code === 0 || r.code === 1, r.stderr);
    assert.match(r.stderr, /not eStargz: fetching it whole/);
    assert.deepEqual(lines(r.stdout), await oracle('f/edge:two', 'f/mixed:v1'));
    proxy.resetStats();
    const again = await runCli(['diff', at('f/edge:two', proxy.host), at('f/mixed:v1', proxy.host), '--plain-http', '--cache-dir', join(work, cache)]);
    assert.equal(again.stdout, r.stdout);
    assert.doesNotMatch(again.stderr, /fetching it whole/);
  });

  test('PATH restricts the diff to a subtree; a path in neither image is exit status 3', async () => {
    const r = await diff([at('f/sync:v1'), at('f/sync:v2'), '/data']);
    assert.equal(r.code, 1, r.stderr);
    assert.deepEqual(lines(r.stdout), ['C /data/f03.bin', 'C /data/f07.bin', 'D /data/f11.bin', 'A /data/new.bin']);
    const one = await diff([at('f/sync:v1'), at('f/sync:v2'), 'data/new.bin']);
    assert.deepEqual([one.code, lines(one.stdout)], [1, ['A /data/new.bin']]);
    const same = await diff([at('f/sync:v1'), at('f/sync:v2'), '/etc']);
    assert.deepEqual([same.code, same.stdout], [0, '']);
    const none = await diff([at('f/sync:v1'), at('f/sync:v2'), '/nope']);
    assert.equal(none.code, 3, none.stderr);
    assert.match(none.stderr, /PATH_NOT_FOUND/);
  });

  test('mtime counts for files unless --ignore-mtime', async () => {
    const r = await diff(['--json', at('f/sync:v1'), at('f/sync:mtime')]);
    assert.equal(r.code, 1, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), [{ path: '/etc/conf', change: 'C', fields: ['mtime'] }]);
    const ignored = await diff(['--ignore-mtime', at('f/sync:v1'), at('f/sync:mtime')]);
    assert.deepEqual([ignored.code, ignored.stdout], [0, '']);
  });

  test('an xattr or a mode alone is a change', async () => {
    const x = await diff(['--json', at('f/sync:v1'), at('f/sync:xattr')]);
    assert.equal(x.code, 1, x.stderr);
    assert.deepEqual(JSON.parse(x.stdout), [{ path: '/etc/conf', change: 'C', fields: ['xattrs'] }]);
    const m = await diff([at('f/sync:v1'), at('f/sync:mode')]);
    assert.deepEqual([m.code, m.stdout], [1, 'C /etc/conf\n']);
  });

  test('errors are exit statuses of 2 and up, not 1', async () => {
    const missing = await diff([at('f/sync:v1'), at('f/sync:nosuchtag')]);
    assert.equal(missing.code, 3, missing.stderr);
    const usage = await diff([at('f/sync:v1')]);
    assert.equal(usage.code, 2, usage.stderr);
  });
});


