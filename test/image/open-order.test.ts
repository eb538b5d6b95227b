// openImage sends the manifest request first and opens the disk cache (SQLite) while it is on
// the wire: seen from outside, a cache that cannot be opened fails the command only after the
// registry was asked.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startRegistry, pushLayout, type TestRegistry } from '../helpers/registry.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';
import { runCli } from '../helpers/cli.js';

let reg: TestRegistry;
let proxy: FaultProxy;
let work: string;
before(async () => {
  reg = await startRegistry({ mode: 'plain' });
  await pushLayout(reg, 'edge', 'fixtures/edge:v1');
  proxy = await startFaultProxy(reg);
  work = await makeTempDir('open-order-');
});
after(async () => {
  await proxy?.close();
  await reg?.stop();
  if (work) await removeDir(work);
});

test('the manifest request goes out before the disk cache is opened', async () => {
  const notADir = join(work, 'file');
  writeFileSync(notADir, 'not a directory');
  const r = await runCli(['ls', '--plain-http', '--cache-dir', join(notADir, 'cache'), `${proxy.host}/fixtures/edge:v1/`]);
  assert.notEqual(r.code, 0, r.stdout);
  assert.deepEqual(proxy.stats.log.map((e) => e.path), ['/v2/fixtures/edge/manifests/v1']);
});
