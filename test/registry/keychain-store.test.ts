// login/logout storage: Docker's config.json written atomically with mode 0600, other keys
// kept, or the secret handed to the configured helper (store/erase).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { eraseCredentials, storeCredentials } from '../../src/registry/keychain-store.js';
import { tempDirFor } from '../helpers/tmp.js';
import { isolatedEnv, writeCredHelper } from '../helpers/cred-helper.js';

test('store and erase in config.json: mode 0600, other keys and entries kept, other spellings replaced', async (t) => {
  const home = await tempDirFor(t, 'kc-store-');
  const env = isolatedEnv(home);
  const dir = join(home, '.docker');
  await mkdir(dir);
  const before = { auths: { 'other:1': { auth: 'b3RoZXI6eA==' }, 'https://reg:1': { auth: 'b2xkOm9sZA==' } }, psFormat: 'table {{.ID}}', proxies: { default: { httpProxy: 'x' } } };
  await writeFile(join(dir, 'config.json'), JSON.stringify(before), { mode: 0o644 });
  const r = await storeCredentials('reg:1', 'me', 'store-pass-1', { env });
  assert.equal(r.path, join(dir, 'config.json'));
  const after = JSON.parse(await readFile(r.path, 'utf8'));
  assert.deepEqual(after, { ...before, auths: { 'other:1': before.auths['other:1'], 'reg:1': { auth: Buffer.from('me:store-pass-1').toString('base64') } } });
  assert.equal((await stat(r.path)).mode & 0o777, 0o600);
  assert.deepEqual((await readdir(dir)).sort(), ['config.json']); // no temporary left behind
  assert.equal((await eraseCredentials('reg:1', { env })).removed, true);
  assert.deepEqual(JSON.parse(await readFile(r.path, 'utf8')), { ...before, auths: { 'other:1': before.auths['other:1'] } });
  assert.equal((await eraseCredentials('reg:1', { env })).removed, false);
});

test('store and erase through the helper the file names; the file gets no secret', async (t) => {
  const home = await tempDirFor(t, 'kc-store-h-');
  const bin = join(home, 'bin');
  await mkdir(bin);
  const env = isolatedEnv(home, [bin]);
  const h = await writeCredHelper(bin, 'vault', { store: {} });
  await mkdir(join(home, '.docker'));
  const path = join(home, '.docker', 'config.json');
  await writeFile(path, JSON.stringify({ credsStore: 'vault' }));
  assert.deepEqual(await storeCredentials('reg:1', 'me', 'helper-pass-1', { env }), { path, helper: 'vault' });
  assert.deepEqual((await h.state()).store, { 'reg:1': { Username: 'me', Secret: 'helper-pass-1' } });
  const text = await readFile(path, 'utf8');
  assert.doesNotMatch(text, /helper-pass-1/);
  assert.deepEqual(JSON.parse(text), { credsStore: 'vault', auths: { 'reg:1': {} } });
  assert.equal((await eraseCredentials('reg:1', { env })).removed, true);
  assert.deepEqual((await h.state()).store, {});
  assert.deepEqual((await h.calls()).map((c) => c.action), ['store', 'erase']);
});
