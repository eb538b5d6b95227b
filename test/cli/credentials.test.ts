// Credentials as a user keeps them: Docker credential helpers (per registry and global),
// identity tokens, containers' auth.json files and namespace keys — through the CLI against
// real Basic and token registries. Every run is at STARGZ_GET_DEBUG=1 and is checked for
// the secrets it used.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { startRegistry, pushLayout, type TestRegistry } from '../helpers/registry.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';
import { runCli, type CliResult } from '../helpers/cli.js';
import { isolatedEnv, writeCredHelper, type HelperState } from '../helpers/cred-helper.js';

const PASSWD = 'root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n';
const REFRESH = 'Refresh-Tok-7f3a9c';
const auth = (u: string, p: string) => ({ auth: Buffer.from(`${u}:${p}`).toString('base64') });

let work: string;
const regs: Partial<Record<'basic' | 'token', TestRegistry>> = {};
before(async () => {
  work = await makeTempDir('creds-cli-');
  regs.basic = await startRegistry({ mode: 'basic', password: 'Basic-Pw-41c2' });
  regs.token = await startRegistry({ mode: 'token', password: 'Token-Pw-93d7' });
  regs.token.tokenServer!.refreshToken = REFRESH;
  await Promise.all([pushLayout(regs.basic, 'edge', 'fixtures/edge:v1'), pushLayout(regs.token, 'edge', 'fixtures/edge:v1')]);
});
after(async () => {
  await regs.basic?.stop();
  await regs.token?.stop();
  if (work) await removeDir(work);
});

let n = 0;
interface Home {
  home: string;
  bin: string;
  env: NodeJS.ProcessEnv;
  write(path: string, doc: unknown): Promise<void>;
  docker: string;
  helper(name: string, state: HelperState): ReturnType<typeof writeCredHelper>;
  sync(reg: TestRegistry, extra?: string[], secrets?: string[]): Promise<CliResult & { dest: string }>;
}

async function newHome(): Promise<Home> {
  const home = join(work, `home-${n++}`);
  const bin = join(home, 'bin');
  await mkdir(bin, { recursive: true });
  const env = { ...isolatedEnv(home, [bin]), STARGZ_GET_DEBUG: '1' };
  const write = async (path: string, doc: unknown) => {
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, JSON.stringify(doc));
  };
  return {
    home,
    bin,
    env,
    write,
    docker: join(home, '.docker', 'config.json'),
    helper: (name, state) => writeCredHelper(bin, name, state),
    async sync(reg, extra = [], secrets = []) {
      const dest = join(home, `out-${n++}`);
      const r = await runCli(['sync', '--plain-http', '--retries', '0', '--cache-dir', join(home, `cache-${n++}`), ...extra, `${reg.host}/fixtures/edge:v1/etc/passwd`, dest], { env, timeoutMs: 60_000 });
      for (const s of [reg.password!, REFRESH, ...secrets, ...(reg.tokenServer?.tokens ?? [])]) {
        assert.ok(!r.stdout.includes(s) && !r.stderr.includes(s), `a secret leaked: ${r.stderr}`);
      }
      return { ...r, dest };
    },
  };
}

const ok = async (r: CliResult & { dest: string }) => {
  assert.equal(r.code, 0, r.stderr);
  assert.equal(await readFile(r.dest, 'utf8'), PASSWD);
};

