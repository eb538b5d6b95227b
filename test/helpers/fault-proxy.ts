// An HTTP proxy in front of a TestRegistry that injects faults (error statuses, resets,
// truncated bodies, ignored Range headers, redirects to a "CDN", delays, slow bodies) and counts requests
// and bytes, so tests can check a client's retries, fallbacks and traffic.
//
// Layout: the proxy listener forwards /v2/... to the registry and /token... to the registry's
// token server (the Bearer realm is rewritten to point at the proxy, so token fetches can be
// faulted and counted too). With opts.cdn a second listener on http://localhost:CDNPORT — a
// different origin — serves blobs straight from the registry's storage, like a blob store
// behind signed redirect URLs; it counts requests that arrive with credentials.
// It runs inside the test process: never block the event loop (execFileSync, spawnSync)
// while a client talks to it — use async execFile/spawn.
import { createServer, request, Agent, type IncomingMessage, type ServerResponse, type Server, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { TestRegistry } from './registry.js';

/** Matched in order against each request; the first match applies. */
export interface FaultRule {
  match?: {
    method?: string;
    pathIncludes?: string; // substring of the request path+query (CDN paths start with /cdn/, token fetches with /token)
    hasRange?: boolean;
    multiRange?: boolean; // Range header lists more than one range
    minContentLength?: number; // request bodies of at least this many bytes (upload chunks, not a config blob's)
  };
  action: 'status' | 'reset' | 'truncate' | 'ignore-range' | 'redirect' | 'delay' | 'throttle' | 'serve-file' | 'drop-request' | 'cut-request' | 'rewrite';
  status?: number; // 'status' (default 503)
  retryAfter?: number; // 'status': Retry-After seconds
  body?: string; // 'status'
  truncateAfterBytes?: number; // 'truncate': headers + N body bytes, then the socket is destroyed
  delayMs?: number; // 'delay' before forwarding (default 1000)
  bytesPerSecond?: number; // 'throttle': the response body passed on at about this rate, in 20 slices a second (default 64 KiB/s)
  /** 'serve-file': answer with this file's bytes instead (single Range honoured): a registry swapping a blob or manifest. */
  file?: string;
  contentType?: string; // 'serve-file' (default application/octet-stream)
  /**
   * 'drop-request': read this many bytes of the request body, then reset the connection without
   * forwarding any of it (an upload broken on its way; the registry never sees the request).
   */
  dropAfterRequestBytes?: number;
  /** 'cut-request': forward this many bytes of the request body, then cut both connections (the registry got part of it). */
  cutAfterRequestBytes?: number;
  /** 'rewrite': forward the request with this path+query instead (a registry that ignores a parameter). */
  rewritePath?: (path: string) => string;
  /** How often the rule may still apply (decremented in place); unlimited when absent. */
  times?: number;
  /** Matching requests let through before the rule applies (decremented in place): the 2nd PATCH of an upload, say. */
  after?: number;
}

export interface FaultLogEntry {
  method: string;
  path: string;
  range?: string;
  status: number; // 0 when the connection was reset before a status was sent
  bytes: number; // body bytes sent to the client
  requestBytes: number; // request body bytes forwarded to the registry
  at: number; // performance.now() when the request arrived (before any delay rule held it)
  cdn?: boolean; // served by the CDN listener
  rule?: FaultRule['action'];
}

export interface FaultStats {
  requests: number; // registry-listener requests (incl. token fetches)
  blobRequests: number; // GETs of /v2/NAME/blobs/DIGEST on the registry listener
  rangeRequests: number; // registry-listener requests carrying a Range header
  cdnRequests: number; // requests to the CDN listener
  bytesToClient: number; // body bytes sent by either listener
  blobBytesToClient: number; // of which blob GET bodies (registry or CDN)
  requestBytesToUpstream: number; // request body bytes forwarded to the registry (uploads)
  authHeadersSeenOnCdn: number; // CDN requests that carried an Authorization header (a client bug)
  log: FaultLogEntry[];
}

export interface FaultProxy {
  host: string; // '127.0.0.1:PORT'
  url: string; // 'http://127.0.0.1:PORT'
  cdnUrl?: string; // 'http://localhost:PORT' when opts.cdn
  rules: FaultRule[]; // mutable at any time
  stats: FaultStats;
  resetStats(): void;
  close(): Promise<void>;
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade']);
const BLOB_PATH = /^\/v2\/(.+)\/blobs\/([a-z0-9]+:[a-f0-9]+)$/;
const CDN_PATH = /^\/cdn\/([a-z0-9]+:[a-f0-9]+)$/;

function copyHeaders(h: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined && !HOP_BY_HOP.has(k)) out[k] = v;
  return out;
}

function ruleMatches(rule: FaultRule, req: IncomingMessage, cdn: boolean, blobGet: boolean): boolean {
  if (rule.times !== undefined && rule.times <= 0) return false;
  if (rule.action === 'redirect' && (cdn || !blobGet)) return false; // only blob GETs on the registry side can be redirected
  const m = rule.match ?? {};
  const range = req.headers.range;
  if (m.method !== undefined && m.method.toUpperCase() !== req.method) return false;
  if (m.pathIncludes !== undefined && !(req.url ?? '').includes(m.pathIncludes)) return false;
  if (m.hasRange !== undefined && m.hasRange !== (range !== undefined)) return false;
  if (m.multiRange !== undefined && m.multiRange !== (range !== undefined && range.includes(','))) return false;
  if (m.minContentLength !== undefined && !(Number(req.headers['content-length'] ?? 0) >= m.minContentLength)) return false;
  if (rule.after !== undefined && rule.after > 0) {
    rule.after--;
    return false;
  }
  return true;
}

/** Parses a single 'bytes=a-b' / 'bytes=a-' / 'bytes=-n' range; null = serve whole, 'bad' = unsatisfiable. */
function singleRange(h: string | undefined, size: number): { start: number; end: number } | null | 'bad' {
  if (!h || h.includes(',')) return null; // like many blob stores: multi-range answered with the whole body
  const m = /^bytes=(\d*)-(\d*)$/.exec(h.trim());
  if (!m || (m[1] === '' && m[2] === '')) return null;
  let start: number;
  let end: number;
  if (m[1] === '') {
    start = Math.max(0, size - Number(m[2]));
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  if (start >= size || start > end) return 'bad';
  return { start, end };
}

/** Writes `chunk` to res in slices of rate/20 bytes, one each 50 ms, counting each; then `next`. */
function trickle(chunk: Buffer, res: ServerResponse, count: (n: number) => void, rate: number, next: () => void): void {
  const slice = Math.max(1, Math.floor(rate / 20));
  const step = (at: number): void => {
    if (res.destroyed) return;
    if (at >= chunk.length) return next();
    const part = chunk.subarray(at, at + slice);
    count(part.length);
    res.write(part);
    setTimeout(() => step(at + part.length), 50);
  };
  step(0);
}

/** Copies src to res counting body bytes; with limit, stops after limit bytes and kills the connection; with rate, at about that many bytes a second. */
function relay(src: Readable, res: ServerResponse, count: (n: number) => void, limit?: number, rate?: number): void {
  let sent = 0;
  const cut = (): void => {
    src.destroy();
    res.socket?.destroy();
    res.destroy();
  };
  if (limit !== undefined && limit <= 0) {
    res.flushHeaders();
    setImmediate(cut); // let the headers leave first
    return;
  }
  src.on('data', (chunk: Buffer) => {
    if (rate !== undefined) {
      src.pause();
      trickle(chunk, res, count, rate, () => src.resume());
      return;
    }
    if (limit !== undefined && sent + chunk.length >= limit) {
      const part = chunk.subarray(0, limit - sent);
      sent += part.length;
      count(part.length);
      res.write(part, () => cut());
      src.pause();
      return;
    }
    sent += chunk.length;
    count(chunk.length);
    if (!res.write(chunk)) {
      src.pause();
      res.once('drain', () => src.resume());
    }
  });
  src.on('end', () => res.end());
  src.on('error', () => res.destroy());
  res.on('close', () => src.destroy());
}

async function listen(server: Server, port: number, host: string): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.unref(); // a forgotten close() must not keep the test process alive
  return (server.address() as { port: number }).port;
}

export async function startFaultProxy(upstream: TestRegistry, opts: { cdn?: boolean } = {}): Promise<FaultProxy> {
  const agent = new Agent({ keepAlive: true });
  const upstreamUrl = new URL(upstream.url);
  const tokenUrl = upstream.tokenServer ? new URL(upstream.tokenServer.url) : undefined;
  const freshStats = (): FaultStats => ({
    requests: 0, blobRequests: 0, rangeRequests: 0, cdnRequests: 0, bytesToClient: 0, blobBytesToClient: 0, requestBytesToUpstream: 0, authHeadersSeenOnCdn: 0, log: [],
  });
  const servers: Server[] = [];

  interface Serve {
    stripRange?: boolean;
    limit?: number;
    /** Response body bytes per second. */
    rate?: number;
    path?: string;
    /** Counts request body bytes forwarded upstream. */
    sent?: (n: number) => void;
    /** Cut both connections once this many request body bytes went upstream. */
    cutAfter?: number;
  }
  type Counter = (n: number) => void;

  /** Forwards to the registry (or its token server for /token...), rewriting URLs that point back at them. */
  function forward(req: IncomingMessage, res: ServerResponse, o: Serve, count: Counter): void {
    const headers = copyHeaders(req.headers);
    if (o.stripRange) {
      delete headers.range;
      delete headers['if-range'];
    }
    const path = o.path ?? req.url ?? '/';
    const toToken = tokenUrl !== undefined && /^\/token(\?|$)/.test(path);
    const target = toToken ? tokenUrl : upstreamUrl;
    let done = false;
    const up = request({ host: target.hostname, port: target.port, method: req.method, path, headers, agent }, (ures) => {
      const h = copyHeaders(ures.headers);
      const loc = h.location;
      if (typeof loc === 'string' && loc.startsWith(upstream.url)) h.location = proxy.url + loc.slice(upstream.url.length);
      const wa = h['www-authenticate'];
      if (typeof wa === 'string' && tokenUrl) h['www-authenticate'] = wa.replace(`realm="${tokenUrl.href}"`, `realm="${proxy.url}/token"`);
      res.writeHead(ures.statusCode ?? 502, h);
      ures.on('end', () => (done = true));
      relay(ures, res, count, o.limit, o.rate);
    });
    up.on('error', () => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' }).end('bad gateway: upstream unreachable');
      else res.destroy();
    });
    res.on('close', () => {
      if (!done) up.destroy();
    });
    let forwarded = 0;
    const cutAfter = o.cutAfter;
    if (cutAfter === undefined) {
      req.on('data', (c: Buffer) => o.sent?.(c.length));
      req.pipe(up);
      return;
    }
    req.on('data', (c: Buffer) => {
      if (forwarded >= cutAfter) return;
      const part = c.subarray(0, cutAfter - forwarded);
      forwarded += part.length;
      o.sent?.(part.length);
      up.write(part);
      if (forwarded >= cutAfter) {
        // Let the bytes reach the registry, then hang up on both sides.
        setTimeout(() => {
          up.destroy();
          req.socket.destroy();
        }, 200);
      }
    });
  }

  /** The CDN: blobs straight from registry storage, single Range supported. */
  async function serveCdn(req: IncomingMessage, res: ServerResponse, o: Serve, count: Counter): Promise<void> {
    const m = CDN_PATH.exec(new URL(req.url ?? '/', 'http://x').pathname);
    return serveFile(req, res, m ? upstream.blobPath(m[1] as string) : undefined, o, count);
  }

  async function serveFile(req: IncomingMessage, res: ServerResponse, file: string | undefined, o: Serve, count: Counter, contentType = 'application/octet-stream'): Promise<void> {
    const st = file ? await stat(file).catch(() => undefined) : undefined;
    if (!file || !st) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('no such blob');
      return;
    }
    const r = o.stripRange ? null : singleRange(req.headers.range, st.size);
    if (r === 'bad') {
      res.writeHead(416, { 'content-range': `bytes */${st.size}` }).end();
      return;
    }
    const start = r ? r.start : 0;
    const end = r ? r.end : st.size - 1;
    const headers: OutgoingHttpHeaders = { 'content-type': contentType, 'content-length': end - start + 1, 'accept-ranges': 'bytes' };
    if (r) headers['content-range'] = `bytes ${start}-${end}/${st.size}`;
    res.writeHead(r ? 206 : 200, headers);
    if (req.method === 'HEAD' || st.size === 0) {
      res.end();
      return;
    }
    relay(createReadStream(file, { start, end }), res, count, o.limit);
  }

  /** A 307 to the CDN, after asking the registry whether this client may read the blob (401s pass through). */
  function redirectToCdn(req: IncomingMessage, res: ServerResponse, repo: string, digest: string): void {
    const headers = copyHeaders(req.headers);
    delete headers.range;
    const check = request({ host: upstreamUrl.hostname, port: upstreamUrl.port, method: 'HEAD', path: req.url, headers, agent }, (ures) => {
      ures.resume();
      if (ures.statusCode !== 200) {
        const h = copyHeaders(ures.headers);
        const wa = h['www-authenticate'];
        if (typeof wa === 'string' && tokenUrl) h['www-authenticate'] = wa.replace(`realm="${tokenUrl.href}"`, `realm="${proxy.url}/token"`);
        delete h['content-length'];
        res.writeHead(ures.statusCode ?? 502, h).end();
        return;
      }
      const sig = randomBytes(8).toString('hex');
      res.writeHead(307, { location: `${proxy.cdnUrl}/cdn/${digest}?repo=${encodeURIComponent(repo)}&sig=${sig}`, 'content-length': 0 }).end();
    });
    check.on('error', () => {
      if (!res.headersSent) res.writeHead(502).end();
    });
    check.end();
  }

  function handler(cdn: boolean) {
    return (req: IncomingMessage, res: ServerResponse): void => {
      const { stats } = proxy;
      const path = req.url ?? '/';
      const range = req.headers.range;
      const blobMatch = cdn ? CDN_PATH.exec(path.split('?')[0] as string) : BLOB_PATH.exec(path.split('?')[0] as string);
      const blobGet = req.method === 'GET' && blobMatch !== null;
      if (cdn) {
        stats.cdnRequests++;
        if (req.headers.authorization !== undefined) stats.authHeadersSeenOnCdn++;
      } else {
        stats.requests++;
        if (blobGet) stats.blobRequests++;
        if (range !== undefined) stats.rangeRequests++;
      }
      const rule = proxy.rules.find((r) => ruleMatches(r, req, cdn, blobGet));
      if (rule?.times !== undefined) rule.times--;
      const entry: FaultLogEntry = { method: req.method ?? '', path, status: 0, bytes: 0, requestBytes: 0, at: performance.now() };
      if (range !== undefined) entry.range = range;
      if (cdn) entry.cdn = true;
      if (rule) entry.rule = rule.action;
      stats.log.push(entry);
      res.on('close', () => {
        if (res.headersSent) entry.status = res.statusCode;
      });
      const count: Counter = (n) => {
        entry.bytes += n;
        proxy.stats.bytesToClient += n;
        if (blobGet) proxy.stats.blobBytesToClient += n;
      };
      const sent = (n: number): void => {
        entry.requestBytes += n;
        proxy.stats.requestBytesToUpstream += n;
      };
      const serve = (o: Serve): void => {
        if (cdn) void serveCdn(req, res, o, count).catch(() => res.destroy());
        else forward(req, res, { ...o, sent }, count);
      };
      switch (rule?.action) {
        case 'status': {
          req.resume();
          const body = req.method === 'HEAD' ? '' : (rule.body ?? 'fault injected');
          const h: OutgoingHttpHeaders = { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) };
          if (rule.retryAfter !== undefined) h['retry-after'] = String(rule.retryAfter);
          res.writeHead(rule.status ?? 503, h);
          count(Buffer.byteLength(body));
          res.end(body);
          return;
        }
        case 'reset': {
          const s = req.socket as typeof req.socket & { resetAndDestroy?: () => void };
          if (typeof s.resetAndDestroy === 'function') s.resetAndDestroy();
          else s.destroy();
          return;
        }
        case 'truncate':
          return serve({ limit: rule.truncateAfterBytes ?? 0 });
        case 'ignore-range':
          return serve({ stripRange: true });
        case 'redirect':
          if (!proxy.cdnUrl) {
            res.writeHead(500, { 'content-type': 'text/plain' }).end('redirect rule needs startFaultProxy(reg, { cdn: true })');
            return;
          }
          return redirectToCdn(req, res, (blobMatch as RegExpExecArray)[1] as string, (blobMatch as RegExpExecArray)[2] as string);
        case 'serve-file':
          req.resume();
          void serveFile(req, res, rule.file, {}, count, rule.contentType).catch(() => res.destroy());
          return;
        case 'drop-request': {
          let got = 0;
          const limit = rule.dropAfterRequestBytes ?? 0;
          const drop = (): void => {
            const sock = req.socket as typeof req.socket & { resetAndDestroy?: () => void };
            if (typeof sock.resetAndDestroy === 'function') sock.resetAndDestroy();
            else sock.destroy();
          };
          if (limit <= 0) return drop();
          req.on('data', (c: Buffer) => {
            got += c.length;
            if (got >= limit) drop();
          });
          return;
        }
        case 'cut-request':
          return serve({ cutAfter: rule.cutAfterRequestBytes ?? 0 });
        case 'rewrite':
          return serve({ path: rule.rewritePath ? rule.rewritePath(path) : path });
        case 'throttle':
          return serve({ rate: rule.bytesPerSecond ?? 64 * 1024 });
        case 'delay': {
          const t = setTimeout(() => serve({}), rule.delayMs ?? 1000);
          res.on('close', () => clearTimeout(t));
          return;
        }
        default:
          return serve({});
      }
    };
  }

  const main = createServer(handler(false));
  servers.push(main);
  const port = await listen(main, 0, '127.0.0.1');
  const proxy: FaultProxy = {
    host: `127.0.0.1:${port}`,
    url: `http://127.0.0.1:${port}`,
    rules: [],
    stats: freshStats(),
    resetStats() {
      Object.assign(proxy.stats, freshStats());
    },
    async close() {
      await Promise.all(
        servers.map(
          (s) =>
            new Promise<void>((resolve) => {
              s.closeAllConnections();
              s.close(() => resolve());
            }),
        ),
      );
      agent.destroy();
    },
  };
  if (opts.cdn) {
    // A different origin: other host name and port. localhost may resolve to ::1 first, so listen there too.
    const cdn4 = createServer(handler(true));
    servers.push(cdn4);
    const cdnPort = await listen(cdn4, 0, '127.0.0.1');
    const cdn6 = createServer(handler(true));
    try {
      await listen(cdn6, cdnPort, '::1');
      servers.push(cdn6);
    } catch {
      /* no IPv6 loopback here: 127.0.0.1 is what localhost means */
    }
    proxy.cdnUrl = `http://localhost:${cdnPort}`;
  }
  return proxy;
}
