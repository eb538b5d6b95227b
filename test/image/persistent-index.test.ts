// Issue 13, the persistent index, through the CLI as a user runs it: the index built from a
// verified TOC is stored by TOC digest, and the next `ls` or `mount` opens on it alone (no TOC
// record needed, no blob byte fetched). A stored index that is damaged, truncated or of another
// codec version is never served: the index is built again from the verified TOC (the cached one,
// or fetched again), or, offline without one, the command fails with a coded error.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { startRegistry, pushLayout, type TestRegistry } from '../helpers/registry.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';
import { runCli } from '../helpers/cli.js';
import { withBodyTruncated, withVersion } from '../helpers/cache-records.js';
import { Mounts, run, sha256Tree } from '../fuse/mount-helpers.js';
import { decodeLayerIndex, INDEX_CODEC_VERSION } from '../../src/layer/index-codec.js';

type Kind = 'toc' | 'toc-index' | 'merged-tree';

/** The records of one kind in a cache directory's index, by key (the CLI is not running). */
function records(cache: string, kind: Kind): Map<string, Buffer> {
  const db = new Database(join(cache, 'index.sqlite'));
  try {
    const rows = db.prepare('SELECT key, data FROM records WHERE kind = ?').all(kind) as Array<{ key: string; data: Buffer }>;
    return new Map(rows.map((r) => [r.key, r.data]));
  } finally {
    db.close();
  }
}

function rewrite(cache: string, kind: Kind, edit: (data: Buffer) => Buffer | undefined): void {
  const db = new Database(join(cache, 'index.sqlite'));
  try {
    for (const [key, data] of records(cache, kind)) {
      const next = edit(data);
      if (next) db.prepare('UPDATE records SET data = ? WHERE kind = ? AND key = ?').run(next, kind, key);
      else db.prepare('DELETE FROM records WHERE kind = ? AND key = ?').run(kind, key);
    }
  } finally {
    db.close();
  }
}

const damages: Array<[string, (data: Buffer) => Buffer]> = [
  [
    'a flipped byte',
    (d) => {
      const out = Buffer.from(d);
      out[Math.floor(out.length / 2)]! ^= 0x01;
      return out;
    },
  ],
  [
    // Only the checksum tells this one: the record still decodes, to another name.
    'a renamed file',
    (d) => {
      const index = decodeLayerIndex(d)!.index;
      const path = [...index.entries.values()].filter((e) => e.type === 'reg').map((e) => e.path).sort((x, y) => y.length - x.length)[0];
      if (path === undefined) return d;
      const bytes = Buffer.from(path);
      const prefixed = Buffer.concat([Buffer.alloc(4), bytes]);
      prefixed.writeUInt32LE(bytes.length, 0);
      const at = d.indexOf(prefixed) + prefixed.length - 1;
      const out = Buffer.from(d);
      out[at] = out[at] === 0x5a ? 0x59 : 0x5a;
      return out;
    },
  ],
  ['a truncated record', (d) => Buffer.from(d.subarray(0, Math.floor(d.length / 2)))],
  [
    'another codec version (checksum valid)',
    (d) => withVersion(d, INDEX_CODEC_VERSION + 1),
  ],
];

