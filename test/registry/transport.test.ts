// Transport behaviour against small local HTTP(S) servers: manual redirects that keep
// Authorization on the origin it belongs to, redirect limits, and loopback TLS: verified, never skipped.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Transport, MAX_REDIRECTS } from '../../src/registry/transport.js';
import { RegistryClient } from '../../src/registry/client.js';
import { ErrorCodes, isStargzError } from '../../src/errors.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

async function listen(server: Server, host = '127.0.0.1'): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  return (server.address() as { port: number }).port;
}
function close(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

describe('Transport redirects', () => {
  const seen: Array<{ server: string; url: string; auth?: string; cookie?: string }> = [];
  let a: Server;
  let b: Server;
  let aUrl: string;
  let bUrl: string;
  let transport: Transport;

  const record = (name: string, then: Handler): Handler => (req, res) => {
    seen.push({ server: name, url: req.url ?? '', ...(req.headers.authorization ? { auth: req.headers.authorization } : {}), ...(req.headers.cookie ? { cookie: req.headers.cookie } : {}) });
    then(req, res);
  };
  const redirect = (res: ServerResponse, status: number, location?: string): void => {
    res.writeHead(status, location ? { location } : {}).end('moved');
  };

  before(async () => {
    a = createServer(
      record('a', (req, res) => {
        const u = req.url ?? '';
        if (u === '/same') return redirect(res, 302, '/final');
        if (u === '/relative/x') return redirect(res, 307, '../final');
        if (u === '/cross') return redirect(res, 307, `${bUrl}/there`);
        if (u === '/loop') return redirect(res, 302, '/loop');
        if (u === '/nolocation') return redirect(res, 302);
        if (u.startsWith('/chain/')) {
          const n = Number(u.slice(7));
          return n > 0 ? redirect(res, 301, `/chain/${n - 1}`) : res.end('end of chain');
        }
        if (u === '/badscheme') return redirect(res, 302, 'ftp://example.com/x');
        res.end('a' + u);
      }),
    );
    b = createServer(
      record('b', (req, res) => {
        if (req.url === '/there') return redirect(res, 308, `${aUrl}/back`);
        res.end('b' + req.url);
      }),
    );
    aUrl = `http://127.0.0.1:${await listen(a)}`;
    bUrl = `http://127.0.0.1:${await listen(b)}`; // another port is another origin
    transport = new Transport({ insecure: false, maxConnectionsPerHost: 4, requestTimeoutMs: 5000, userAgent: 'test' });
  });
  after(async () => {
    await transport?.close();
    await close(a);
    await close(b);
  });

  const get = async (path: string) => {
    seen.length = 0;
    const res = await transport.request({ url: new URL(path, aUrl), headers: { authorization: 'Bearer secret-token-123', cookie: 'c=1' } });
    const text = await res.body.text();
    return { res, text };
  };

  test('same-origin redirects keep Authorization', async () => {
    const { res, text } = await get('/same');
    assert.equal(text, 'a/final');
    assert.equal(res.crossOrigin, false);
    assert.deepEqual(seen.map((s) => s.auth), ['Bearer secret-token-123', 'Bearer secret-token-123']);
    const rel = await get('/relative/x');
    assert.equal(rel.text, 'a/final');
  });

  test('a cross-origin redirect drops Authorization and cookies, also when it comes back', async () => {
    const { res, text } = await get('/cross');
    assert.equal(text, 'a/back');
    assert.equal(res.crossOrigin, false); // back on the first origin, yet still without credentials
    assert.deepEqual(seen.map((s) => [s.server, s.url, s.auth ?? null, s.cookie ?? null]), [
      ['a', '/cross', 'Bearer secret-token-123', 'c=1'],
      ['b', '/there', null, null],
      ['a', '/back', null, null],
    ]);
  });

  test(`at most ${MAX_REDIRECTS} redirects`, async () => {
    assert.equal((await get(`/chain/${MAX_REDIRECTS}`)).text, 'end of chain');
    await assert.rejects(get(`/chain/${MAX_REDIRECTS + 1}`), (err: unknown) => isStargzError(err, ErrorCodes.REGISTRY_PROTOCOL));
    await assert.rejects(get('/loop'), (err: unknown) => isStargzError(err, ErrorCodes.REGISTRY_PROTOCOL));
  });

  test('a redirect without Location, or to another scheme, is REGISTRY_PROTOCOL', async () => {
    await assert.rejects(get('/nolocation'), (err: unknown) => isStargzError(err, ErrorCodes.REGISTRY_PROTOCOL));
    await assert.rejects(get('/badscheme'), (err: unknown) => isStargzError(err, ErrorCodes.REGISTRY_PROTOCOL));
  });
});

describe('loopback registries over TLS', () => {
  let dir: string;
  let server: Server;
  let port: number;
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [] }));

  before(async () => {
    dir = await makeTempDir('tls-');
    await promisify(execFile)('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'k.pem'), '-out', join(dir, 'c.pem'),
      '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost']);
    server = createHttpsServer({ key: await readFile(join(dir, 'k.pem')), cert: await readFile(join(dir, 'c.pem')) }, (req, res) => {
      if (req.url === '/v2/') return res.end('{}');
      if (req.url === '/v2/r/manifests/t') return res.writeHead(200, { 'content-type': 'application/vnd.oci.image.index.v1+json' }).end(manifest);
      res.writeHead(404).end();
    }) as unknown as Server;
    port = await listen(server);
  });
  after(async () => {
    if (server) await close(server);
    if (dir) await removeDir(dir);
  });

  // Docker accepts any certificate on loopback; skopeo and podman verify it, and so do we:
  // a certificate problem is reported (ERR_TLS), never skipped or hidden behind plain HTTP.
  test('HTTPS is tried first on loopback and its certificate is verified: ERR_TLS, no plain-HTTP fallback', async () => {
    const c = new RegistryClient(`127.0.0.1:${port}`, { retryBaseDelayMs: 5, retries: 0 });
    try {
      await assert.rejects(c.getManifest('r', 't'), (err: unknown) => isStargzError(err, ErrorCodes.TLS) && /unknown authority/.test(err.message));
    } finally {
      await c.close();
    }
  });

  for (const [name, tls] of [['its CA (tls.caFiles)', () => ({ caFiles: [join(dir, 'c.pem')] })], ['tls.insecureSkipVerify', () => ({ insecureSkipVerify: true })]] as const) {
    test(`a loopback registry with a self-signed certificate is reached with ${name}`, async () => {
      const c = new RegistryClient(`127.0.0.1:${port}`, { retryBaseDelayMs: 5, tls: tls() });
      try {
        assert.deepEqual((await c.getManifest('r', 't')).bytes, manifest);
      } finally {
        await c.close();
      }
    });
  }

  test('--plain-http does not speak TLS', async () => {
    const c = new RegistryClient(`127.0.0.1:${port}`, { retryBaseDelayMs: 5, retries: 0, plainHttp: true });
    try {
      await assert.rejects(c.getManifest('r', 't'), (err: unknown) => isStargzError(err));
    } finally {
      await c.close();
    }
  });
});
