// The CLI against registries that want credentials: Basic (htpasswd) and the Bearer
// token flow, with every way a user can pass credentials.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startRegistry, pushLayout, type TestRegistry } from '../helpers/registry.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';
import { runCli } from '../helpers/cli.js';

const PASSWD = 'root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n';

for (const mode of ['basic', 'token'] as const) {
  describe(`sync from a ${mode}-auth registry`, () => {
    let reg: TestRegistry;
    let work: string;
    before(async () => {
      reg = await startRegistry({ mode });
      await pushLayout(reg, 'edge', 'fixtures/edge:v1');
      work = await makeTempDir(`auth-${mode}-`);
    });
    after(async () => {
      await reg?.stop();
      if (work) await removeDir(work);
    });
    let n = 0;
    const sync = (args: string[], input?: string, env?: NodeJS.ProcessEnv) =>
      runCli(['sync', '--plain-http', '--cache-dir', join(work, `cache-${n++}`), ...args], { input, env: { HOME: work, ...env } });
    const src = () => `${reg.host}/fixtures/edge:v1/etc/passwd`;

    test('--username with --password-stdin', async () => {
      const dest = join(work, 'a');
      const r = await sync([src(), dest, '--username', reg.username!, '--password-stdin'], reg.password + '\n');
      assert.equal(r.code, 0, r.stderr);
      assert.equal(await readFile(dest, 'utf8'), PASSWD);
    });

    test('--credential USER:PASSWORD', async () => {
      const dest = join(work, 'b');
      const r = await sync([src(), dest, '--credential', `${reg.username}:${reg.password}`]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(await readFile(dest, 'utf8'), PASSWD);
    });

    test("Docker's config.json", async () => {
      const home = join(work, 'home');
      await mkdir(join(home, '.docker'), { recursive: true });
      const auth = Buffer.from(`${reg.username}:${reg.password}`).toString('base64');
      await writeFile(join(home, '.docker', 'config.json'), JSON.stringify({ auths: { [reg.host]: { auth } } }));
      const dest = join(work, 'c');
      const r = await sync([src(), dest], undefined, { HOME: home });
      assert.equal(r.code, 0, r.stderr);
    });

    test('a wrong password: ERR_REGISTRY_AUTH, exit 4, and the password is not echoed', async () => {
      const r = await sync([src(), join(work, 'd'), '--credential', `${reg.username}:wrong-Secret-123`]);
      assert.equal(r.code, 4, r.stderr);
      assert.match(r.stderr, /ERR_REGISTRY_AUTH/);
      assert.doesNotMatch(r.stderr, /wrong-Secret-123/);
    });

    test('no credentials: ERR_REGISTRY_AUTH', async () => {
      const r = await sync([src(), join(work, 'e')]);
      assert.equal(r.code, 4, r.stderr);
    });

    test('contradictory credential flags are a usage error', async () => {
      const r = await sync([src(), join(work, 'f'), '--credential', 'a:b', '--username', 'a', '--password', 'b']);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /ERR_USAGE/);
    });
  });
}
