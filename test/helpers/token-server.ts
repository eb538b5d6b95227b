// A minimal Docker registry token server (the "Bearer" flow of distribution's token auth):
// GET /token?service=S&scope=repository:NAME:pull,push [Authorization: Basic …] → a JWT the
// registry accepts. The JWT carries the signing certificate in its `x5c` header; the registry
// verifies that chain against `rootcertbundle` (our self-signed cert), so no libtrust `kid` is needed.
// POST /token answers the OAuth2 grants (distribution docs/spec/auth/oauth.md): `password`
// (containerd-style clients) and `refresh_token` (identity tokens, docker login's
// `identitytoken`) — the latter only with a client_id and the one refresh token this server
// issued (`refreshToken`); any other refresh token is refused. Credentials, the refresh token
// and the lifetime are mutable, so tests can rotate them under a running client.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createPrivateKey, randomBytes, sign, X509Certificate } from 'node:crypto';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { makeTempDir, removeDir } from './tmp.js';

const run = promisify(execFile);

export const TOKEN_SERVICE = 'stargz-test-registry';
export const TOKEN_ISSUER = 'stargz-test-issuer';

export interface TokenServerOptions {
  username: string;
  password: string;
  anonymousPull: boolean;
  /** expires_in and the JWT's exp (default 300 s; the registry allows 60 s of leeway). */
  ttlSeconds?: number;
  /** The refresh token the refresh_token grant accepts (for `username`); none: that grant is refused. */
  refreshToken?: string;
}

/** How a token was asked for. */
export type Grant = 'anonymous' | 'basic' | 'password' | 'refresh_token';

export interface TokenServer {
  url: string; // realm, e.g. http://127.0.0.1:PORT/token
  issued: number; // tokens issued so far
  certPem: string; // goes into the registry's rootcertbundle
  ttlSeconds: number; // mutable
  username: string; // mutable: rotation
  password: string; // mutable
  refreshToken: string | undefined; // mutable
  /** Tokens issued per grant. */
  grants: Record<Grant, number>;
  /** Every access token issued (tests grep output for them). */
  tokens: string[];
  close(): Promise<void>;
}

interface KeyPair {
  keyPem: string;
  certPem: string;
  certDerB64: string;
}

let keyPair: Promise<KeyPair> | undefined;

/** One RSA key and self-signed cert per process (openssl takes ~0.2 s). */
function getKeyPair(): Promise<KeyPair> {
  keyPair ??= (async () => {
    const dir = await makeTempDir('tokkey-');
    try {
      const key = join(dir, 'key.pem');
      const cert = join(dir, 'cert.pem');
      await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert,
        '-days', '30', '-subj', '/CN=stargz-test-token-signer']);
      const certPem = await readFile(cert, 'utf8');
      const der = new X509Certificate(certPem).raw;
      return { keyPem: await readFile(key, 'utf8'), certPem, certDerB64: der.toString('base64') };
    } finally {
      await removeDir(dir);
    }
  })();
  return keyPair;
}

const b64url = (b: Buffer | string): string => Buffer.from(b).toString('base64url');

interface Access {
  type: string;
  name: string;
  actions: string[];
}

/** 'repository:a/b:pull,push' → {type, name, actions}; names may not contain ':' but types like registry:catalog:* work. */
function parseScope(scope: string): Access | null {
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first < 0 || last <= first) return null;
  return { type: scope.slice(0, first), name: scope.slice(first + 1, last), actions: scope.slice(last + 1).split(',').filter(Boolean) };
}

