// ls, info, the cache across runs, --offline and --platform, through the real CLI.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startRegistry, pushLayout, type TestRegistry } from '../helpers/registry.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';
import { runCli } from '../helpers/cli.js';

describe('CLI commands', () => {
  let reg: TestRegistry;
  let proxy: FaultProxy;
  let work: string;
  before(async () => {
    reg = await startRegistry({ mode: 'plain' });
    await pushLayout(reg, 'edge', 'fixtures/edge:v1');
    await pushLayout(reg, 'mixed', 'fixtures/mixed:v1');
    await pushLayout(reg, 'multi', 'fixtures/multi:v1', { all: true });
    proxy = await startFaultProxy(reg);
    work = await makeTempDir('cli-');
  });
  after(async () => {
    await proxy?.close();
    await reg?.stop();
    if (work) await removeDir(work);
  });
  const cli = (args: string[], cache = 'cache') => runCli([...args, '--plain-http', '--cache-dir', join(work, cache)]);

  test('ls -l shows the merged view: whiteouts applied, modes, owners, links', async () => {
    const r = await cli(['ls', '-l', `${reg.host}/fixtures/edge:v1/`]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    const names = lines.map((l) => l.split(' ').pop());
    assert.deepEqual(names, ['bin', 'dev-null', 'etc', 'fifo', 'gone', 'opq', 'replaced-by-file', 'tmp', 'usr', 'will-be-dir']);
    assert.match(lines.find((l) => l.endsWith(' tmp'))!, /^drwxrwxrwt /);
    assert.match(lines.find((l) => l.endsWith(' dev-null'))!, /^crw-rw-rw- .* 1, 3 /);
    const bin = await cli(['ls', '-l', `${reg.host}/fixtures/edge:v1/bin`]);
    assert.match(bin.stdout, /-rwsr-xr-x .* setuid/);
    assert.match(bin.stdout, /lrwxrwxrwx .* sh -> tool/);
    assert.match(bin.stdout, /-rwxr-xr-x +2 .* 300000 .* tool\n/);
    assert.doesNotMatch(bin.stdout, /dangling/);
    const opq = await cli(['ls', `${reg.host}/fixtures/edge:v1/opq`]);
    assert.equal(opq.stdout, 'new\n');
  });

  test('ls -R --json lists the subtree with digests and xattrs', async () => {
    const r = await cli(['ls', '-R', '--json', `${reg.host}/fixtures/edge:v1/usr/share/data`]);
    assert.equal(r.code, 0, r.stderr);
    const entries = JSON.parse(r.stdout) as Array<{ path: string; uid: number; mode: string; xattrs?: Record<string, string> }>;
    const owned = entries.find((e) => e.path === '/usr/share/data/owned')!;
    assert.equal(owned.uid, 1000);
    assert.equal(owned.mode, '0640');
    const x = entries.find((e) => e.path === '/usr/share/data/xattr')!;
    assert.equal(Buffer.from(x.xattrs!['user.comment']!, 'base64').toString(), 'hello');
  });

  test('ls and info fetch nothing but manifests and TOCs', async () => {
    proxy.resetStats();
    const r = await runCli(['info', `${proxy.host}/fixtures/edge:v1`, '--plain-http', '--cache-dir', join(work, 'cache-info')]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /layers +3, .*lazy: 3\/3/);
    assert.ok(proxy.stats.blobBytesToClient <= 3 * 32 * 1024, `fetched ${proxy.stats.blobBytesToClient}`);
  });

  test('info says which layers are lazy, without downloading plain ones', async () => {
    proxy.resetStats();
    const r = await runCli(['info', '--json', `${proxy.host}/fixtures/mixed:v1`, '--plain-http', '--cache-dir', join(work, 'cache-mixed')]);
    assert.equal(r.code, 0, r.stderr);
    const info = JSON.parse(r.stdout) as { layers: Array<{ lazy: boolean; format: string; compressedSize: number }> };
    assert.deepEqual(info.layers.map((l) => [l.format, l.lazy]), [['tar+gzip', false], ['estargz', true], ['estargz', true]]);
    assert.ok(proxy.stats.blobBytesToClient < info.layers[0]!.compressedSize, 'the plain layer was not downloaded');
  });

  test('a second sync is served from the cache: no blob bytes fetched; --offline works too', async () => {
    const cache = 'cache-repeat';
    const src = `${proxy.host}/fixtures/edge:v1`;
    let r = await runCli(['sync', src, join(work, 'first'), '--plain-http', '--cache-dir', join(work, cache)]);
    assert.equal(r.code, 0, r.stderr);
    proxy.resetStats();
    r = await runCli(['sync', src, join(work, 'second'), '--plain-http', '--cache-dir', join(work, cache)]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(proxy.stats.blobBytesToClient, 0, 'warm sync fetched blob bytes');
    assert.match(r.stderr, /fetched 0 B/);
    assert.deepEqual(await readFile(join(work, 'second/bin/big2')), await readFile(join(work, 'first/bin/big2')));
    proxy.resetStats();
    r = await runCli(['sync', src, join(work, 'third'), '--offline', '--cache-dir', join(work, cache)]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(proxy.stats.requests, 0, 'offline made requests');
    r = await runCli(['sync', `${proxy.host}/fixtures/never:v1`, join(work, 'fourth'), '--offline', '--cache-dir', join(work, cache)]);
    assert.equal(r.code, 7, r.stderr);
    assert.match(r.stderr, /ERR_OFFLINE_MISS/);
  });

  test('the mixed image is served from the cache on repeat too', async () => {
    const cache = 'cache-mixed-repeat';
    const src = `${proxy.host}/fixtures/mixed:v1/etc`;
    let r = await runCli(['sync', src, join(work, 'm1'), '--plain-http', '--cache-dir', join(work, cache)]);
    assert.equal(r.code, 0, r.stderr);
    proxy.resetStats();
    r = await runCli(['sync', src, join(work, 'm2'), '--plain-http', '--cache-dir', join(work, cache)]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(proxy.stats.blobBytesToClient, 0);
    assert.doesNotMatch(r.stderr, /fetching it whole/);
  });

  test('--platform picks an image from an index', async () => {
    let r = await cli(['info', '--json', `${reg.host}/fixtures/multi:v1`, '--platform', 'linux/arm64']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as { layers: Array<{ format: string }> }).layers[0]!.format, 'tar+gzip');
    r = await cli(['info', '--json', `${reg.host}/fixtures/multi:v1`, '--platform', 'linux/amd64']);
    assert.equal((JSON.parse(r.stdout) as { layers: Array<{ format: string }> }).layers[0]!.format, 'estargz');
    r = await cli(['info', `${reg.host}/fixtures/multi:v1`, '--platform', 'linux/s390x']);
    assert.equal(r.code, 3);
    assert.match(r.stderr, /ERR_PLATFORM_NOT_FOUND/);
  });

  test('usage errors exit 2 with ERR_USAGE', async () => {
    let r = await runCli(['sync']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /ERR_USAGE/);
    r = await cli(['sync', `${reg.host}/fixtures/edge:v1`, join(work, 'x'), '--concurrency', '0']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /ERR_USAGE/);
  });
});
