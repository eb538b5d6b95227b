// Forward proxies through the CLI, with a real squid in front of registries named
// `registry.test`: only squid can resolve that name (its own hosts file), and the CLI runs
// with a resolver that answers nothing (hermetic-dns.ts), so a request that does not go
// through the proxy cannot succeed. Plain HTTP goes as absolute-URI requests, HTTPS through
// CONNECT; NO_PROXY bypasses; a 407 names the proxy and never shows its password.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { runCli, type CliResult } from '../helpers/cli.js';
import { noDnsPrefix } from '../helpers/hermetic-dns.js';
import { makePki } from '../helpers/pki.js';
import { freePort, pushLayout, startRegistry, type TestRegistry } from '../helpers/registry.js';
import { startSquid, type TestProxy } from '../helpers/squid.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';

const NAME = 'registry.test';
const PROXY_USER = 'proxyuser';
const PROXY_PASS = 'Pr0xy-Secret-77';

describe('forward proxies through the CLI', () => {
  let work: string;
  let plain: TestRegistry;
  let tls: TestRegistry;
  let token: TestRegistry; // Bearer tokens from a realm on another origin
  let squid: TestProxy;
  let authSquid: TestProxy;
  let caDir: string;
  let prefix: string[];
  const port = (reg: TestRegistry) => new URL(reg.url).port;
  before(async () => {
    work = await makeTempDir('proxy-cli-');
    await mkdir(join(work, 'pki'));
    const pki = await makePki(join(work, 'pki'), [NAME]);
    [plain, tls, token] = await Promise.all([startRegistry(), startRegistry({ tls: { pki } }), startRegistry({ mode: 'token' })]);
    await Promise.all([pushLayout(plain, 'edge', 'fixtures/edge:v1'), pushLayout(tls, 'edge', 'fixtures/edge:v1'), pushLayout(token, 'edge', 'fixtures/edge:v1')]);
    const hosts = { [NAME]: '127.0.0.1' };
    [squid, authSquid] = await Promise.all([startSquid({ hosts }), startSquid({ hosts, auth: { username: PROXY_USER, password: PROXY_PASS } })]);
    caDir = join(work, 'ca');
    await mkdir(caDir);
    await copyFile(pki.caCert, join(caDir, 'ca.crt'));
    prefix = noDnsPrefix(work);
  });
  after(async () => {
    await squid?.stop();
    await authSquid?.stop();
    await plain?.stop();
    await tls?.stop();
    await token?.stop();
    if (work) await removeDir(work);
  });

  const NO_PROXY_ENV = { HTTPS_PROXY: '', https_proxy: '', HTTP_PROXY: '', http_proxy: '', NO_PROXY: '', no_proxy: '' };
  const ls = (host: string, extra: string[], env: NodeJS.ProcessEnv): Promise<CliResult> =>
    runCli(['ls', `${host}/fixtures/edge:v1/`, '--cache-dir', join(work, 'cache'), '--retries', '0', ...extra], {
      env: { ...NO_PROXY_ENV, STARGZ_GET_CERTS_D: join(work, 'none'), ...env },
      prefix,
    });
  const listsEdge = (r: CliResult) => {
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^bin$/m);
  };
  const logged = async (proxy: TestProxy, what: RegExp) => (await proxy.accessLog()).filter((l) => what.test(l));

  test('the premise: without a proxy, registry.test cannot be reached', async () => {
    const r = await ls(`${NAME}:${port(plain)}`, ['--plain-http'], {});
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, /ERR_REGISTRY_UNREACHABLE/);
  });

  test('plain HTTP through HTTP_PROXY, as absolute-URI requests (not tunnelled)', async () => {
    listsEdge(await ls(`${NAME}:${port(plain)}`, ['--plain-http'], { http_proxy: squid.url }));
    assert.ok((await logged(squid, new RegExp(`GET http://${NAME}:${port(plain)}/v2/`))).length > 0, (await squid.accessLog()).join('\n'));
  });

  test('HTTPS through HTTPS_PROXY with CONNECT, the private CA verified end to end', async () => {
    listsEdge(await ls(`${NAME}:${port(tls)}`, ['--cert-dir', caDir], { HTTPS_PROXY: squid.url }));
    assert.ok((await logged(squid, new RegExp(`CONNECT ${NAME}:${port(tls)}`))).length > 0, (await squid.accessLog()).join('\n'));
  });

  test('the token realm goes through the proxy too (loopback is not excluded implicitly)', async () => {
    const realm = new URL(token.tokenServer!.url);
    const r = await ls(`${NAME}:${port(token)}`, ['--plain-http', '--credential', `${token.username}:${token.password}`], { HTTP_PROXY: squid.url });
    listsEdge(r);
    assert.ok((await logged(squid, new RegExp(`GET http://${realm.host}/`))).length > 0, (await squid.accessLog()).join('\n'));
  });

  test('proxy credentials in the URL are sent: the authenticating proxy lets us through', async () => {
    const url = `http://${PROXY_USER}:${PROXY_PASS}@127.0.0.1:${authSquid.port}`;
    listsEdge(await ls(`${NAME}:${port(tls)}`, ['--cert-dir', caDir], { HTTPS_PROXY: url }));
  });

  test('NO_PROXY: a listed host is reached directly, the proxy never sees it', async () => {
    const before = (await logged(squid, new RegExp(`127\\.0\\.0\\.1:${port(plain)}`))).length;
    listsEdge(await ls(plain.host, ['--plain-http'], { HTTP_PROXY: squid.url, NO_PROXY: `example.com,127.0.0.1:${port(plain)}` }));
    assert.equal((await logged(squid, new RegExp(`127\\.0\\.0\\.1:${port(plain)}`))).length, before, 'the proxy saw a request for a NO_PROXY host');
    // and a suffix entry bypasses registry.test, which only the proxy can resolve: unreachable
    const r = await ls(`${NAME}:${port(plain)}`, ['--plain-http'], { HTTP_PROXY: squid.url, NO_PROXY: '.test' });
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, /ERR_REGISTRY_UNREACHABLE/);
  });

  test('a proxy that cannot reach the registry (CONNECT answered 5xx): ERR_PROXY naming the proxy', async () => {
    // registry.test on a port where nothing listens: squid resolves it, its connect is refused
    const r = await ls(`${NAME}:${await freePort()}`, ['--cert-dir', caDir], { HTTPS_PROXY: squid.url });
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, new RegExp(`ERR_PROXY: .*via proxy http://127\\.0\\.0\\.1:${squid.port}: the proxy answered 5\\d\\d \\(it could not reach the registry\\)`));
  });

  for (const kind of ['HTTPS (CONNECT)', 'plain HTTP'] as const) {
    test(`a 407 from the proxy (${kind}): ERR_PROXY naming the proxy, the password in no output`, async () => {
      const wrong = 'Wr0ng-Pass-4242';
      const url = `http://${PROXY_USER}:${wrong}@127.0.0.1:${authSquid.port}`;
      const [host, extra, env] =
        kind === 'plain HTTP'
          ? [`${NAME}:${port(plain)}`, ['--plain-http'], { HTTP_PROXY: url }]
          : [`${NAME}:${port(tls)}`, ['--cert-dir', caDir], { HTTPS_PROXY: url }];
      for (const debug of ['', '1']) {
        const r = await ls(host, extra, { ...env, STARGZ_GET_DEBUG: debug });
        assert.equal(r.code, 5, r.stderr);
        assert.match(r.stderr, new RegExp(`ERR_PROXY: .*via proxy http://127\\.0\\.0\\.1:${authSquid.port}: proxy authentication required or refused \\(407\\)`));
        const out = r.stdout + r.stderr;
        for (const secret of [wrong, encodeURIComponent(wrong), Buffer.from(`${PROXY_USER}:${wrong}`).toString('base64')]) {
          assert.ok(!out.includes(secret), `the proxy password appears in the output (debug=${debug}):\n${out}`);
        }
      }
    });
  }
});
