// A detached mount outlives its credentials: the token expires, the password is rotated at
// the token server and in config.json, and reads after that still work — because the mount
// reads the file again whenever it needs a new token. The mount log holds no secret.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startRegistry, pushLayout, type TestRegistry } from '../helpers/registry.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';
import { runCli } from '../helpers/cli.js';
import { isolatedEnv } from '../helpers/cred-helper.js';
import { Mounts, isMounted, run } from './mount-helpers.js';

const TTL_SECONDS = 2;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let reg: TestRegistry;
let work: string;
const mounts = new Mounts();
before(async () => {
  reg = await startRegistry({ mode: 'token', password: 'Rotate-Pw-0-aa11' });
  await pushLayout(reg, 'edge', 'fixtures/edge:v1');
  work = await makeTempDir('rotation-');
  // Mounts.detached runs the CLI with this process's environment: this file's own process.
  Object.assign(process.env, isolatedEnv(join(work, 'home')), { STARGZ_GET_DEBUG: '1' });
});
after(async () => {
  await mounts.cleanup();
  await reg?.stop();
  if (work) await removeDir(work);
});

async function writeConfig(password: string): Promise<void> {
  const dir = join(work, 'home', '.docker');
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'config.json'), JSON.stringify({ auths: { [reg.host]: { auth: Buffer.from(`${reg.username}:${password}`).toString('base64') } } }));
}

test('mount -d keeps reading after the token expires and the credentials rotate', async () => {
  const ts = reg.tokenServer!;
  ts.ttlSeconds = TTL_SECONDS;
  const passwords = ['Rotate-Pw-0-aa11', 'Rotate-Pw-1-bb22', 'Rotate-Pw-2-cc33'];
  await writeConfig(passwords[0]!);
  const mnt = join(work, 'mnt');
  await mkdir(mnt);
  const log = join(work, 'mount.log');
  const m = await mounts.detached(`${reg.host}/fixtures/edge:v1`, mnt, join(work, 'cache'), ['--prefetch', 'none', '--log-file', log]);

  // Each read below touches a chunk no earlier read fetched.
  const files = [['etc/passwd', /^root:x:0:0/], ['etc/overwritten', /^version 3 from layer 2/], ['opq/new', /^only this survives/]] as const;
  for (const [i, [file, want]] of files.entries()) {
    if (i > 0) {
      // The old password stops working; the new one is only in the file.
      ts.password = passwords[i]!;
      await writeConfig(passwords[i]!);
      await sleep(TTL_SECONDS * 1000 + 500); // the mount's token is now expired
    }
    const before = ts.grants.basic;
    const r = await run('cat', [join(mnt, file)]);
    assert.equal(r.code, 0, `${file}: ${r.stderr}\n${await readFile(log, 'utf8')}`);
    assert.match(r.stdout, want);
    if (i > 0) assert.ok(ts.grants.basic > before, 'a new token was fetched with the rotated password');
  }

  const u = await runCli(['umount', mnt]);
  assert.equal(u.code, 0, u.stderr);
  assert.equal(isMounted(mnt), false);
  const text = await readFile(log, 'utf8');
  for (const s of [...passwords, ...ts.tokens]) assert.ok(!text.includes(s), 'a secret is in the mount log');
  void m;
});
