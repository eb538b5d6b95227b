// Issue 7 through a real FUSE mount: bytes that inflate cleanly but hash wrong are never
// served (EIO), and an image whose TOC or unannotated layer does not verify is not mounted.
// Every look at a mount runs in a child process (run, sha256Tree), never in the server.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { startFaultProxy, type FaultProxy, type FaultRule } from '../helpers/fault-proxy.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';
import { runCli } from '../helpers/cli.js';
import { alteredManifest, MULTI_CHUNK_FILE, prepareIntegrityImages, swapBlob, type IntegrityImages } from '../helpers/integrity-images.js';
import { Mounts, isMounted, run } from './mount-helpers.js';

describe('integrity over FUSE', () => {
  let reg: TestRegistry;
  let proxy: FaultProxy;
  let work: string;
  let img: IntegrityImages;
  let toolSum: string;
  const mounts = new Mounts();
  let n = 0;
  const fresh = async (name: string): Promise<string> => {
    const d = join(work, `${name}-${n++}`);
    await mkdir(d);
    return d;
  };

  before(async () => {
    reg = await startRegistry({ mode: 'plain' });
    work = await makeTempDir('fuse-integrity-');
    img = await prepareIntegrityImages(reg, join(work, 'images'));
    toolSum = createHash('sha256').update(img.tool).digest('hex');
    proxy = await startFaultProxy(reg);
  });
  after(async () => {
    await mounts.cleanup();
    await proxy?.close();
    await reg?.stop();
    if (work) await removeDir(work);
  });

  /** Mounts `image` through the proxy with `rules` in force, runs fn, unmounts. */
  const mounted = async (image: string, rules: FaultRule[], fn: (mnt: string) => Promise<void>): Promise<void> => {
    proxy.rules.push(...rules);
    try {
      const mnt = await fresh('mnt');
      await mounts.detached(`${proxy.host}/${image}`, mnt, await fresh('cache'), ['--prefetch', 'none']);
      await fn(mnt);
    } finally {
      proxy.rules.length = 0;
      await mounts.cleanup();
    }
  };
  const eio = async (cmd: string, args: string[], what: string): Promise<void> => {
    const r = await run(cmd, args, 60_000);
    assert.notEqual(r.code, 0, `${what}: read succeeded: ${r.stdout.slice(0, 80)}`);
    assert.match(r.stderr, /Input\/output error/, what);
  };

  test('a file whose chunks have no chunkDigest is served only after its file digest matched (issue 7.4)', async () => {
    await mounted('crafted/no-chunk-digest:v1', [], async (mnt) => {
      const r = await run('sha256sum', [join(mnt, MULTI_CHUNK_FILE)]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.split(' ')[0], toolSum);
    });
    // Its last chunk tampered: not even the first, intact, bytes are served.
    await mounted('crafted/no-chunk-digest:v1', [swapBlob(img.layers['crafted/no-chunk-digest:v1']![0]!, img.files.noChunkDigestLateChunk)], async (mnt) => {
      await eio('head', ['-c', '4096', join(mnt, MULTI_CHUNK_FILE)], 'first page of a tampered digest-less file');
      await eio('cat', [join(mnt, MULTI_CHUNK_FILE)], 'tampered digest-less file');
    });
  });

  test('a chunk that inflates cleanly but has the wrong digest answers EIO; the chunks before it are served', async () => {
    await mounted('fixtures/edge:v1', [swapBlob(img.edge[0]!.digest, img.files.lateChunk)], async (mnt) => {
      const head = await run('head', ['-c', '4096', join(mnt, MULTI_CHUNK_FILE)]);
      assert.equal(head.code, 0, head.stderr);
      assert.ok(Buffer.from(head.stdout, 'latin1').length > 0);
      await eio('cat', [join(mnt, MULTI_CHUNK_FILE)], 'tampered last chunk');
    });
  });

  test('an image whose manifest, TOC, plain blob or unannotated layer does not match its digest is not mounted', async () => {
    const tryMount = async (image: string, rules: FaultRule[]): Promise<void> => {
      proxy.rules.push(...rules);
      const mnt = await fresh('mnt');
      try {
        const r = await runCli(['mount', '-d', '-q', '--plain-http', '--retries', '1', '--cache-dir', await fresh('cache'), `${proxy.host}/${image}`, mnt]);
        assert.equal(r.code, 6, `${image} was mounted: ${r.stderr}`);
        assert.match(r.stderr, /ERR_DIGEST_MISMATCH/);
      } finally {
        proxy.rules.length = 0;
        if (isMounted(mnt)) await run('fusermount', ['-uz', mnt]); // it should not have been
      }
    };
    await tryMount('fixtures/edge:v1', [swapBlob(img.edge[0]!.digest, img.files.wrongToc)]);
    await tryMount('crafted/bare:v1', [swapBlob(img.edge[0]!.digest, img.files.consistent)]);
    await tryMount('fixtures/mixed:v1', [swapBlob(img.mixed[0]!.digest, img.files.plain)]);
    const pinned = img.manifests['fixtures/edge:v1']!;
    const manifest = await alteredManifest('edge', pinned, join(work, 'edge-manifest'));
    await tryMount(`fixtures/edge@${pinned}`, [{ match: { method: 'GET', pathIncludes: `/manifests/${pinned}` }, action: 'serve-file', file: manifest, contentType: 'application/vnd.oci.image.manifest.v1+json' }]);
    // Unswapped, the unannotated image mounts (read whole, verified) and serves the image's bytes.
    await mounted('crafted/bare:v1', [], async (mnt) => {
      const r = await run('sha256sum', [join(mnt, MULTI_CHUNK_FILE)]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.split(' ')[0], toolSum);
    });
  });
});