function basicCreds(req: IncomingMessage): { user: string; pass: string } | null {
  const h = req.headers.authorization;
  if (!h || !/^basic /i.test(h)) return null;
  const dec = Buffer.from(h.slice(6).trim(), 'base64').toString('utf8');
  const i = dec.indexOf(':');
  return i < 0 ? null : { user: dec.slice(0, i), pass: dec.slice(i + 1) };
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export async function startTokenServer(opts: TokenServerOptions): Promise<TokenServer> {
  const kp = await getKeyPair();
  const privateKey = createPrivateKey(kp.keyPem);

  function makeJwt(subject: string, access: Access[], ttl: number): { token: string; iat: number } {
    const now = Math.floor(Date.now() / 1000);
    const header = { typ: 'JWT', alg: 'RS256', x5c: [kp.certDerB64] };
    const claims = { iss: TOKEN_ISSUER, sub: subject, aud: TOKEN_SERVICE, exp: now + ttl, nbf: now - 10, iat: now,
      jti: randomBytes(12).toString('hex'), access };
    const signingInput = b64url(JSON.stringify(header)) + '.' + b64url(JSON.stringify(claims));
    const sig = sign('sha256', Buffer.from(signingInput), privateKey); // RS256 = PKCS#1 v1.5 + SHA-256
    return { token: signingInput + '.' + b64url(sig), iat: now };
  }

  function deny(res: ServerResponse, status: number, msg: string): void {
    res.writeHead(status, {
      'content-type': 'application/json',
      ...(status === 401 ? { 'www-authenticate': 'Basic realm="stargz-test-token"' } : {}),
    });
    res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: msg }] }));
  }

  const server: Server = createServer((req, res) => {
    void (async () => {
      const u = new URL(req.url ?? '/', 'http://x');
      if (u.pathname !== '/token' || (req.method !== 'GET' && req.method !== 'POST')) return deny(res, 404, 'not found');
      let params = u.searchParams;
      let user: string | null = null;
      let pass: string | null = null;
      let grant: Grant = 'anonymous';
      const basic = basicCreds(req);
      if (basic) ({ user, pass } = basic);
      if (basic) grant = 'basic';
      if (req.method === 'POST') {
        params = new URLSearchParams(await readBody(req));
        const type = params.get('grant_type');
        if (type === 'password') {
          user = params.get('username');
          pass = params.get('password');
          grant = 'password';
        } else if (type === 'refresh_token') {
          // The spec requires a client_id; the token must be the one we issued, for our user.
          if (!params.get('client_id')) return deny(res, 400, 'client_id required');
          if (srv.refreshToken === undefined || params.get('refresh_token') !== srv.refreshToken) return deny(res, 401, 'invalid refresh token');
          user = srv.username;
          pass = srv.password;
          grant = 'refresh_token';
        } else return deny(res, 400, 'unsupported grant_type');
      }
      if (params.get('service') !== TOKEN_SERVICE) return deny(res, 400, 'unknown service');
      const anonymous = user === null;
      if (!anonymous && (user !== srv.username || pass !== srv.password)) return deny(res, 401, 'bad credentials');
      if (anonymous && !opts.anonymousPull) return deny(res, 401, 'authentication required');
      const access: Access[] = [];
      for (const s of params.getAll('scope').flatMap((x) => x.split(' '))) {
        const a = parseScope(s);
        if (!a) continue;
        if (anonymous) a.actions = a.actions.filter((x) => x === 'pull');
        if (a.actions.length) access.push(a);
      }
      const ttl = srv.ttlSeconds;
      const { token, iat } = makeJwt(anonymous ? '' : (user as string), access, ttl);
      srv.issued++;
      srv.grants[grant]++;
      srv.tokens.push(token);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ token, access_token: token, expires_in: ttl, issued_at: new Date(iat * 1000).toISOString() }));
    })().catch((err: unknown) => {
      if (!res.headersSent) deny(res, 500, String(err));
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  server.unref(); // a forgotten stop() must not keep the test process alive
  const port = (server.address() as { port: number }).port;
  const srv: TokenServer = {
    url: `http://127.0.0.1:${port}/token`,
    issued: 0,
    certPem: kp.certPem,
    ttlSeconds: opts.ttlSeconds ?? 300,
    username: opts.username,
    password: opts.password,
    refreshToken: opts.refreshToken,
    grants: { anonymous: 0, basic: 0, password: 0, refresh_token: 0 },
    tokens: [],
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  return srv;
}
