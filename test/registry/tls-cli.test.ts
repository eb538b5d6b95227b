// HTTPS registries with a private CA, through the CLI: the CA from --cert-dir or from a
// certs.d directory, client certificates required by the registry (distribution's clientcas),
// and failures reported as the certificate problem they are, never as an HTTP fallback's.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makePki, type TestPki } from '../helpers/pki.js';
import { freePort, pushLayout, startRegistry, type TestRegistry } from '../helpers/registry.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';
import { runCli } from '../helpers/cli.js';

describe('TLS registries through the CLI', () => {
  let work: string;
  let pki: TestPki;
  let mtls: TestRegistry; // wants a client certificate of the CA
  let tls: TestRegistry; // server certificate only
  let emptyRoots: string;
  before(async () => {
    work = await makeTempDir('tls-cli-');
    pki = await makePki(await mkdirP(join(work, 'pki')));
    mtls = await startRegistry({ tls: { pki, requireClientCert: true } });
    tls = await startRegistry({ tls: { pki } });
    await Promise.all([pushLayout(mtls, 'edge', 'fixtures/edge:v1'), pushLayout(tls, 'edge', 'fixtures/edge:v1')]);
    emptyRoots = await mkdirP(join(work, 'no-certs.d'));
  });
  after(async () => {
    await mtls?.stop();
    await tls?.stop();
    if (work) await removeDir(work);
  });

  async function mkdirP(dir: string): Promise<string> {
    await mkdir(dir, { recursive: true });
    return dir;
  }
  /** A Docker-style cert dir with the CA and/or the client pair. */
  async function certDir(name: string, what: { ca?: boolean; client?: boolean }): Promise<string> {
    const dir = await mkdirP(join(work, name));
    if (what.ca) await copyFile(pki.caCert, join(dir, 'ca.crt'));
    if (what.client) {
      await copyFile(pki.clientCert, join(dir, 'client.cert'));
      await copyFile(pki.clientKey, join(dir, 'client.key'));
    }
    return dir;
  }
  // certs.d roots point at an empty directory unless a test says otherwise: the machine's
  // /etc/docker/certs.d must not decide a test. No proxies either.
  const ls = (reg: TestRegistry, extra: string[], env: NodeJS.ProcessEnv = {}) =>
    runCli(['ls', `${reg.host}/fixtures/edge:v1/`, '--cache-dir', join(work, 'cache'), '--retries', '0', ...extra], {
      env: { STARGZ_GET_CERTS_D: emptyRoots, HTTPS_PROXY: '', https_proxy: '', HTTP_PROXY: '', http_proxy: '', ...env },
    });
  const listsEdge = (r: { code: number | null; stdout: string; stderr: string }) => {
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^bin$/m);
  };

  test('--cert-dir with the CA and a client certificate reaches a registry that requires one', async () => {
    listsEdge(await ls(mtls, ['--cert-dir', await certDir('full', { ca: true, client: true })]));
  });

  test('without --cert-dir, HOST:PORT under a certs.d root is used (after roots that lack it)', async () => {
    const root = await mkdirP(join(work, 'certs.d'));
    await copyFile(pki.caCert, join(await mkdirP(join(root, mtls.host)), 'ca.crt'));
    await copyFile(pki.clientCert, join(root, mtls.host, 'client.cert'));
    await copyFile(pki.clientKey, join(root, mtls.host, 'client.key'));
    listsEdge(await ls(mtls, [], { STARGZ_GET_CERTS_D: `${emptyRoots}:${root}` }));
  });

  test('without the CA: ERR_TLS "unknown authority" with where the CA goes, not an HTTP fallback error', async () => {
    const r = await ls(tls, []);
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, /ERR_TLS: .*certificate signed by an unknown authority; put the CA in \/etc\/containers\/certs\.d\/127\.0\.0\.1:\d+\/ca\.crt or pass --cert-dir/);
    assert.doesNotMatch(r.stderr, /HTTP request to an HTTPS server|ERR_REGISTRY/);
  });

  test('without the client certificate the registry requires: ERR_TLS saying so', async () => {
    const r = await ls(mtls, ['--cert-dir', await certDir('ca-only', { ca: true })]);
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, /ERR_TLS: .*requires a client certificate; put NAME\.cert and NAME\.key in \/etc\/containers\/certs\.d\/127\.0\.0\.1:\d+\/ or pass --cert-dir/);
    assert.doesNotMatch(r.stderr, /HTTP request to an HTTPS server/);
  });

  test('--insecure still reaches a registry whose CA we do not have', async () => {
    listsEdge(await ls(tls, ['--insecure']));
  });

  test('a mirror in hosts.toml gets its own ca and client: an mTLS mirror serves an image whose registry is down', async () => {
    const dead = `127.0.0.1:${await freePort()}`;
    const hosts = await mkdirP(join(work, 'hosts', dead));
    const mirror = (client: boolean) =>
      `server = "http://${dead}"\n\n[host."https://${mtls.host}"]\n  capabilities = ["pull", "resolve"]\n  ca = ${JSON.stringify(pki.caCert)}\n` +
      (client ? `  client = [[${JSON.stringify(pki.clientCert)}, ${JSON.stringify(pki.clientKey)}]]\n` : '');
    const lsDead = () => runCli(['ls', `${dead}/fixtures/edge:v1/`, '--hosts-dir', join(work, 'hosts'), '--cache-dir', join(work, 'cache-m'), '--retries', '0', '--timeout', '5s'], {
      env: { STARGZ_GET_CERTS_D: emptyRoots, HTTPS_PROXY: '', https_proxy: '', HTTP_PROXY: '', http_proxy: '' },
    });
    await writeFile(join(hosts, 'hosts.toml'), mirror(true));
    listsEdge(await lsDead());
    // Without its client pair the mirror refuses us: the certificate problem is named, then the dead registry is tried.
    await writeFile(join(hosts, 'hosts.toml'), mirror(false));
    const r = await lsDead();
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, new RegExp(`${mtls.host.replace(/\./g, '\\.')}: ERR_TLS`));
  });
});
