// A real OCI distribution registry (Debian's `docker-registry`, distribution 2.8) on a free
// loopback port, with no auth, htpasswd Basic auth, or Bearer tokens from our token server.
// Storage, config and log live in one temp dir (dataDir) removed by stop().
// With `tls`, it serves HTTPS with a test PKI's server certificate (pki.ts), and with
// requireClientCert only to clients showing a certificate of that CA (distribution's clientcas).
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { openSync, closeSync, existsSync, readFileSync } from 'node:fs';
import { writeFile, mkdir, readFile, copyFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createServer } from 'node:net';
import { isAbsolute, join } from 'node:path';
import { promisify } from 'node:util';
import { layoutsDir } from './paths.js';
import { makeTempDir, removeDir, trackDir, trackPid, untrackDir, untrackPid } from './tmp.js';
import { startTokenServer, TOKEN_ISSUER, TOKEN_SERVICE, type TokenServer } from './token-server.js';
import type { TestPki } from './pki.js';

const run = promisify(execFile);

export type RegistryMode = 'plain' | 'basic' | 'token';

export interface TestRegistry {
  host: string; // '127.0.0.1:PORT' (what a user types in a reference)
  url: string; // 'http://127.0.0.1:PORT' ('https://…' with tls)
  mode: RegistryMode;
  /** tls only: a Docker-style cert dir (ca.crt, client.cert, client.key) that skopeo uses to push. */
  certDir?: string;
  username?: string; // basic and token modes (default 'tester' / 's3cret-pass')
  password?: string;
  dataDir: string; // temp root: storage/ (the registry's rootdirectory), config.yml, registry.log
  pid: number;
  tokenServer?: TokenServer;
  /** Path of a blob's data file inside registry storage (tests may corrupt or delete it). */
  blobPath(digest: string): string;
  /** Kills the registry (and the token server) and removes dataDir. */
  stop(): Promise<void>;
  /** Stops the process only (storage kept) and starts it again on the same port. */
  restart(): Promise<void>;
  /** Kills the process only, keeping data (a dead registry); restart() brings it back. */
  stopProcess(): Promise<void>;
}

export interface StartRegistryOptions {
  mode?: RegistryMode;
  username?: string;
  password?: string;
  /** token mode only: anonymous token requests get pull-only tokens instead of 401. */
  anonymousPull?: boolean;
  /** Pull-through cache mode (distribution `proxy: remoteurl`) in front of this upstream URL. */
  proxyRemoteUrl?: string;
  /** HTTPS with pki's server certificate; requireClientCert: only clients with a certificate of pki's CA. */
  tls?: { pki: TestPki; requireClientCert?: boolean };
}

export const DEFAULT_USERNAME = 'tester';
export const DEFAULT_PASSWORD = 's3cret-pass';