describe('the persistent layer index', () => {
  let reg: TestRegistry;
  let proxy: FaultProxy;
  let work: string;
  const mounts = new Mounts();
  let n = 0;
  const fresh = async (name: string): Promise<string> => {
    const d = join(work, `${name}-${n++}`);
    await mkdir(d);
    return d;
  };
  const ls = (image: string, cache: string, extra: string[] = []) => runCli(['ls', '-lR', '--plain-http', '--cache-dir', cache, ...extra, `${proxy.host}/${image}/`]);

  before(async () => {
    reg = await startRegistry({ mode: 'plain' });
    work = await makeTempDir('persistent-index-');
    await pushLayout(reg, 'edge', 'fixtures/edge:v1');
    await pushLayout(reg, 'zstd', 'fixtures/zstd:v1');
    proxy = await startFaultProxy(reg);
  });
  after(async () => {
    await mounts.cleanup();
    await proxy?.close();
    await reg?.stop();
    if (work) await removeDir(work);
  });

  for (const image of ['fixtures/edge:v1', 'fixtures/zstd:v1']) {
    test(`${image}: a second ls opens on the stored index alone (offline with no TOC record; online without a blob byte)`, async () => {
      const cache = await fresh('cache');
      const first = await ls(image, cache);
      assert.equal(first.code, 0, first.stderr);
      assert.equal(records(cache, 'toc-index').size, 3, 'one index per eStargz layer');
      rewrite(cache, 'toc', () => undefined);
      const offline = await ls(image, cache, ['--offline']);
      assert.equal(offline.code, 0, offline.stderr);
      assert.equal(offline.stdout, first.stdout);
      proxy.resetStats();
      const online = await ls(image, cache);
      assert.equal(online.code, 0, online.stderr);
      assert.equal(online.stdout, first.stdout);
      assert.equal(proxy.stats.blobRequests, 0, `blob requests: ${JSON.stringify(proxy.stats.log.filter((l) => l.path.includes('/blobs/')))}`);
    });
  }

  for (const [what, damage] of damages) {
    test(`${what} in the stored index: rebuilt from the verified TOC, or a coded error offline without one`, async () => {
      const image = 'fixtures/edge:v1';
      const cache = await fresh('cache');
      const first = await ls(image, cache);
      assert.equal(first.code, 0, first.stderr);
      const good = records(cache, 'toc-index');

      // The cached TOC is still there: the index is built from it again, and stored again.
      rewrite(cache, 'toc-index', damage);
      const fromToc = await ls(image, cache, ['--offline']);
      assert.equal(fromToc.code, 0, fromToc.stderr);
      assert.equal(fromToc.stdout, first.stdout);
      assert.deepEqual(records(cache, 'toc-index'), good, 'the record is rewritten from the TOC');

      // Neither a good index nor a TOC, offline: a coded error, nothing listed.
      rewrite(cache, 'toc-index', damage);
      rewrite(cache, 'toc', () => undefined);
      const none = await ls(image, cache, ['--offline']);
      assert.equal(none.code, 7, none.stderr);
      assert.match(none.stderr, /ERR_OFFLINE_MISS/);
      assert.equal(none.stdout, '');

      // Online: the TOC is fetched and verified again.
      proxy.resetStats();
      const refetched = await ls(image, cache);
      assert.equal(refetched.code, 0, refetched.stderr);
      assert.equal(refetched.stdout, first.stdout);
      assert.ok(proxy.stats.blobBytesToClient > 0, 'the TOCs were fetched again');
      assert.deepEqual(records(cache, 'toc-index'), good);
    });
  }

  test('a warm ls / decodes no layer index: entries that do not decode behind a valid header go unseen until a read, which rebuilds them from the TOC', async () => {
    const image = `${proxy.host}/fixtures/edge:v1`;
    const cache = await fresh('cache');
    const root = () => runCli(['ls', '--plain-http', '--cache-dir', cache, `${image}/`]);
    const cat = () => runCli(['cat', '--plain-http', '--cache-dir', cache, `${image}/etc/hostname`]);
    const first = await root();
    assert.equal(first.code, 0, first.stderr);
    const good = records(cache, 'toc-index');
    const expected = await runCli(['cat', '--plain-http', '--cache-dir', await fresh('cache'), `${image}/etc/hostname`]);
    assert.equal(expected.code, 0, expected.stderr);

    // The header and checksum pass, the entries do not: only decoding them can tell.
    rewrite(cache, 'toc-index', withBodyTruncated);
    const damaged = /the cached index of layer sha256:[0-9a-f]{12} is damaged/;
    const warm = await root();
    assert.equal(warm.code, 0, warm.stderr);
    assert.equal(warm.stdout, first.stdout);
    assert.doesNotMatch(warm.stderr, damaged, 'ls / decoded a layer index');

    // A read needs its layer's chunks: that index is decoded, found damaged, rebuilt from the cached TOC and stored again.
    const read = await cat();
    assert.equal(read.code, 0, read.stderr);
    assert.match(read.stderr, /is damaged: rebuilt from its TOC/);
    assert.equal(read.stdout, expected.stdout);
    assert.equal(records(cache, 'toc-index').size, good.size);

    // Without the TOC the listing still answers from the tree; the read fails with a coded error, printing nothing.
    rewrite(cache, 'toc-index', withBodyTruncated);
    rewrite(cache, 'toc', () => undefined);
    const listed = await root();
    assert.equal(listed.code, 0, listed.stderr);
    assert.equal(listed.stdout, first.stdout);
    const failed = await cat();
    assert.equal(failed.code, 6, failed.stderr);
    assert.match(failed.stderr, /ERR_CORRUPT_DATA/);
    assert.equal(failed.stdout, '');
  });

  test('a mount on the stored index and merged tree fetches no blob byte to mount, and serves the same bytes and metadata', async () => {
    const image = `${proxy.host}/fixtures/edge:v1`;
    const cache = await fresh('cache');
    const listing = (mnt: string) => run('sh', ['-c', 'cd "$1" && find . -printf "%p %y %m %U %G %s %T@ %l %n\\n" | sort', 'sh', mnt]);

    const a = await fresh('mnt');
    await mounts.detached(image, a, cache, ['--prefetch', 'none']);
    const treeA = await sha256Tree(a);
    const listA = await listing(a);
    await mounts.cleanup();
    assert.ok(treeA.size > 0);

    rewrite(cache, 'toc', () => undefined);
    assert.equal(records(cache, 'merged-tree').size, 1, 'the first mount stored its merged tree for the second');
    const b = await fresh('mnt');
    proxy.resetStats();
    await mounts.detached(image, b, cache, ['--prefetch', 'none']);
    assert.equal(proxy.stats.blobRequests, 0, 'mounting on the stored index fetched blob bytes');
    assert.deepEqual(await sha256Tree(b), treeA);
    assert.equal((await listing(b)).stdout, listA.stdout);
    await mounts.cleanup();
  });
});
