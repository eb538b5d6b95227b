// Issue 9: proxies are honoured "for registries, token realms and blob redirects alike" — and
// for mirrors. A real squid resolves `mirror.test` and `registry.test` (its own hosts file);
// the CLI runs with a resolver that answers nothing (hermetic-dns.ts), so a request for one of
// those names that does not go through squid cannot succeed, and squid's access log shows
// which host's requests it carried. NO_PROXY is decided per host: the mirror through the
// proxy and the upstream direct, and the other way round.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runCli, type CliResult } from '../helpers/cli.js';
import { noDnsPrefix } from '../helpers/hermetic-dns.js';
import { makePki } from '../helpers/pki.js';
import { freePort, pushLayout, startRegistry, type TestRegistry } from '../helpers/registry.js';
import { startSquid, type TestProxy } from '../helpers/squid.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';
import { compareTrees, formatDiffs, oracleUnpack } from '../helpers/oracle.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';

const MIRROR = 'mirror.test';
const ORIGIN = 'registry.test';
const CMP = { ignoreEmptyXattrs: true, ignoreDirMtime: true };
const NO_PROXY_ENV = { HTTPS_PROXY: '', https_proxy: '', HTTP_PROXY: '', http_proxy: '', NO_PROXY: '', no_proxy: '' };

