// `stargz-get mount` run as a user runs it — the CLI binary, a real registry, a real FUSE
// mount — checked with ordinary shell tools and against the umoci unpack of the same image.
// Every mount is torn down (lazy unmount + SIGKILL) even when a test fails.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, readlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pushLayout, startRegistry, type TestRegistry } from '../helpers/registry.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { compareTrees, formatDiffs, oracleUnpack, type TreeDiff } from '../helpers/oracle.js';
import { ESTARGZ_BOOKKEEPING } from '../helpers/compare-trees.js';
import { layoutsDir } from '../helpers/paths.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';
import { runCli } from '../helpers/cli.js';
import { Mounts, childrenOf, forceDown, isAlive, isMounted, run, sha256Tree, unmountWatchFds, waitFor } from './mount-helpers.js';

const suiteStart = Math.floor(Date.now() / 1000) - 5;
const CMP = {};
const TOC_TAIL_GUESS = 256 * 1024; // what opening a layer reads from its end (footer + TOC)
const BIG_LAYER = 'sha256:c5e4a3cc121f3d03e1c566372a11782f97ac049ff3b0518ca8a3faf8fd9d73f8'; // holds bin/big2 (1 MB)

/**
 * Directories no layer lists are created by umoci at unpack time (which also stamps their
 * parent): such mtimes say when the oracle ran, not what the image holds, so they are not
 * compared. Every other difference counts.
 */
async function diff(expected: string, actual: string): Promise<TreeDiff[]> {
  const all = await compareTrees(expected, actual, CMP);
  return all.filter((d) => !(d.field === 'mtime' && typeof d.expected === 'number' && d.expected >= suiteStart));
}

/** sha256 of every file of an unpacked tree, without eStargz bookkeeping files at its root. */
async function imageSums(root: string): Promise<Map<string, string>> {
  const sums = await sha256Tree(root);
  for (const name of ESTARGZ_BOOKKEEPING) sums.delete(name);
  return sums;
}

