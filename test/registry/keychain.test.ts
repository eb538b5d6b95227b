// The default keychain: the order of sources and files, the order of stores within a file,
// identity tokens, and that files are read at every lookup. Real files and fake helper
// programs on PATH; no registry.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { defaultKeychain, type KeychainOptions } from '../../src/registry/keychain.js';
import { ErrorCodes, isStargzError, redact } from '../../src/errors.js';
import { tempDirFor } from '../helpers/tmp.js';
import { isolatedEnv, writeCredHelper } from '../helpers/cred-helper.js';

const REG = '127.0.0.1:5999';
const auth = (u: string, p: string) => ({ auth: Buffer.from(`${u}:${p}`).toString('base64') });

async function json(path: string, doc: unknown): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, JSON.stringify(doc));
}

async function setup(t: { after(fn: () => unknown): void }) {
  const home = await tempDirFor(t, 'kc-home-');
  const bin = join(home, 'bin');
  await mkdir(bin);
  const env = isolatedEnv(home, [bin]);
  const files = {
    docker: join(home, '.docker', 'config.json'),
    xdgConfig: join(home, '.config', 'containers', 'auth.json'),
    xdgRuntime: join(home, 'run', 'containers', 'auth.json'),
    registryAuthFile: join(home, 'registry-auth.json'),
    authFile: join(home, 'authfile.json'),
  };
  const warnings: string[] = [];
  const kc = (o: KeychainOptions = {}) => defaultKeychain({ env, helperTimeoutMs: 2000, warn: (m) => warnings.push(m), ...o });
  return { home, bin, env, files, warnings, kc };
}

describe('default keychain', () => {
  test('files in order: --authfile, $REGISTRY_AUTH_FILE, XDG_RUNTIME_DIR, XDG_CONFIG_HOME, then Docker', async (t) => {
    const s = await setup(t);
    const order = ['authFile', 'registryAuthFile', 'xdgRuntime', 'xdgConfig', 'docker'] as const;
    for (const [i, f] of order.entries()) await json(s.files[f], { auths: { [REG]: auth('u', `from-${f}-${i}`) } });
    s.env.REGISTRY_AUTH_FILE = s.files.registryAuthFile;
    for (const f of order) {
      const got = await s.kc({ authFile: s.files.authFile }).lookup(REG, 'r');
      assert.equal(got?.kind === 'basic' && got.password.startsWith(`from-${f}-`), true, `${f}: ${JSON.stringify(got)}`);
      await json(s.files[f], { auths: { 'other.example': auth('x', 'y') } }); // nothing for REG: the next file decides
    }
    assert.equal(await s.kc({ authFile: s.files.authFile }).lookup(REG, 'r'), undefined);
  });

  test('the environment beats every file', async (t) => {
    const s = await setup(t);
    await json(s.files.docker, { auths: { [REG]: auth('u', 'file-pass') } });
    s.env.STARGZ_GET_USERNAME = 'envuser';
    s.env.STARGZ_GET_PASSWORD = 'env-pass-1';
    assert.deepEqual(await s.kc().lookup(REG, 'r'), { kind: 'basic', username: 'envuser', password: 'env-pass-1', source: 'STARGZ_GET_USERNAME/STARGZ_GET_PASSWORD' });
  });

  test('within a file: credHelpers[registry], then credsStore, then auths', async (t) => {
    const s = await setup(t);
    await writeCredHelper(s.bin, 'per', { store: { [REG]: { Username: 'hu', Secret: 'per-registry-secret' } } });
    await writeCredHelper(s.bin, 'global', { store: { [REG]: { Username: 'gu', Secret: 'global-store-secret' } } });
    const file = { auths: { [REG]: auth('au', 'auths-secret') }, credsStore: 'global', credHelpers: { [REG]: 'per' } };
    await json(s.files.docker, file);
    assert.equal(((await s.kc().lookup(REG, 'r')) as { password: string }).password, 'per-registry-secret');
    await json(s.files.docker, { ...file, credHelpers: { 'elsewhere:1': 'per' } });
    assert.equal(((await s.kc().lookup(REG, 'r')) as { password: string }).password, 'global-store-secret');
    await json(s.files.docker, { auths: file.auths });
    assert.equal(((await s.kc().lookup(REG, 'r')) as { password: string }).password, 'auths-secret');
    // What helpers and files held is known as secret.
    assert.equal(redact('per-registry-secret global-store-secret auths-secret'), '<redacted> <redacted> <redacted>');
  });

  test('a helper that has nothing: anonymous, not an error (and auths is not consulted)', async (t) => {
    const s = await setup(t);
    const h = await writeCredHelper(s.bin, 'empty', { store: {} });
    await json(s.files.docker, { credsStore: 'empty', auths: { [REG]: auth('u', 'p-not-used') } });
    assert.equal(await s.kc().lookup(REG, 'r'), undefined);
    assert.deepEqual(await h.calls(), [{ action: 'get', server: REG }]);
  });

  test('identity tokens: `identitytoken`, and a helper answering Username "<token>"', async (t) => {
    const s = await setup(t);
    await json(s.files.docker, { auths: { [REG]: { identitytoken: 'refresh-abc-123' } } });
    assert.deepEqual(await s.kc().lookup(REG, 'r'), { kind: 'refresh-token', refreshToken: 'refresh-abc-123', source: s.files.docker });
    await writeCredHelper(s.bin, 'tok', { store: { [REG]: { Username: '<token>', Secret: 'refresh-from-helper' } } });
    await json(s.files.docker, { credHelpers: { [REG]: 'tok' } });
    const got = await s.kc().lookup(REG, 'r');
    assert.equal(got?.kind, 'refresh-token');
    assert.equal(got?.kind === 'refresh-token' && got.refreshToken, 'refresh-from-helper');
    assert.equal(redact('refresh-abc-123 refresh-from-helper'), '<redacted> <redacted>');
  });

  test('files are read at every lookup: a rewritten file is seen by the same keychain', async (t) => {
    const s = await setup(t);
    const kc = s.kc();
    await json(s.files.docker, { auths: { [REG]: auth('u', 'first-pass') } });
    assert.equal(((await kc.lookup(REG, 'r')) as { password: string }).password, 'first-pass');
    await json(s.files.docker, { auths: { [REG]: auth('u', 'rotated-pass') } });
    assert.equal(((await kc.lookup(REG, 'r')) as { password: string }).password, 'rotated-pass');
  });

  test('namespace keys: most specific first', async (t) => {
    const s = await setup(t);
    await json(s.files.xdgConfig, { auths: { [REG]: auth('u', 'host-pass'), [`${REG}/team`]: auth('u', 'team-pass'), [`${REG}/team/app`]: auth('u', 'app-pass') } });
    const pw = async (repo: string) => ((await s.kc().lookup(REG, repo)) as { password: string }).password;
    assert.equal(await pw('team/app'), 'app-pass');
    assert.equal(await pw('team/other'), 'team-pass');
    assert.equal(await pw('solo'), 'host-pass');
  });

  test('a malformed file is ERR_CREDENTIALS, not silently anonymous', async (t) => {
    const s = await setup(t);
    await mkdir(dirname(s.files.docker), { recursive: true });
    await writeFile(s.files.docker, '{"auths": ');
    await assert.rejects(s.kc().lookup(REG, 'r'), (err: unknown) => isStargzError(err, ErrorCodes.CREDENTIALS));
  });
});
