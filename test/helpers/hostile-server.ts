// A hostile registry front for tests: a small HTTP server, in a child process of its own (so
// the CLI under test, the test process and the server never share an event loop), that
// proxies to a real TestRegistry and misbehaves on the requests its rules match:
//   trickle        the upstream answer, headers at once, then one body byte per intervalMs
//   overrun-range  a 206 with the upstream Content-Range, its bytes, then zeros forever
//   endless-body   a 200 with the upstream body, then zeros forever (no Content-Length)
//   echo-auth      403 with the decoded Authorization credential in the error body
//   big-index      an image index of `count` manifests, one made-up platform each
//   bearer-challenge  401 asking for a Bearer token from this server's /token (to fault token fetches)
// Every time a rule applies, the child reports it; waitForHit() waits for that.
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { trackPid, untrackPid } from './tmp.js';

export interface HostileRule {
  match: {
    method?: string;
    /** The whole path, query excluded. */
    path?: string;
    pathIncludes?: string;
    hasRange?: boolean;
    /** Only ranges starting at or after this offset (Range: bytes=START-...). */
    rangeStartAtLeast?: number;
    /** Only ranges starting before this offset. */
    rangeStartBelow?: number;
  };
  action: 'trickle' | 'overrun-range' | 'endless-body' | 'echo-auth' | 'big-index' | 'bearer-challenge';
  /** trickle: one byte per this many ms (default 500). */
  intervalMs?: number;
  /** trickle: this body with status 200 instead of the upstream's answer. */
  body?: string;
  /** echo-auth: the status (default 403). */
  status?: number;
  /** big-index: how many manifests (default 10000). */
  count?: number;
}

export interface HostileServer {
  host: string; // '127.0.0.1:PORT'
  url: string;
  /** How often each rule (by index) applied so far. */
  hits: number[];
  /** Resolves once rule `index` has applied `times` times (default once). */
  waitForHit(index: number, times?: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

const CONFIG_ENV = 'STARGZ_HOSTILE_SERVER';

/** Starts the server in a child process in front of `upstream` ('http://127.0.0.1:PORT'). */
export async function startHostileServer(upstream: string, rules: HostileRule[]): Promise<HostileServer> {
  const child: ChildProcess = spawn(process.execPath, [fileURLToPath(import.meta.url)], {
    env: { ...process.env, [CONFIG_ENV]: JSON.stringify({ upstream, rules }) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  trackPid(child.pid!);
  const hits = rules.map(() => 0);
  const waiters: Array<() => void> = [];
  let port: number | undefined;
  let buffered = '';
  const ready = new Promise<number>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`hostile server exited (${code}) before it listened`)));
    child.stdout!.on('data', (d: Buffer) => {
      buffered += d.toString();
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const msg = JSON.parse(buffered.slice(0, nl)) as { port?: number; hit?: number };
        buffered = buffered.slice(nl + 1);
        if (msg.port !== undefined) resolve((port = msg.port));
        if (msg.hit !== undefined) {
          hits[msg.hit]!++;
          for (const w of waiters.splice(0)) w();
        }
      }
    });
  });
  await ready;
  // Listening: a forgotten close() must not keep the test process alive (tmp.ts kills it at exit).
  child.unref();
  (child.stdout as unknown as { unref?: () => void }).unref?.();
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return {
    host: `127.0.0.1:${port}`,
    url: `http://127.0.0.1:${port}`,
    hits,
    async waitForHit(index, times = 1, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (hits[index]! < times) {
        if (Date.now() > deadline) throw new Error(`hostile rule ${index} applied ${hits[index]} times, not ${times}, within ${timeoutMs} ms`);
        await new Promise<void>((r) => {
          waiters.push(r);
          setTimeout(r, 100);
        });
      }
    },
    async close() {
      if (child.exitCode === null && child.signalCode === null) {
        child.ref(); // keep the loop alive until the exit event
        child.kill('SIGKILL');
        await exited;
      }
      untrackPid(child.pid!);
    },
  };
}

// ---- the child process ----

interface Config {
  upstream: string;
  rules: HostileRule[];
}

function rangeStart(req: IncomingMessage): number | undefined {
  const m = /^bytes=(\d+)-/.exec(req.headers.range ?? '');
  return m ? Number(m[1]) : undefined;
}

function matches(rule: HostileRule, req: IncomingMessage): boolean {
  const m = rule.match;
  if (m.method !== undefined && m.method.toUpperCase() !== req.method) return false;
  if (m.path !== undefined && (req.url ?? '').split('?')[0] !== m.path) return false;
  if (m.pathIncludes !== undefined && !(req.url ?? '').includes(m.pathIncludes)) return false;
  if (m.hasRange !== undefined && m.hasRange !== (req.headers.range !== undefined)) return false;
  const start = rangeStart(req);
  if (m.rangeStartAtLeast !== undefined && (start === undefined || start < m.rangeStartAtLeast)) return false;
  if (m.rangeStartBelow !== undefined && (start === undefined || start >= m.rangeStartBelow)) return false;
  return true;
}

/** The upstream's whole answer to the same request. */
function fetchUpstream(cfg: Config, req: IncomingMessage): Promise<{ status: number; headers: IncomingMessage['headers']; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const u = new URL(cfg.upstream);
    const headers = { ...req.headers, host: u.host };
    const up = request({ host: u.hostname, port: u.port, method: req.method, path: req.url, headers }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 502, headers: res.headers, body: Buffer.concat(parts) }));
      res.on('error', reject);
    });
    up.on('error', reject);
    up.end();
  });
}