async function edgeLayerSizes(): Promise<number[]> {
  const blob = (d: string): string => join(layoutsDir, 'edge', 'blobs', 'sha256', d.slice('sha256:'.length));
  const index = JSON.parse(await readFile(join(layoutsDir, 'edge', 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
  const manifest = JSON.parse(await readFile(blob(index.manifests[0]!.digest), 'utf8')) as { layers: Array<{ size: number }> };
  return manifest.layers.map((l) => l.size);
}

describe('stargz-get mount', () => {
  let reg: TestRegistry;
  let work: string;
  const oracle: Record<string, string> = {};
  const mounts = new Mounts();
  let seq = 0;
  const newDir = async (name: string): Promise<string> => {
    const d = join(work, `${name}-${seq++}`);
    await mkdir(d);
    return d;
  };
  const ref = (name: string, host = reg.host): string => `${host}/fixtures/${name}:v1`;
  const umount = async (dir: string, pid: number): Promise<void> => {
    const r = await runCli(['umount', dir]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(isMounted(dir), false);
    await waitFor('the server to exit', () => !isAlive(pid), 10_000);
  };

  before(async () => {
    reg = await startRegistry({ mode: 'plain' });
    work = await makeTempDir('fuse-');
    for (const name of ['edge', 'legacy', 'mixed']) {
      await pushLayout(reg, name, `fixtures/${name}:v1`);
      oracle[name] = await oracleUnpack(reg, `fixtures/${name}:v1`, join(work, 'oracle-' + name));
    }
  });
  after(async () => {
    await mounts.cleanup();
    await reg?.stop();
    if (work) await removeDir(work);
  });

  test('edge: the mount and a cp -a copy of it equal the umoci unpack; shell tools see the image', async () => {
    const mnt = await newDir('mnt');
    const m = await mounts.detached(ref('edge'), mnt, join(work, 'cache-edge'));
    const o = oracle.edge!;

    const copy = await newDir('copy');
    let r = await run('cp', ['-a', `${mnt}/.`, `${copy}/`]);
    assert.equal(r.code, 0, r.stderr);
    let diffs = await diff(o, copy);
    assert.deepEqual(diffs, [], 'cp -a copy:\n' + formatDiffs(diffs));
    diffs = await diff(o, mnt); // the mount itself: inode numbers (hardlink groups), xattrs through the kernel
    assert.deepEqual(diffs, [], 'mount:\n' + formatDiffs(diffs));

    r = await run('ls', ['-la', mnt]);
    assert.equal(r.code, 0, r.stderr);
    for (const name of ['.', '..', 'bin', 'etc', 'dev-null', 'fifo']) assert.match(r.stdout, new RegExp(` ${name.replace('.', '\\.')}\n`));
    assert.doesNotMatch(r.stdout, /stargz\.index\.json|prefetch\.landmark|\.wh\./);

    const listing = async (root: string): Promise<string[]> => {
      const f = await run('find', [root, '-mindepth', '1', '-printf', '%P\\n']);
      assert.equal(f.code, 0, f.stderr);
      return f.stdout.split('\n').filter((p) => p !== '' && !ESTARGZ_BOOKKEEPING.has(p)).sort();
    };
    assert.deepEqual(await listing(mnt), await listing(o));

    assert.deepEqual(await sha256Tree(mnt), await imageSums(o));

    r = await run('cat', [join(mnt, 'etc/hostname')]);
    assert.equal(r.stdout, await readFile(join(o, 'etc/hostname'), 'utf8'));

    r = await run('grep', ['-rl', 'root:x:0', mnt]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n'), [join(mnt, 'etc/passwd')]);

    for (const link of ['bin/sh', 'bin/abs-link']) {
      r = await run('readlink', [join(mnt, link)]);
      assert.equal(r.stdout.trim(), await readlink(join(o, link)));
    }

    // getfattr is not installed everywhere; python3's os.getxattr also exercises ERANGE (it tries 128 bytes first).
    const xattr = ['-c', 'import os,sys,json; p=sys.argv[1]; print(json.dumps({n: os.getxattr(p, n).decode() for n in sorted(os.listxattr(p))}))'];
    r = await run('python3', [...xattr, join(mnt, 'usr/share/data/xattr')]);
    assert.equal(r.code, 0, r.stderr);
    // user.empty (an empty PAX record in the layer) is not an xattr, as for OCI unpackers.
    assert.deepEqual(JSON.parse(r.stdout), { 'user.comment': 'hello' });
    r = await run('getfattr', ['-d', join(mnt, 'usr/share/data/xattr')]);
    if (r.code !== null) assert.match(r.stdout, /user\.comment="hello"/); // where `attr` is installed (CI installs it)

    r = await run('stat', ['-c', '%i %h', join(mnt, 'bin/tool'), join(mnt, 'bin/tool-hardlink')]);
    const [a, b] = r.stdout.trim().split('\n');
    assert.equal(a, b, 'hardlinks share an inode');
    assert.match(a!, / 2$/, 'and report two links');
    r = await run('stat', ['-c', '%i', join(mnt, 'bin/exact')]);
    assert.notEqual(r.stdout.trim(), a!.split(' ')[0]);

    r = await run('stat', ['-c', '%F %t:%T %a', join(mnt, 'dev-null'), join(mnt, 'fifo'), join(mnt, 'bin/setuid')]);
    assert.deepEqual(r.stdout.trim().split('\n'), ['character special file 1:3 666', 'fifo 0:0 644', 'regular file 0:0 4755']);

    for (const [cmd, args] of [
      ['touch', [join(mnt, 'new-file')]],
      ['mkdir', [join(mnt, 'new-dir')]],
      ['rm', ['-f', join(mnt, 'etc/hostname')]],
      ['sh', ['-c', 'echo x >> "$1"', 'sh', join(mnt, 'etc/hostname')]],
      ['chmod', ['777', join(mnt, 'etc/passwd')]],
    ] as const) {
      r = await run(cmd, [...args]);
      assert.notEqual(r.code, 0, `${cmd} must fail`);
      assert.match(r.stderr, /Read-only file system/, `${cmd}: ${r.stderr}`);
    }

    r = await run('df', ['-P', mnt]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /fixtures\/edge:v1/);

    await umount(mnt, m.pid);
  });

  for (const name of ['legacy', 'mixed']) {
    test(`${name}: a cp -a copy of the mount equals the umoci unpack`, async () => {
      const mnt = await newDir('mnt');
      const m = await mounts.detached(ref(name), mnt, join(work, `cache-${name}`));
      const copy = await newDir('copy');
      const r = await run('cp', ['-a', `${mnt}/.`, `${copy}/`]);
      assert.equal(r.code, 0, r.stderr);
      const diffs = await diff(oracle[name]!, copy);
      assert.deepEqual(diffs, [], formatDiffs(diffs));
      await umount(mnt, m.pid);
    });
  }

  test('lazy: mounting fetches the TOCs only, a cold read little, a sequential read reads ahead, a warm re-read nothing', async (t) => {
    const proxy: FaultProxy = await startFaultProxy(reg);
    t.after(() => proxy.close());
    const cache = join(work, 'cache-lazy');
    const mnt = await newDir('mnt');
    const sizes = await edgeLayerSizes();
    let m = await mounts.detached(ref('edge', proxy.host), mnt, cache, ['--prefetch', 'none']);

    const tails = sizes.reduce((n, s) => n + Math.min(s, TOC_TAIL_GUESS), 0);
    const whole = sizes.reduce((n, s) => n + s, 0);
    assert.ok(proxy.stats.blobBytesToClient > 0);
    assert.ok(proxy.stats.blobBytesToClient <= tails, `mount fetched ${proxy.stats.blobBytesToClient} blob bytes, TOC tails are ${tails}`);
    assert.ok(tails < whole);

    proxy.resetStats();
    let r = await run('cat', [join(mnt, 'etc/hostname')]);
    assert.equal(r.stdout, 'stargz-edge\n');
    assert.ok(proxy.stats.blobBytesToClient > 0 && proxy.stats.blobBytesToClient <= 64 * 1024, `cold cat fetched ${proxy.stats.blobBytesToClient} bytes`);

    proxy.resetStats();
    r = await run('sha256sum', [join(mnt, 'bin/big2')]);
    assert.equal(r.stdout.split(' ')[0], (await imageSums(oracle.edge!)).get('bin/big2'));
    const ranges = proxy.stats.log.filter((e) => e.path.includes(BIG_LAYER) && e.range !== undefined);
    // 1 MB read by the kernel 128 KiB at a time would be 8 requests without read-ahead.
    assert.ok(ranges.length >= 1 && ranges.length <= 4, `bin/big2 took ${ranges.length} range requests: ${ranges.map((e) => e.range).join(' ')}`);

    await umount(mnt, m.pid);

    // A new process with the same cache: not one blob byte, not even the TOCs.
    proxy.resetStats();
    m = await mounts.detached(ref('edge', proxy.host), mnt, cache, ['--prefetch', 'none']);
    r = await run('cat', [join(mnt, 'etc/hostname'), join(mnt, 'bin/big2')]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(proxy.stats.blobRequests, 0, JSON.stringify(proxy.stats.log));
    assert.equal(proxy.stats.blobBytesToClient, 0);
    await umount(mnt, m.pid);
  });

  test('a cold tar walks the tree: later files come ahead of the reader in few merged range requests', async (t) => {
    const proxy: FaultProxy = await startFaultProxy(reg);
    t.after(() => proxy.close());
    const mnt = await newDir('mnt');
    const m = await mounts.detached(ref('edge', proxy.host), mnt, join(work, 'cache-walk'), ['--prefetch', 'none']);
    proxy.resetStats();
    const r = await run('sh', ['-c', 'tar -C "$1" -cf - . | wc -c', 'sh', mnt]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(Number(r.stdout.trim()) > 1_000_000);
    // Without fetch-ahead each file costs at least one request of its own.
    const files = [...(await imageSums(oracle.edge!)).keys()].length;
    const ranges = proxy.stats.log.filter((e) => e.range !== undefined);
    assert.ok(ranges.length <= Math.ceil(files * 0.6), `${ranges.length} range requests for ${files} files: ${ranges.map((e) => e.range).join(' ')}`);
    // Nothing fetched twice: at most every layer once.
    const whole = (await edgeLayerSizes()).reduce((n, s) => n + s, 0);
    assert.ok(proxy.stats.blobBytesToClient <= whole, `${proxy.stats.blobBytesToClient} bytes fetched, the layers are ${whole}`);
    await umount(mnt, m.pid);
  });

  test('prefetch landmark: the prioritized files are cached in the background after mounting', async (t) => {
    const proxy = await startFaultProxy(reg);
    t.after(() => proxy.close());
    const mnt = await newDir('mnt');
    const log = join(work, 'prefetch.log');
    const m = await mounts.detached(ref('edge', proxy.host), mnt, join(work, 'cache-prefetch'), ['--prefetch', 'landmark', '--log-file', log]);
    await waitFor('the prefetch summary', async () => (await readFile(log, 'utf8')).includes('prefetch (landmark)'));
    assert.match(await readFile(log, 'utf8'), /prefetch \(landmark\): [1-9]\d* chunks/);

    proxy.resetStats();
    let r = await run('cat', [join(mnt, 'etc/hostname'), join(mnt, 'bin/tool')]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(proxy.stats.blobBytesToClient, 0, 'prioritized files come from the cache');
    r = await run('cat', [join(mnt, 'etc/passwd')]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(proxy.stats.blobBytesToClient > 0, 'a file after the landmark is fetched on demand');
    await umount(mnt, m.pid);
  });

  test('two mount processes share one cache directory', async () => {
    const cache = join(work, 'cache-shared');
    const [d1, d2] = [await newDir('mnt'), await newDir('mnt')];
    const [m1, m2] = await Promise.all([
      mounts.detached(ref('edge'), d1, cache, ['--prefetch', 'none']),
      mounts.foreground(ref('edge'), d2, cache, ['--prefetch', 'none']),
    ]);
    const expected = await imageSums(oracle.edge!);
    const [s1, s2] = await Promise.all([sha256Tree(d1), sha256Tree(d2)]);
    assert.deepEqual(s1, expected);
    assert.deepEqual(s2, expected);
    const info = await runCli(['cache', 'info', '--json', '--cache-dir', cache]);
    assert.equal(info.code, 0, info.stderr);
    assert.ok((JSON.parse(info.stdout) as { chunks: number }).chunks > 0);
    await umount(d1, m1.pid);
    await umount(d2, m2.pid);
    assert.equal((await m2.exited!).code, 0);
  });

  test('a small --cache-size bounds the disk cache; reads stay correct', async () => {
    const cache = join(work, 'cache-small');
    const bound = 256 * 1024;
    const expected = await imageSums(oracle.edge!);
    for (let round = 0; round < 2; round++) {
      const mnt = await newDir('mnt');
      const m = await mounts.detached(ref('edge'), mnt, cache, ['--cache-size', '256K', '--prefetch', 'none']);
      assert.deepEqual(await sha256Tree(mnt), expected);
      await umount(mnt, m.pid);
      const info = await runCli(['cache', 'info', '--json', '--cache-dir', cache]);
      assert.equal(info.code, 0, info.stderr);
      const { chunkBytes, chunks } = JSON.parse(info.stdout) as { chunkBytes: number; chunks: number };
      assert.ok(chunks > 0);
      assert.ok(chunkBytes <= bound, `round ${round}: cache holds ${chunkBytes} bytes, bound ${bound}`);
    }
  });

  test('registry down: a cold read fails with EIO in bounded time, the mount stays usable, and recovers', async (t) => {
    const reg2 = await startRegistry({ mode: 'plain' });
    t.after(() => reg2.stop());
    await pushLayout(reg2, 'edge', 'fixtures/edge:v1');
    const mnt = await newDir('mnt');
    const m = await mounts.detached(ref('edge', reg2.host), mnt, join(work, 'cache-eio'), ['--prefetch', 'none']);
    let r = await run('cat', [join(mnt, 'etc/hostname')]);
    assert.equal(r.stdout, 'stargz-edge\n');

    await reg2.stopProcess();
    r = await run('cat', [join(mnt, 'bin/big2')], 60_000);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /Input\/output error/);
    assert.ok(r.ms < 30_000, `EIO took ${r.ms} ms`);
    // Still usable: metadata, and what was read before.
    r = await run('ls', [join(mnt, 'bin')]);
    assert.equal(r.code, 0, r.stderr);
    r = await run('cat', [join(mnt, 'etc/hostname')]);
    assert.equal(r.stdout, 'stargz-edge\n');
    assert.match(m.stderr(), /read \/bin\/big2 .*EIO \(ERR_/);

    await reg2.restart();
    const want = (await imageSums(oracle.edge!)).get('bin/big2');
    await waitFor('the read to succeed again', async () => {
      r = await run('sha256sum', [join(mnt, 'bin/big2')]);
      return r.code === 0;
    }, 20_000, 500);
    assert.equal(r.stdout.split(' ')[0], want);
    await umount(mnt, m.pid);
  });

  test('foreground: SIGTERM and SIGINT unmount cleanly and exit 0', async () => {
    for (const sig of ['SIGTERM', 'SIGINT'] as const) {
      const mnt = await newDir('mnt');
      const m = await mounts.foreground(ref('edge'), mnt, join(work, 'cache-fg'));
      const r = await run('ls', [mnt]);
      assert.match(r.stdout, /etc/);
      m.child!.kill(sig);
      const { code, signal } = await m.exited!;
      assert.equal(signal, null);
      assert.equal(code, 0, m.stderr());
      assert.equal(isMounted(mnt), false);
      assert.match(m.stderr(), /unmounted/);
    }
  });

  test('kill -9: auto-unmount removes the mount; a dead mount left behind is cleaned up by the next mount', async () => {
    const mnt = await newDir('mnt');
    const cache = join(work, 'cache-kill');
    let m = await mounts.detached(ref('edge'), mnt, cache);
    // fusermount3 unmounts only if the mount is already dead when it sees its socket close;
    // a dying process releases its highest fds first, so the socket must sit below /dev/fuse
    // (otherwise ~1 kill -9 in 20 left a dead mount under load).
    const fds = unmountWatchFds(m.pid);
    assert.ok(fds.socket < fds.fuse, `fusermount's socket is fd ${fds.socket}, /dev/fuse fd ${fds.fuse}`);
    process.kill(m.pid, 'SIGKILL');
    await waitFor('the mount to go away', () => !isMounted(mnt), 10_000);
    await forceDown(m);

    // Kill the auto-unmount watcher too: the kernel keeps a dead mount.
    m = await mounts.detached(ref('edge'), mnt, cache);
    for (const c of childrenOf(m.pid)) if (c.comm.startsWith('fusermount')) process.kill(c.pid, 'SIGKILL');
    process.kill(m.pid, 'SIGKILL');
    await waitFor('the server to die', () => !isAlive(m.pid));
    assert.equal(isMounted(mnt), true, 'a dead mount is left');
    let r = await run('ls', [mnt]);
    assert.match(r.stderr, /Transport endpoint is not connected/);

    const log = join(work, 'recover.log');
    m = await mounts.detached(ref('edge'), mnt, cache, ['--log-file', log]);
    r = await run('cat', [join(mnt, 'etc/hostname')]);
    assert.equal(r.stdout, 'stargz-edge\n');
    assert.match(await readFile(log, 'utf8'), /cleaning up a dead mount/);
    await umount(mnt, m.pid);
  });

  test('usage and state errors exit with their statuses', async () => {
    const cache = join(work, 'cache-errors');
    const base = ['mount', '--plain-http', '--cache-dir', cache];
    let r = await runCli([...base, ref('edge'), join(work, 'missing-dir')]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /ERR_USAGE/);
    const full = await newDir('full');
    await writeFile(join(full, 'x'), 'x');
    r = await runCli([...base, ref('edge'), full]);
    assert.equal(r.code, 2, r.stderr);
    r = await runCli([...base, '--prefetch', 'sometimes', ref('edge'), await newDir('mnt')]);
    assert.equal(r.code, 2, r.stderr);
    r = await runCli(['umount', await newDir('not-mounted')]);
    assert.equal(r.code, 9, r.stderr);
    assert.match(r.stderr, /ERR_FUSE/);
    // -d reports the child's failure with its code.
    r = await runCli([...base, '-d', `${reg.host}/fixtures/nothing-here:v1`, await newDir('mnt')]);
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /ERR_REGISTRY_NOT_FOUND/);

    const mnt = await newDir('mnt');
    const m = await mounts.detached(ref('edge'), mnt, cache);
    r = await runCli([...base, ref('edge'), mnt]);
    assert.equal(r.code, 9, r.stderr);
    assert.match(r.stderr, /already mounted/);
    await umount(mnt, m.pid);
  });
});