/** A loopback port that was free a moment ago (bind port 0, read it, release it). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Any HTTP answer from url (401 counts: the server is up). */
function probe(url: string, pki?: TestPki): Promise<boolean> {
  return new Promise((resolve) => {
    const tls = pki ? { ca: readFileSync(pki.caCert), cert: readFileSync(pki.clientCert), key: readFileSync(pki.clientKey) } : {};
    const request = url.startsWith('https:') ? httpsRequest : httpRequest;
    const req = request(url, { agent: false, timeout: 1000, ...tls }, (res) => {
      res.resume();
      resolve(true);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function tlsYaml(tls: StartRegistryOptions['tls']): string {
  if (!tls) return '';
  const cas = tls.requireClientCert ? `    clientcas:\n      - ${tls.pki.caCert}\n` : '';
  return `  tls:\n    certificate: ${tls.pki.serverCert}\n    key: ${tls.pki.serverKey}\n${cas}`;
}

function configYaml(dataDir: string, port: number, authBlock: string, tlsBlock = ''): string {
  return `version: 0.1
log:
  level: info
  accesslog: {disabled: false}
storage:
  filesystem: {rootdirectory: ${join(dataDir, 'storage')}}
  delete: {enabled: true}
  maintenance:
    uploadpurging: {enabled: false}
http:
  addr: 127.0.0.1:${port}
  secret: stargz-test-secret
${tlsBlock}${authBlock}`;
}

async function authBlockFor(mode: RegistryMode, dataDir: string, user: string, pass: string, token?: TokenServer): Promise<string> {
  if (mode === 'basic') {
    const { stdout } = await run('htpasswd', ['-Bbn', user, pass]);
    const file = join(dataDir, 'htpasswd');
    await writeFile(file, stdout.trim() + '\n');
    return `auth:\n  htpasswd:\n    realm: stargz-test\n    path: ${file}\n`;
  }
  if (mode === 'token' && token) {
    const bundle = join(dataDir, 'token-cert.pem');
    await writeFile(bundle, token.certPem);
    return `auth:\n  token:\n    realm: ${token.url}\n    service: ${TOKEN_SERVICE}\n    issuer: ${TOKEN_ISSUER}\n    rootcertbundle: ${bundle}\n`;
  }
  return '';
}

export async function startRegistry(opts: StartRegistryOptions = {}): Promise<TestRegistry> {
  const mode = opts.mode ?? 'plain';
  const username = opts.username ?? DEFAULT_USERNAME;
  const password = opts.password ?? DEFAULT_PASSWORD;
  const dataDir = await makeTempDir('registry-');
  trackDir(dataDir);
  await mkdir(join(dataDir, 'storage'));
  let token: TokenServer | undefined;
  try {
    if (mode === 'token') token = await startTokenServer({ username, password, anonymousPull: opts.anonymousPull ?? false });
    const port = await freePort();
    const configPath = join(dataDir, 'config.yml');
    const proxyBlock = opts.proxyRemoteUrl ? `proxy:\n  remoteurl: ${opts.proxyRemoteUrl}\n` : '';
    await writeFile(configPath, configYaml(dataDir, port, (await authBlockFor(mode, dataDir, username, password, token)) + proxyBlock, tlsYaml(opts.tls)));
    const url = `${opts.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
    let certDir: string | undefined;
    if (opts.tls) {
      certDir = join(dataDir, 'certs');
      await mkdir(certDir);
      await copyFile(opts.tls.pki.caCert, join(certDir, 'ca.crt'));
      await copyFile(opts.tls.pki.clientCert, join(certDir, 'client.cert'));
      await copyFile(opts.tls.pki.clientKey, join(certDir, 'client.key'));
    }
    const logPath = join(dataDir, 'registry.log');
    let child: ChildProcess | undefined;

    const launch = async (): Promise<void> => {
      const fd = openSync(logPath, 'a');
      try {
        child = spawn('docker-registry', ['serve', configPath], { stdio: ['ignore', fd, fd], detached: false });
      } finally {
        closeSync(fd);
      }
      const c = child;
      if (c.pid === undefined) throw new Error('docker-registry did not start (is it installed?)');
      trackPid(c.pid);
      c.unref(); // a forgotten stop() must not keep the test process alive (tmp.ts kills it at exit)
      let exited = false;
      c.once('exit', () => (exited = true));
      c.once('error', () => (exited = true));
      const deadline = Date.now() + 20_000;
      while (!(await probe(url + '/v2/', opts.tls?.pki))) {
        if (exited || Date.now() > deadline) {
          const log = existsSync(logPath) ? readFileSync(logPath, 'utf8').slice(-2000) : '';
          await kill();
          throw new Error(`docker-registry on ${url} did not come up:\n${log}`);
        }
        await sleep(50);
      }
      reg.pid = c.pid;
    };

    const kill = async (): Promise<void> => {
      const c = child;
      child = undefined;
      if (!c || c.pid === undefined) return;
      if (c.exitCode === null && c.signalCode === null) {
        c.ref(); // keep the loop alive while we wait for the exit event
        const gone = new Promise<void>((r) => c.once('exit', () => r()));
        c.kill('SIGTERM');
        const t = setTimeout(() => c.kill('SIGKILL'), 3000);
        await gone;
        clearTimeout(t);
      }
      untrackPid(c.pid);
    };

    const reg: TestRegistry = {
      host: `127.0.0.1:${port}`,
      url,
      mode,
      ...(certDir ? { certDir } : {}),
      ...(mode === 'plain' ? {} : { username, password }),
      dataDir,
      pid: 0,
      ...(token ? { tokenServer: token } : {}),
      blobPath(digest: string): string {
        const [alg, hex] = digest.split(':');
        if (!alg || !hex) throw new Error('bad digest ' + digest);
        return join(dataDir, 'storage', 'docker', 'registry', 'v2', 'blobs', alg, hex.slice(0, 2), hex, 'data');
      },
      async stop() {
        await kill();
        await token?.close();
        untrackDir(dataDir);
        await removeDir(dataDir);
      },
      async restart() {
        await kill();
        await launch();
      },
      async stopProcess() {
        await kill();
      },
    };
    await launch();
    return reg;
  } catch (err) {
    await token?.close();
    untrackDir(dataDir);
    await removeDir(dataDir);
    throw err;
  }
}

/** The registry's log (stdout+stderr incl. access log lines), for debugging or counting requests. */
export async function registryLog(reg: TestRegistry): Promise<string> {
  return readFile(join(reg.dataDir, 'registry.log'), 'utf8').catch(() => '');
}

/** `--creds user:pass` style value, or undefined for a plain registry. */
export function credsOf(reg: TestRegistry): string | undefined {
  return reg.username !== undefined ? `${reg.username}:${reg.password ?? ''}` : undefined;
}

/** Absolute directory of a layout given by name (test/fixtures/layouts/NAME) or path. */
export function layoutPath(layout: string): string {
  return isAbsolute(layout) ? layout : join(layoutsDir, layout);
}

/**
 * Pushes an OCI layout's `v1` image (or opts.tag) to reg as repoTag ('fixtures/edge:v1') with skopeo,
 * keeping every digest (the eStargz annotations live in the manifest, so it must not be rewritten).
 * An image index is pushed whole (--all) unless opts.all === false.
 */
export async function pushLayout(reg: TestRegistry, layout: string, repoTag: string, opts: { all?: boolean; tag?: string } = {}): Promise<void> {
  const dir = layoutPath(layout);
  const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as { manifests: Array<{ mediaType?: string }> };
  const isIndex = index.manifests.some((m) => m.mediaType === 'application/vnd.oci.image.index.v1+json');
  const all = opts.all ?? isIndex;
  const tls = reg.certDir ? ['--dest-cert-dir', reg.certDir, '--dest-tls-verify=true'] : ['--dest-tls-verify=false'];
  const args = ['--insecure-policy', 'copy', '--quiet', ...tls, '--preserve-digests', '--retry-times', '2'];
  if (all) args.push('--all');
  const creds = credsOf(reg);
  if (creds) args.push('--dest-creds', creds);
  args.push(`oci:${dir}:${opts.tag ?? 'v1'}`, `docker://${reg.host}/${repoTag}`);
  try {
    await run('skopeo', args, { maxBuffer: 16 << 20 });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`skopeo push of ${layout} to ${reg.host}/${repoTag} failed: ${e.stderr || e.message}`);
  }
}