for (const mode of ['basic', 'token'] as const) {
  describe(`a ${mode}-auth registry through a credential helper`, () => {
    test('per registry (credHelpers): the helper is asked for this registry, by host', async () => {
      const reg = regs[mode]!;
      const h = await newHome();
      const helper = await h.helper('perreg', { store: { [reg.host]: { Username: reg.username!, Secret: reg.password! } } });
      await h.write(h.docker, { credHelpers: { [reg.host]: 'perreg' }, auths: { [reg.host]: auth(reg.username!, 'wrong-in-auths') } });
      await ok(await h.sync(reg));
      assert.ok((await helper.calls()).every((c) => c.action === 'get' && c.server === reg.host));
      assert.ok((await helper.calls()).length >= 1);
    });

    test('global (credsStore)', async () => {
      const reg = regs[mode]!;
      const h = await newHome();
      const helper = await h.helper('store', { store: { [reg.host]: { Username: reg.username!, Secret: reg.password! } } });
      await h.write(h.docker, { credsStore: 'store', auths: { [reg.host]: {} } });
      await ok(await h.sync(reg));
      assert.ok((await helper.calls()).length >= 1);
    });

    test('"credentials not found": anonymous, so the registry says ERR_REGISTRY_AUTH (exit 4)', async () => {
      const reg = regs[mode]!;
      const h = await newHome();
      const helper = await h.helper('empty', { store: {} });
      await h.write(h.docker, { credsStore: 'empty' });
      const r = await h.sync(reg);
      assert.equal(r.code, 4, r.stderr);
      assert.match(r.stderr, /ERR_REGISTRY_AUTH/);
      assert.doesNotMatch(r.stderr, /ERR_CREDENTIALS/);
      assert.ok((await helper.calls()).length >= 1);
    });
  });
}