function proxy(cfg: Config, req: IncomingMessage, res: ServerResponse): void {
  const u = new URL(cfg.upstream);
  const up = request({ host: u.hostname, port: u.port, method: req.method, path: req.url, headers: { ...req.headers, host: u.host } }, (r) => {
    res.writeHead(r.statusCode ?? 502, r.headers);
    r.pipe(res);
  });
  up.on('error', () => res.destroy());
  req.pipe(up);
}

/** Headers worth passing on when we write the body ourselves. */
function passHeaders(h: IncomingMessage['headers'], keep: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of keep) {
    const v = h[k];
    if (typeof v === 'string') out[k] = v;
  }
  return out;
}

/** Writes zeros until the client hangs up, respecting backpressure. */
function zerosForever(res: ServerResponse): void {
  const zeros = Buffer.alloc(64 * 1024);
  const pump = (): void => {
    while (!res.destroyed && res.write(zeros));
    if (!res.destroyed) res.once('drain', pump);
  };
  pump();
}

async function apply(cfg: Config, rule: HostileRule, req: IncomingMessage, res: ServerResponse): Promise<void> {
  switch (rule.action) {
    case 'trickle': {
      const up =
        rule.body !== undefined
          ? { status: 200, headers: { 'content-type': 'application/json' }, body: Buffer.from(rule.body) }
          : await fetchUpstream(cfg, req);
      res.writeHead(up.status, {
        ...passHeaders(up.headers, ['content-type', 'content-range', 'docker-content-digest', 'www-authenticate']),
        'content-length': String(up.body.length),
      });
      res.flushHeaders();
      let i = 0;
      const timer = setInterval(() => {
        if (res.destroyed || i >= up.body.length) {
          clearInterval(timer);
          if (!res.destroyed) res.end();
          return;
        }
        res.write(up.body.subarray(i, ++i));
      }, rule.intervalMs ?? 500);
      res.on('close', () => clearInterval(timer));
      return;
    }
    case 'overrun-range': {
      const up = await fetchUpstream(cfg, req);
      if (up.status !== 206) {
        res.writeHead(up.status, passHeaders(up.headers, ['content-type', 'content-length']));
        res.end(up.body);
        return;
      }
      // No Content-Length: chunked, so nothing but Content-Range says where the body ends.
      res.writeHead(206, passHeaders(up.headers, ['content-type', 'content-range']));
      res.write(up.body);
      zerosForever(res);
      return;
    }
    case 'endless-body': {
      const up = await fetchUpstream(cfg, req);
      res.writeHead(up.status, passHeaders(up.headers, ['content-type', 'docker-content-digest']));
      res.write(up.body);
      zerosForever(res);
      return;
    }
    case 'echo-auth': {
      const auth = req.headers.authorization ?? '';
      const [scheme, value = ''] = auth.split(' ', 2);
      const decoded = scheme?.toLowerCase() === 'basic' ? Buffer.from(value, 'base64').toString('utf8') : value;
      const password = decoded.includes(':') ? decoded.slice(decoded.indexOf(':') + 1) : decoded;
      const body = JSON.stringify({
        errors: [{ code: 'DENIED', message: `access denied for ${decoded}`, detail: `the password ${password} is not valid here` }],
      });
      res.writeHead(rule.status ?? 403, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) });
      res.end(body);
      return;
    }
    case 'bearer-challenge': {
      res.writeHead(401, {
        'www-authenticate': `Bearer realm="http://${req.headers.host}/token",service="hostile"`,
        'content-type': 'application/json',
        'content-length': '2',
      });
      res.end('{}');
      return;
    }
    case 'big-index': {
      const n = rule.count ?? 10_000;
      const manifests = [];
      for (let i = 0; i < n; i++) {
        const digest = 'sha256:' + createHash('sha256').update(String(i)).digest('hex');
        manifests.push({
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          digest,
          size: 1000,
          platform: { os: 'linux', architecture: `hostile-arch-${i}`, variant: `v${i}` },
        });
      }
      const body = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests });
      res.writeHead(200, { 'content-type': 'application/vnd.oci.image.index.v1+json', 'content-length': String(Buffer.byteLength(body)) });
      res.end(body);
      return;
    }
  }
}

function childMain(cfg: Config): void {
  const server = createServer((req, res) => {
    res.on('error', () => undefined);
    const i = cfg.rules.findIndex((r) => matches(r, req));
    if (i < 0) return proxy(cfg, req, res);
    process.stdout.write(JSON.stringify({ hit: i }) + '\n');
    // The request body (none for GET) must be consumed for 'close' to be reported.
    req.resume();
    apply(cfg, cfg.rules[i]!, req, res).catch(() => res.destroy());
  });
  server.listen(0, '127.0.0.1', () => {
    process.stdout.write(JSON.stringify({ port: (server.address() as { port: number }).port }) + '\n');
  });
}

if (process.env[CONFIG_ENV]) {
  const cfg = JSON.parse(process.env[CONFIG_ENV]!) as Config;
  delete process.env[CONFIG_ENV];
  childMain(cfg);
}
