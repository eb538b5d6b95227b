// `stargz-get login` / `logout` against real registries: the credentials are checked first,
// then stored the way docker login stores them (config.json mode 0600, other keys intact, or
// the configured helper's store/erase), and later commands find them.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startRegistry, pushLayout, type TestRegistry } from '../helpers/registry.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';
import { runCli, type CliResult } from '../helpers/cli.js';
import { isolatedEnv, writeCredHelper } from '../helpers/cred-helper.js';

let work: string;
let n = 0;
before(async () => {
  work = await makeTempDir('login-cli-');
});
after(async () => {
  if (work) await removeDir(work);
});

async function home(): Promise<{ home: string; bin: string; env: NodeJS.ProcessEnv; config: string }> {
  const h = join(work, `home-${n++}`);
  const bin = join(h, 'bin');
  await mkdir(join(h, '.docker'), { recursive: true });
  await mkdir(bin);
  return { home: h, bin, env: { ...isolatedEnv(h, [bin]), STARGZ_GET_DEBUG: '1' }, config: join(h, '.docker', 'config.json') };
}

function noLeak(r: CliResult, secrets: string[]): void {
  for (const s of secrets) assert.ok(!r.stdout.includes(s) && !r.stderr.includes(s), `secret in output: ${r.stdout} ${r.stderr}`);
}

for (const mode of ['basic', 'token'] as const) {
  describe(`login/logout, ${mode}-auth registry`, () => {
    let reg: TestRegistry;
    before(async () => {
      reg = await startRegistry({ mode, password: `Login-Pw-${mode}-77` });
      await pushLayout(reg, 'edge', 'fixtures/edge:v1');
    });
    after(() => reg?.stop());
    const login = (env: NodeJS.ProcessEnv, password: string) =>
      runCli(['login', '--plain-http', '-u', reg.username!, '--password-stdin', reg.host], { env, input: password + '\n' });
    const ls = (env: NodeJS.ProcessEnv) => runCli(['ls', '--plain-http', '--cache-dir', join(work, `cache-${n++}`), `${reg.host}/fixtures/edge:v1/etc`], { env });

    test('round trip in config.json: verified, 0600, other keys kept; logout erases', async () => {
      const h = await home();
      const other = { auths: { 'other.example': { auth: 'eDp5' } }, credHelpers: { 'gcr.io': 'gcloud' }, detachKeys: 'ctrl-q' };
      await writeFile(h.config, JSON.stringify(other), { mode: 0o644 });

      const wrong = await login(h.env, 'Wrong-Pw-000');
      assert.equal(wrong.code, 4, wrong.stderr);
      assert.match(wrong.stderr, /ERR_REGISTRY_AUTH/);
      noLeak(wrong, ['Wrong-Pw-000']);
      assert.deepEqual(JSON.parse(await readFile(h.config, 'utf8')), other, 'a refused login writes nothing');

      const r = await login(h.env, reg.password!);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /Login Succeeded/);
      noLeak(r, [reg.password!]);
      const doc = JSON.parse(await readFile(h.config, 'utf8'));
      assert.deepEqual(doc, { ...other, auths: { ...other.auths, [reg.host]: { auth: Buffer.from(`${reg.username}:${reg.password}`).toString('base64') } } });
      assert.equal((await stat(h.config)).mode & 0o777, 0o600);

      const listed = await ls(h.env);
      assert.equal(listed.code, 0, listed.stderr);
      assert.match(listed.stdout, /passwd/);

      const out = await runCli(['logout', reg.host], { env: h.env });
      assert.equal(out.code, 0, out.stderr);
      assert.match(out.stdout, /Removed login credentials/);
      assert.deepEqual(JSON.parse(await readFile(h.config, 'utf8')), other);
      assert.equal((await ls(h.env)).code, 4);
    });

    test('through the configured helper: store on login, erase on logout; the file holds no secret', async () => {
      const h = await home();
      const helper = await writeCredHelper(h.bin, 'vault', { store: {} });
      await writeFile(h.config, JSON.stringify({ credsStore: 'vault' }));
      const r = await login(h.env, reg.password!);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual((await helper.state()).store, { [reg.host]: { Username: reg.username, Secret: reg.password } });
      const text = await readFile(h.config, 'utf8');
      assert.ok(!text.includes(reg.password!) && !text.includes(Buffer.from(`${reg.username}:${reg.password}`).toString('base64')));
      assert.equal((await ls(h.env)).code, 0);
      const out = await runCli(['logout', reg.host], { env: h.env });
      assert.equal(out.code, 0, out.stderr);
      assert.deepEqual((await helper.state()).store, {});
      assert.deepEqual((await helper.calls()).filter((c) => c.action !== 'get').map((c) => `${c.action} ${c.server}`), [`store ${reg.host}`, `erase ${reg.host}`]);
    });
  });
}

test('login without a password and without a terminal is a usage error', async () => {
  const h = await home();
  const r = await runCli(['login', '-u', 'me', '127.0.0.1:1'], { env: h.env });
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /ERR_USAGE/);
});