describe('misbehaving helpers', () => {
  test('a missing helper binary: one warning, then anonymous', async () => {
    const reg = regs.basic!;
    const h = await newHome();
    await h.write(h.docker, { credsStore: 'desktop' });
    const r = await h.sync(reg);
    assert.equal(r.code, 4, r.stderr);
    const warnings = r.stderr.split('\n').filter((l) => l.includes('docker-credential-desktop'));
    assert.equal(warnings.length, 1, r.stderr);
    assert.match(warnings[0]!, /not installed/);
  });

  test('a hanging helper: ERR_CREDENTIALS within the time limit, and nothing is left running', async () => {
    const reg = regs.token!;
    const h = await newHome();
    await h.helper('hang', { store: {}, hang: true });
    await h.write(h.docker, { credsStore: 'hang' });
    const started = Date.now();
    const r = await h.sync(reg);
    const ms = Date.now() - started;
    assert.equal(r.code, 4, r.stderr);
    assert.match(r.stderr, /ERR_CREDENTIALS: .*docker-credential-hang: no answer within 10000 ms/);
    assert.ok(ms < 20_000, `took ${ms} ms`);
  });

  test("a helper's stderr never reaches the terminal raw: ignored on success, scrubbed in an error", async () => {
    const reg = regs.basic!;
    const h = await newHome();
    const junk = '\x1b]0;owned\x07\x1b[2J JUNK-MARKER\n';
    await h.helper('noisy', { store: { [reg.host]: { Username: reg.username!, Secret: reg.password! } }, stderr: junk });
    await h.write(h.docker, { credsStore: 'noisy' });
    const good = await h.sync(reg);
    await ok(good);
    assert.doesNotMatch(good.stderr + good.stdout, /JUNK-MARKER|\x1b/);
    await h.helper('noisy', { store: {}, fail: { code: 1, stderr: '\x1b[31mfatal JUNK-MARKER\x1b[0m\nmore' } });
    const bad = await h.sync(reg);
    assert.equal(bad.code, 4, bad.stderr);
    assert.match(bad.stderr, /ERR_CREDENTIALS: credential helper docker-credential-noisy: get failed \(exit 1\): \\x1b\[31mfatal JUNK-MARKER\\x1b\[0m \(/);
    assert.doesNotMatch(bad.stderr, /\x1b|more/);
  });
});

describe('identity tokens (OAuth2 refresh-token grant)', () => {
  test('`identitytoken` in config.json', async () => {
    const reg = regs.token!;
    const h = await newHome();
    await h.write(h.docker, { auths: { [reg.host]: { auth: '', identitytoken: REFRESH } } });
    const before = { ...reg.tokenServer!.grants };
    await ok(await h.sync(reg));
    assert.ok(reg.tokenServer!.grants.refresh_token > before.refresh_token);
    assert.equal(reg.tokenServer!.grants.basic, before.basic);
  });

  test('a helper answering Username "<token>"', async () => {
    const reg = regs.token!;
    const h = await newHome();
    await h.helper('tok', { store: { [reg.host]: { Username: '<token>', Secret: REFRESH } } });
    await h.write(h.docker, { credHelpers: { [reg.host]: 'tok' } });
    const before = { ...reg.tokenServer!.grants };
    await ok(await h.sync(reg));
    assert.ok(reg.tokenServer!.grants.refresh_token > before.refresh_token);
    assert.equal(reg.tokenServer!.grants.basic, before.basic);
  });

  test('a refresh token the server did not issue: ERR_REGISTRY_AUTH', async () => {
    const reg = regs.token!;
    const h = await newHome();
    await h.write(h.docker, { auths: { [reg.host]: { identitytoken: 'Forged-Refresh-0000' } } });
    const r = await h.sync(reg, [], ['Forged-Refresh-0000']);
    assert.equal(r.code, 4, r.stderr);
    assert.match(r.stderr, /ERR_REGISTRY_AUTH.*identity token from .*config\.json refused/);
  });
});

describe("containers' auth.json", () => {
  const cases = [
    { name: '--authfile beats config.json', good: (h: Home) => join(h.home, 'given.json'), bad: (h: Home) => h.docker, flag: true },
    { name: '$REGISTRY_AUTH_FILE beats $XDG_RUNTIME_DIR', good: (h: Home) => join(h.home, 'env-auth.json'), bad: (h: Home) => join(h.home, 'run', 'containers', 'auth.json'), env: true },
    { name: '$XDG_RUNTIME_DIR beats $XDG_CONFIG_HOME', good: (h: Home) => join(h.home, 'run', 'containers', 'auth.json'), bad: (h: Home) => join(h.home, '.config', 'containers', 'auth.json') },
    { name: '$XDG_CONFIG_HOME beats config.json', good: (h: Home) => join(h.home, '.config', 'containers', 'auth.json'), bad: (h: Home) => h.docker },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      const reg = regs.basic!;
      const h = await newHome();
      await h.write(c.good(h), { auths: { [reg.host]: auth(reg.username!, reg.password!) } });
      await h.write(c.bad(h), { auths: { [reg.host]: auth(reg.username!, 'Loser-Pw-1') } });
      if (c.env) h.env.REGISTRY_AUTH_FILE = c.good(h);
      await ok(await h.sync(reg, c.flag ? ['--authfile', c.good(h)] : [], ['Loser-Pw-1']));
    });
  }

  test('namespace keys: host/ns beats host; another namespace does not apply', async () => {
    const reg = regs.basic!;
    const h = await newHome();
    const file = join(h.home, '.config', 'containers', 'auth.json');
    await h.write(file, { auths: { [reg.host]: auth(reg.username!, 'Host-Pw-1'), [`${reg.host}/fixtures`]: auth(reg.username!, reg.password!) } });
    await ok(await h.sync(reg, [], ['Host-Pw-1']));
    await h.write(file, { auths: { [reg.host]: auth(reg.username!, 'Host-Pw-1'), [`${reg.host}/other`]: auth(reg.username!, reg.password!) } });
    const r = await h.sync(reg, [], ['Host-Pw-1']);
    assert.equal(r.code, 4, r.stderr);
  });

  test('flags beat the environment, which beats the files', async () => {
    const reg = regs.basic!;
    const h = await newHome();
    await h.write(h.docker, { auths: { [reg.host]: auth(reg.username!, 'File-Pw-1') } });
    h.env.STARGZ_GET_USERNAME = reg.username!;
    h.env.STARGZ_GET_PASSWORD = reg.password!;
    await ok(await h.sync(reg, [], ['File-Pw-1']));
    h.env.STARGZ_GET_PASSWORD = 'Env-Pw-1';
    await ok(await h.sync(reg, ['--credential', `${reg.username}:${reg.password}`], ['File-Pw-1', 'Env-Pw-1']));
  });
});
