// Fetches start early. A sync into a new DEST fetches PATH's chunks of the top layer as soon as
// that layer's TOC is in, while a lower layer's TOC is still on its way (image/head-start.ts) —
// with no byte fetched twice and the merged result exact; over an existing DEST, nothing is
// fetched ahead of the reuse check. And openImage sends the manifest request before it opens the
// disk cache (SQLite): a cache that cannot be opened fails the command after the registry was asked.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startRegistry, pushLayout, type TestRegistry } from '../helpers/registry.js';
import { startFaultProxy, type FaultLogEntry, type FaultProxy } from '../helpers/fault-proxy.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';
import { runCli } from '../helpers/cli.js';

// The edge fixture's layers, bottom to top: the top one has etc/overwritten (and a whiteout
// of the bottom layer's etc/one); the middle one is held back by the proxy.
const MIDDLE = 'sha256:c5e4a3cc121f3d03e1c566372a11782f97ac049ff3b0518ca8a3faf8fd9d73f8';
const TOP = 'sha256:694863fcea43cd33908308feccfd9957660b2d49e4999d2cfe816c963181711a';
const HOLD_MS = 3000;

describe('early fetches', () => {
  let reg: TestRegistry;
  let proxy: FaultProxy;
  let work: string;
  before(async () => {
    reg = await startRegistry({ mode: 'plain' });
    await pushLayout(reg, 'edge', 'fixtures/edge:v1');
    proxy = await startFaultProxy(reg);
    work = await makeTempDir('head-start-');
  });
  after(async () => {
    await proxy?.close();
    await reg?.stop();
    if (work) await removeDir(work);
  });

  /** sync /etc through the proxy with an empty cache, the middle layer's first blob request held HOLD_MS. */
  const syncEtc = async (dest: string, cache: string): Promise<FaultLogEntry[]> => {
    proxy.resetStats();
    proxy.rules.splice(0, proxy.rules.length, { match: { pathIncludes: MIDDLE }, action: 'delay', delayMs: HOLD_MS, times: 1 });
    const r = await runCli(['sync', '-q', '--plain-http', '--cache-dir', cache, `${proxy.host}/fixtures/edge:v1/etc`, dest]);
    assert.equal(r.code, 0, r.stderr);
    return proxy.stats.log;
  };
  const ofBlob = (log: FaultLogEntry[], digest: string): FaultLogEntry[] => log.filter((e) => e.path.endsWith(`/blobs/${digest}`));

  test('into a new DEST: the top layer chunk is asked for while the middle TOC is held, once', async () => {
    const dest = join(work, 'new');
    const log = await syncEtc(dest, join(work, 'cache-new'));
    const held = ofBlob(log, MIDDLE)[0]!;
    const top = ofBlob(log, TOP);
    // The top blob (1 KiB) is one request for its TOC, then one for the chunk of etc/overwritten.
    assert.equal(top.length, 2, JSON.stringify(top));
    assert.ok(top[1]!.at < held.at + HOLD_MS, `the chunk request came ${Math.round(top[1]!.at - held.at)} ms after the held TOC request, not while it was held`);
    const ranges = log.filter((e) => e.range !== undefined).map((e) => `${e.path} ${e.range}`);
    assert.deepEqual(ranges, [...new Set(ranges)], 'no range asked for twice');
    // The merged result: the top layer's file, the bottom layer's etc/one whited out.
    assert.equal(readFileSync(join(dest, 'overwritten'), 'utf8').length, 23);
    assert.equal(statSync(join(dest, 'overwritten')).mode & 0o777, 0o600);
    assert.equal(existsSync(join(dest, 'one')), false);
    assert.equal(readFileSync(join(dest, 'hostname'), 'utf8'), 'stargz-edge\n');
  });

  test('onto a DEST that already has PATH: no chunk is fetched, not even ahead', async () => {
    const dest = join(work, 'again');
    await syncEtc(dest, join(work, 'cache-first'));
    const log = await syncEtc(dest, join(work, 'cache-second'));
    assert.equal(ofBlob(log, TOP).length, 1, 'the TOC request alone');
    assert.ok(ofBlob(log, MIDDLE).length >= 1);
  });

  test('the manifest request goes out before the disk cache is opened', async () => {
    const notADir = join(work, 'file');
    writeFileSync(notADir, 'not a directory');
    proxy.resetStats();
    proxy.rules.splice(0, proxy.rules.length);
    const r = await runCli(['ls', '--plain-http', '--cache-dir', join(notADir, 'cache'), `${proxy.host}/fixtures/edge:v1/`]);
    assert.notEqual(r.code, 0, r.stdout);
    assert.deepEqual(proxy.stats.log.map((e) => e.path), ['/v2/fixtures/edge/manifests/v1']);
  });
});
