// A pull does not ping (GET /v2/) a registry whose scheme is known (--plain-http here; HTTPS
// off loopback): the first request is the manifest, and a registry that wants credentials says
// so in that request's 401, answered once. Pushes and a loopback registry without --plain-http
// (whose scheme the ping decides) still ping.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startRegistry, pushLayout, credsOf, type RegistryMode, type TestRegistry } from '../helpers/registry.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';
import { runCli } from '../helpers/cli.js';

const MANIFEST = '/v2/fixtures/edge/manifests/v1';

for (const mode of ['plain', 'basic', 'token'] as RegistryMode[]) {
  describe(`pull from a ${mode} registry`, () => {
    let reg: TestRegistry;
    let proxy: FaultProxy;
    let work: string;
    before(async () => {
      reg = await startRegistry({ mode });
      await pushLayout(reg, 'edge', 'fixtures/edge:v1');
      proxy = await startFaultProxy(reg);
      work = await makeTempDir('no-ping-');
    });
    after(async () => {
      await proxy?.close();
      await reg?.stop();
      if (work) await removeDir(work);
    });
    const creds = (): string[] => (credsOf(reg) ? ['--credential', credsOf(reg)!] : []);

    test('--plain-http: no ping, the manifest first; at most one 401, the first answer', async () => {
      proxy.resetStats();
      const r = await runCli(['cat', '--plain-http', '--cache-dir', join(work, 'cache'), ...creds(), `${proxy.host}/fixtures/edge:v1/etc/hostname`]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'stargz-edge\n');
      const log = proxy.stats.log;
      assert.deepEqual(log.filter((e) => e.path === '/v2/'), [], 'no ping');
      assert.equal(log[0]!.path, MANIFEST);
      const refused = log.filter((e) => e.status === 401);
      assert.deepEqual(refused, mode === 'plain' ? [] : [log[0]], 'the first answer is the only 401');
      if (mode === 'token') assert.ok(log.some((e) => e.path.startsWith('/token') && e.status === 200), 'the token fetched after the 401');
    });

    test('without --plain-http a loopback registry is still pinged (the ping picks the scheme)', async () => {
      proxy.resetStats();
      const r = await runCli(['cat', '--cache-dir', join(work, 'cache-2'), ...creds(), `${proxy.host}/fixtures/edge:v1/etc/hostname`]);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(proxy.stats.log.some((e) => e.path === '/v2/'), 'pinged over plain HTTP after HTTPS failed');
    });
  });
}
