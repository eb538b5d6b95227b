// No secret the keychain reads ever reaches output: servers that echo what they were sent
// (a registry echoing the Basic credential in a 403, a token realm echoing the refresh token
// it refused) are run against every source of credentials, at STARGZ_GET_DEBUG=1, and
// stdout, stderr and a detached mount's log are grepped for every form of the secrets.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { startRegistry, pushLayout, type TestRegistry } from '../helpers/registry.js';
import { startHostileServer, type HostileServer } from '../helpers/hostile-server.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';
import { runCli, type CliResult } from '../helpers/cli.js';
import { isolatedEnv, writeCredHelper } from '../helpers/cred-helper.js';

/** Every shape a secret takes on the wire or in JSON. */
function forms(secret: string): string[] {
  return [secret, encodeURIComponent(secret), Buffer.from(secret).toString('base64')];
}

function assertClean(what: string, text: string, secrets: string[]): void {
  for (const s of secrets.flatMap(forms)) assert.ok(!text.includes(s), `${what} shows a secret (${s.slice(0, 3)}…):\n${text}`);
}

/** A registry whose /v2/ asks for a Bearer token from its own /token, which refuses and echoes the form it got. */
async function echoingTokenRealm(): Promise<{ host: string; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      if (req.url?.startsWith('/token')) {
        const form = new URLSearchParams(body);
        res.writeHead(401, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ errors: [{ code: 'DENIED', message: `refresh token ${form.get('refresh_token')} is revoked`, detail: body }] }));
        return;
      }
      res.writeHead(401, { 'www-authenticate': `Bearer realm="http://${req.headers.host}/token",service="echo"`, 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  server.unref();
  return {
    host: `127.0.0.1:${(server.address() as { port: number }).port}`,
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

let work: string;
let reg: TestRegistry;
let echo: HostileServer;
let n = 0;
before(async () => {
  work = await makeTempDir('leaks-');
  reg = await startRegistry({ mode: 'basic', password: 'Leak-Basic-Pw-5e6f' });
  await pushLayout(reg, 'edge', 'fixtures/edge:v1');
  echo = await startHostileServer(reg.url, [{ match: { pathIncludes: '/manifests/' }, action: 'echo-auth' }]);
});
after(async () => {
  await echo?.close();
  await reg?.stop();
  if (work) await removeDir(work);
});

async function home(docker?: unknown): Promise<{ home: string; bin: string; env: NodeJS.ProcessEnv }> {
  const h = join(work, `home-${n++}`);
  const bin = join(h, 'bin');
  await mkdir(bin, { recursive: true });
  if (docker !== undefined) {
    await mkdir(join(h, '.docker'));
    await writeFile(join(h, '.docker', 'config.json'), JSON.stringify(docker));
  }
  return { home: h, bin, env: { ...isolatedEnv(h, [bin]), STARGZ_GET_DEBUG: '1' } };
}

const ls = (host: string, env: NodeJS.ProcessEnv, extra: string[] = []): Promise<CliResult> =>
  runCli(['ls', '--plain-http', '--retries', '0', '--cache-dir', join(work, `cache-${n++}`), ...extra, `${host}/fixtures/edge:v1/etc`], { env });

describe('a registry that echoes the credential it was sent', () => {
  const user = 'tester';
  const secret = 'Echoed-Secret-9a8b7c';
  const auth = Buffer.from(`${user}:${secret}`).toString('base64');
  const sources: Array<[string, () => Promise<{ env: NodeJS.ProcessEnv; extra?: string[] }>]> = [
    ['a per-registry helper', async () => {
      const h = await home({ credHelpers: { [echo.host]: 'leaky' } });
      await writeCredHelper(h.bin, 'leaky', { store: { [echo.host]: { Username: user, Secret: secret } } });
      return h;
    }],
    ['the global credsStore', async () => {
      const h = await home({ credsStore: 'leaky' });
      await writeCredHelper(h.bin, 'leaky', { store: { [echo.host]: { Username: user, Secret: secret } } });
      return h;
    }],
    ["config.json's auths", async () => home({ auths: { [echo.host]: { auth } } })],
    ['username/password fields', async () => home({ auths: { [echo.host]: { username: user, password: secret } } })],
    ["containers' auth.json (--authfile)", async () => {
      const h = await home();
      const file = join(h.home, 'auth.json');
      await writeFile(file, JSON.stringify({ auths: { [`${echo.host}/fixtures`]: { auth } } }));
      return { env: h.env, extra: ['--authfile', file] };
    }],
    ['the environment', async () => {
      const h = await home();
      return { env: { ...h.env, STARGZ_GET_USERNAME: user, STARGZ_GET_PASSWORD: secret } };
    }],
  ];
  for (const [name, make] of sources) {
    test(name, async () => {
      const { env, extra } = await make();
      const r = await ls(echo.host, env, extra);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /ERR_REGISTRY_AUTH.*access denied for/, 'the echo reached the message');
      assertClean('stdout', r.stdout, [secret]);
      assertClean('stderr', r.stderr, [secret]);
    });
  }

  test("a detached mount's log", async () => {
    const h = await home({ credsStore: 'leaky' });
    await writeCredHelper(h.bin, 'leaky', { store: { [echo.host]: { Username: user, Secret: secret } } });
    const mnt = join(h.home, 'mnt');
    await mkdir(mnt);
    const log = join(h.home, 'mount.log');
    const r = await runCli(['mount', '-d', '--plain-http', '--retries', '0', '--cache-dir', join(h.home, 'cache'), '--log-file', log, `${echo.host}/fixtures/edge:v1`, mnt], { env: h.env });
    assert.notEqual(r.code, 0);
    const text = await readFile(log, 'utf8');
    assert.match(text, /access denied for/);
    for (const [what, t] of [['stdout', r.stdout], ['stderr', r.stderr], ['mount log', text]] as const) assertClean(what, t, [secret]);
  });
});

describe('a token realm that echoes the refresh token it refused', () => {
  let realm: Awaited<ReturnType<typeof echoingTokenRealm>>;
  before(async () => {
    realm = await echoingTokenRealm();
  });
  after(() => realm?.close());
  const token = 'Identity-Token-3c2d1e';

  test('`identitytoken` in config.json', async () => {
    const h = await home({ auths: { [realm.host]: { identitytoken: token } } });
    const r = await ls(realm.host, h.env);
    assert.equal(r.code, 4, r.stderr);
    assert.match(r.stderr, /refresh token .* is revoked/, 'the echo reached the message');
    assertClean('stderr', r.stderr + r.stdout, [token]);
  });

  test('a helper answering Username "<token>"', async () => {
    const h = await home({ credHelpers: { [realm.host]: 'tok' } });
    await writeCredHelper(h.bin, 'tok', { store: { [realm.host]: { Username: '<token>', Secret: token } } });
    const r = await ls(realm.host, h.env);
    assert.equal(r.code, 4, r.stderr);
    assert.match(r.stderr, /refresh token .* is revoked/);
    assertClean('stderr', r.stderr + r.stdout, [token]);
  });
});

test('login: the password and the stored base64 never reach output, even refused', async () => {
  const h = await home({});
  await mkdir(dirname(join(h.home, '.docker', 'config.json')), { recursive: true });
  const r = await runCli(['login', '--plain-http', '-u', 'tester', '--password-stdin', echo.host], { env: h.env, input: 'Login-Echo-Pw-11\n' });
  assertClean('login output', r.stdout + r.stderr, ['Login-Echo-Pw-11', 'tester:Login-Echo-Pw-11']);
});