describe('forward proxies in front of mirrors', () => {
  let work: string;
  let origin: TestRegistry;
  let plainMirror: TestRegistry; // pull-through cache of origin, plain HTTP
  let tlsMirror: TestRegistry; // pull-through cache of origin, HTTPS with a private CA
  let squid: TestProxy;
  let redirecting: FaultProxy; // a mirror sending blob GETs to a CDN on http://localhost:PORT
  let caFile: string;
  let prefix: string[];
  let expected: string;
  const port = (reg: TestRegistry): string => new URL(reg.url).port;

  before(async () => {
    work = await makeTempDir('proxy-mirror-');
    await mkdir(join(work, 'pki'));
    const pki = await makePki(join(work, 'pki'), [MIRROR]);
    origin = await startRegistry({ mode: 'plain' });
    await pushLayout(origin, 'edge', 'fixtures/edge:v1');
    [plainMirror, tlsMirror] = await Promise.all([startRegistry({ proxyRemoteUrl: origin.url }), startRegistry({ proxyRemoteUrl: origin.url, tls: { pki } })]);
    redirecting = await startFaultProxy(origin, { cdn: true });
    // localhost too: the CDN's name, which squid resolves from its own hosts file only.
    squid = await startSquid({ hosts: { [MIRROR]: '127.0.0.1', [ORIGIN]: '127.0.0.1', localhost: '127.0.0.1' } });
    caFile = join(work, 'mirror-ca.crt');
    await copyFile(pki.caCert, caFile);
    prefix = noDnsPrefix(work);
    expected = await oracleUnpack(origin, 'fixtures/edge:v1', join(work, 'oracle'));
  });
  after(async () => {
    await squid?.stop();
    await redirecting?.close();
    await tlsMirror?.stop();
    await plainMirror?.stop();
    await origin?.stop();
    if (work) await removeDir(work);
  });

  let n = 0;
  /** sync `registry`'s edge image with a hosts.toml for it, under the hermetic resolver. */
  async function sync(registry: string, hostsToml: string, env: NodeJS.ProcessEnv): Promise<CliResult & { dest: string }> {
    const dir = join(work, `hosts-${++n}`);
    await mkdir(join(dir, registry), { recursive: true });
    await writeFile(join(dir, registry, 'hosts.toml'), hostsToml);
    const dest = join(work, `out-${n}`);
    const r = await runCli(['sync', `${registry}/fixtures/edge:v1/`, dest, '--plain-http', '--cache-dir', join(work, `cache-${n}`), '--retries', '0', '--timeout', '10s', '--hosts-dir', dir], {
      env: { ...NO_PROXY_ENV, STARGZ_GET_CERTS_D: join(work, 'none'), ...env },
      prefix,
    });
    return { ...r, dest };
  }
  async function sameAsOracle(r: CliResult & { dest: string }): Promise<void> {
    assert.equal(r.code, 0, r.stderr);
    const d = await compareTrees(expected, r.dest, CMP);
    assert.deepEqual(d, [], formatDiffs(d));
  }
  const logged = async (what: RegExp): Promise<string[]> => (await squid.accessLog()).filter((l) => what.test(l));

  test('the premise: without the proxy, neither mirror.test nor registry.test can be reached', async () => {
    const r = await sync(`${ORIGIN}:${port(origin)}`, `[host."http://${MIRROR}:${port(plainMirror)}"]\n`, {});
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, /ERR_REGISTRY_UNREACHABLE/);
    assert.match(r.stderr, new RegExp(`${MIRROR}.*passing over it`), 'the mirror was tried first');
  });

  test('HTTP_PROXY carries a plain-HTTP mirror, as absolute-URI requests, before a dead origin', async () => {
    const dead = `127.0.0.1:${await freePort()}`;
    const r = await sync(dead, `server = "http://${dead}"\n\n[host."http://${MIRROR}:${port(plainMirror)}"]\n  capabilities = ["pull", "resolve"]\n`, { HTTP_PROXY: squid.url });
    await sameAsOracle(r);
    const lines = await logged(new RegExp(`GET http://${MIRROR}:${port(plainMirror)}/v2/fixtures/edge/`));
    assert.ok(lines.some((l) => l.includes('/manifests/v1')), (await squid.accessLog()).join('\n'));
    assert.ok(lines.some((l) => l.includes('/blobs/sha256:')), (await squid.accessLog()).join('\n'));
  });

  test('HTTPS_PROXY carries an HTTPS mirror through CONNECT, its hosts.toml CA verified end to end', async () => {
    const dead = `127.0.0.1:${await freePort()}`;
    const r = await sync(dead, `server = "http://${dead}"\n\n[host."https://${MIRROR}:${port(tlsMirror)}"]\n  capabilities = ["pull", "resolve"]\n  ca = "${caFile}"\n`, {
      HTTPS_PROXY: squid.url,
    });
    await sameAsOracle(r);
    assert.ok((await logged(new RegExp(`CONNECT ${MIRROR}:${port(tlsMirror)}`))).length > 0, (await squid.accessLog()).join('\n'));
  });

  test('a mirror redirecting blobs to a CDN: the CDN requests go through the proxy too', async () => {
    redirecting.rules = [{ action: 'redirect' }];
    const dead = `127.0.0.1:${await freePort()}`;
    const front = `${MIRROR}:${new URL(redirecting.url).port}`;
    const r = await sync(dead, `server = "http://${dead}"\n\n[host."http://${front}"]\n  capabilities = ["pull", "resolve"]\n`, { HTTP_PROXY: squid.url });
    await sameAsOracle(r);
    assert.ok(redirecting.stats.cdnRequests > 0, 'the mirror redirected no blob');
    const cdn = new URL(redirecting.cdnUrl!);
    assert.ok((await logged(new RegExp(`GET http://localhost:${cdn.port}/cdn/sha256:`))).length > 0, (await squid.accessLog()).join('\n'));
    assert.ok((await logged(new RegExp(`GET http://${front}/v2/fixtures/edge/blobs/`))).length > 0, (await squid.accessLog()).join('\n'));
  });

  test('NO_PROXY per host: the mirror through the proxy, the upstream (listed) direct', async () => {
    // A pull-only mirror: the tag is resolved by the upstream, every blob comes from the mirror.
    const upstream = `127.0.0.1:${port(origin)}`;
    const before = (await logged(new RegExp(`127\\.0\\.0\\.1:${port(origin)}`))).length;
    const mark = (await logged(new RegExp(`${MIRROR}:${port(plainMirror)}`))).length;
    const r = await sync(upstream, `[host."http://${MIRROR}:${port(plainMirror)}"]\n  capabilities = ["pull"]\n`, { HTTP_PROXY: squid.url, NO_PROXY: `localhost,${upstream}` });
    await sameAsOracle(r);
    assert.ok(!r.stderr.includes('passing over'), r.stderr);
    assert.equal((await logged(new RegExp(`127\\.0\\.0\\.1:${port(origin)}`))).length, before, 'the proxy saw a request for the NO_PROXY upstream');
    const mirrored = (await logged(new RegExp(`GET http://${MIRROR}:${port(plainMirror)}/v2/fixtures/edge/blobs/`))).length;
    assert.ok(mirrored > mark, (await squid.accessLog()).join('\n'));
  });

  test('NO_PROXY per host: the mirror (listed) direct, the upstream through the proxy', async () => {
    const mirror = `127.0.0.1:${port(plainMirror)}`;
    const before = (await logged(new RegExp(`127\\.0\\.0\\.1:${port(plainMirror)}`))).length;
    const r = await sync(`${ORIGIN}:${port(origin)}`, `[host."http://${mirror}"]\n  capabilities = ["pull"]\n`, { HTTP_PROXY: squid.url, NO_PROXY: mirror });
    await sameAsOracle(r);
    assert.ok(!r.stderr.includes('passing over'), r.stderr);
    assert.equal((await logged(new RegExp(`127\\.0\\.0\\.1:${port(plainMirror)}`))).length, before, 'the proxy saw a request for the NO_PROXY mirror');
    const resolved = await logged(new RegExp(`GET http://${ORIGIN}:${port(origin)}/v2/fixtures/edge/manifests/v1`));
    assert.ok(resolved.length > 0, (await squid.accessLog()).join('\n'));
    assert.deepEqual(await logged(new RegExp(`${ORIGIN}:${port(origin)}/v2/fixtures/edge/blobs/`)), [], 'a blob was asked of the upstream, not the mirror');
  });
});
