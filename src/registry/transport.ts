// HTTP for the registry client: undici agents with keep-alive and a per-origin connection
// limit, deadlines and a minimum transfer rate per request, one abort signal for all of them,
// TLS settings and forward proxy per origin, and redirects followed by hand so Authorization
// never leaves the origin it was meant for (undici redirect-handler does the same).
import { leanRequire } from '../util/lean-require.js';
import type { Agent as UndiciAgent, ProxyAgent as UndiciProxyAgent, Dispatcher } from 'undici';
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import { ErrorCodes, StargzError } from '../errors.js';
import { DEFAULT_OPTIONS } from '../config.js';
import { errnoCode } from '../util/errno-code.js';
import type { Logger } from '../util/log.js';
import { GuardedBody, watchRate } from './body-guard.js';
import { networkError } from './errors.js';
import { describeProxyFailure, proxyFor, type ChosenProxy, type ProxySettings } from './proxy.js';
import { describeTlsFailure, probeTlsAlert, tlsConnectOptions, type LoadedTls } from './tls.js';

export interface TransportOptions {
  /** Use TLS without verifying the certificate, for every host. */
  insecure: boolean;
  /** TLS material for a host ('registry.example.com', '127.0.0.1:5000'); undefined: system roots only. */
  tlsFor?: (host: string) => LoadedTls | undefined;
  /** Forward proxies (proxy.ts proxyFromEnv); undefined: always direct. */
  proxy?: ProxySettings;
  maxConnectionsPerHost: number;
  /**
   * Deadline for the response headers, for each idle gap in a body, and for the whole of a
   * document answer (see HttpRequest.kind).
   */
  requestTimeoutMs: number;
  /** A blob body slower than this (bytes/s over rateWindowMs) fails with TIMEOUT; 0 turns it off. */
  minTransferRate?: number;
  rateWindowMs?: number;
  /** Aborts every request (the CLI's Ctrl-C and SIGTERM); a request's own signal adds to it. */
  signal?: AbortSignal;
  userAgent: string;
  /** Called for every request sent, redirect hops and token fetches included (statistics). */
  onRequest?: (url: URL) => void;
  /**
   * One info line per request once its body is done or it failed: method, host, path, status,
   * body bytes, milliseconds. Never a header or the query (signed CDN URLs carry secrets there).
   */
  log?: Logger;
}

export interface HttpRequest {
  url: URL;
  method?: 'GET' | 'HEAD' | 'POST' | 'PATCH' | 'PUT' | 'DELETE';
  headers?: Record<string, string>;
  /**
   * A request body: the OAuth2 token form, a manifest, or an upload chunk streamed as it is
   * read (an iterable, sent once: it cannot be replayed). A body of n bytes adds
   * n / minTransferRate seconds to the deadline, so a slow upload link is held to the same
   * minimum rate as a download, not to the deadline of a small answer.
   */
  body?: string | Buffer | AsyncIterable<Buffer>;
  /** Length of an iterable body (its Content-Length). */
  bodyBytes?: number;
  signal?: AbortSignal;
  /**
   * 'document' (default): manifests, tokens, pings — the whole answer within requestTimeoutMs.
   * 'blob': headers within requestTimeoutMs, then a body of any length at no less than the
   * minimum rate. Answers other than 2xx are documents either way (error bodies are small).
   */
  kind?: 'document' | 'blob';
}

export type ResponseBody = GuardedBody;

export interface HttpResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: ResponseBody;
  /** Where the answer finally came from, after redirects. */
  url: URL;
  /** True when a redirect took us to another origin. */
  crossOrigin: boolean;
}

export const MAX_REDIRECTS = 5;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
/** Connections left idle longer than this are closed (registries and CDNs drop them anyway). */
const KEEP_ALIVE_MS = 30_000;
const MAX_CONNECT_TIMEOUT_MS = 10_000;

/** First value of a header that may repeat. */
export function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

/**
 * Drops a body we will not read. undici's body emits an 'error' (UND_ERR_ABORTED) when
 * destroyed before its end; with no listener that would crash the process.
 */
export function discard(body: ResponseBody): void {
  body.on('error', () => undefined);
  body.destroy();
}

/** One dispatcher per origin: its TLS material and its proxy are the origin's own. */
interface Route {
  dispatcher: Dispatcher;
  proxy: ChosenProxy | undefined;
  clientCert: boolean;
  tls: ReturnType<typeof tlsConnectOptions>;
}

// Only undici's Agent, its request API and, when a proxy is set, its ProxyAgent are loaded
// (util/lean-require.ts), with the request API (and for CONNECT the connect API) attached to
// Dispatcher as undici's index attaches them.
type Undici = typeof import('undici');
function leanPart<T>(api: 'request' | 'connect', path: string, whole: (u: Undici) => T): T {
  return leanRequire(
    'undici',
    (req) => {
      const dispatcher = req('undici/lib/dispatcher/dispatcher.js') as { prototype: Record<string, unknown> };
      dispatcher.prototype[api] ??= req(`undici/lib/api/api-${api}.js`);
      return req(path) as T;
    },
    whole,
  );
}
let agentClass: typeof UndiciAgent | undefined;
let proxyAgentClass: typeof UndiciProxyAgent | undefined;
function undiciAgent(): typeof UndiciAgent {
  return (agentClass ??= leanPart('request', 'undici/lib/dispatcher/agent.js', (u) => u.Agent));
}
function undiciProxyAgent(): typeof UndiciProxyAgent {
  undiciAgent();
  // CONNECT tunnels go through the connect API.
  return (proxyAgentClass ??= leanPart('connect', 'undici/lib/dispatcher/proxy-agent.js', (u) => u.ProxyAgent));
}

export class Transport {
  private readonly routes = new Map<string, Route>();

  constructor(private readonly opts: TransportOptions) {}

  private routeFor(url: URL): Route {
    const key = `${url.protocol}//${url.host}`;
    let route = this.routes.get(key);
    if (route) return route;
    const tls = url.protocol === 'https:' ? this.opts.tlsFor?.(url.host) : undefined;
    const connectTls = tlsConnectOptions(tls, this.opts.insecure);
    const proxy = proxyFor(url, this.opts.proxy);
    const base = {
      connections: this.opts.maxConnectionsPerHost,
      pipelining: 1,
      keepAliveTimeout: KEEP_ALIVE_MS,
      keepAliveMaxTimeout: KEEP_ALIVE_MS,
      headersTimeout: this.opts.requestTimeoutMs,
      bodyTimeout: this.opts.requestTimeoutMs,
    };
    const timeout = Math.min(this.opts.requestTimeoutMs, MAX_CONNECT_TIMEOUT_MS);
    const dispatcher = proxy
      ? new (undiciProxyAgent())({
          ...base,
          uri: proxy.url.href,
          // Plain HTTP goes to the proxy as an absolute-URI request (curl, Go); HTTPS through CONNECT.
          proxyTunnel: false,
          requestTls: connectTls,
          proxyTls: { timeout },
        })
      : new (undiciAgent())({ ...base, connect: { timeout, ...connectTls } });
    route = { dispatcher, proxy, clientCert: tls?.cert !== undefined, tls: connectTls };
    this.routes.set(key, route);
    return route;
  }

  /**
   * The TLS alert behind a connection closed before any answer (see probeTlsAlert), as an
   * ERR_TLS; undefined when there is none. Direct HTTPS connections only.
   */
  private async hiddenTlsAlert(err: unknown, url: URL, route: Route, what: string, signal?: AbortSignal): Promise<StargzError | undefined> {
    const code = errnoCode(err);
    if (url.protocol !== 'https:' || route.proxy || (code !== 'UND_ERR_SOCKET' && code !== 'ECONNRESET')) return undefined;
    if (this.opts.signal?.aborted || signal?.aborted) return undefined;
    const alert = await probeTlsAlert(url, route.tls, Math.min(this.opts.requestTimeoutMs, MAX_CONNECT_TIMEOUT_MS));
    return alert && describeTlsFailure(alert, what, url.host, route.clientCert);
  }

  /**
   * One request without following redirects. Network failures, deadlines and aborts become
   * StargzErrors (TIMEOUT, ABORTED), thrown by send() or by reading the body.
   */
  async send(req: HttpRequest): Promise<HttpResponse> {
    const headers: Record<string, string> = { 'user-agent': this.opts.userAgent, ...req.headers };
    const what = `${req.method ?? 'GET'} ${req.url.origin}${req.url.pathname}`;
    const timeoutMs = this.opts.requestTimeoutMs;
    // First, before any timer or listener: unreadable certificate files throw ERR_TLS here.
    const route = this.routeFor(req.url);
    // One controller per request: the caller's signal, the transport's and our deadlines all
    // end it through undici's own abort path, which also destroys a body being read.
    const ctl = new AbortController();
    const end = (reason: StargzError): void => {
      if (!ctl.signal.aborted) ctl.abort(reason);
    };
    const outer = [req.signal, this.opts.signal].filter((s): s is AbortSignal => s !== undefined);
    const onOuter = (): void => end(new StargzError(ErrorCodes.ABORTED, `${what}: aborted`));
    let timer: NodeJS.Timeout | undefined;
    let stopRate: (() => void) | undefined;
    const cleanup = (): void => {
      clearTimeout(timer);
      stopRate?.();
      for (const s of outer) s.removeEventListener('abort', onOuter);
    };
    const deadline = (ms: number, why: string): void => {
      clearTimeout(timer);
      timer = setTimeout(() => end(new StargzError(ErrorCodes.TIMEOUT, `${what}: ${why}`, { retryable: true })), ms);
      timer.unref();
    };
    for (const s of outer) {
      if (s.aborted) throw new StargzError(ErrorCodes.ABORTED, `${what}: aborted`);
      s.addEventListener('abort', onOuter, { once: true });
    }
    const kind = req.kind ?? 'document';
    const sendMs = uploadAllowanceMs(typeof req.body === 'string' || Buffer.isBuffer(req.body) ? Buffer.byteLength(req.body) : (req.bodyBytes ?? 0), this.opts.minTransferRate ?? 0);
    const firstMs = timeoutMs + sendMs;
    deadline(firstMs, kind === 'document' ? `no complete answer within ${firstMs} ms` : `no response headers within ${firstMs} ms`);
    this.opts.onRequest?.(req.url);
    const failure = (err: unknown): StargzError =>
      describeProxyFailure(err, route.proxy, what) ?? describeTlsFailure(err, what, req.url.host, route.clientCert) ?? networkError(err, what);
    const log = this.opts.log;
    const started = log?.enabled('info') ? performance.now() : 0;
    const took = (): string => `${Math.round(performance.now() - started)} ms`;
    const range = headers.range ?? headers.Range ?? headers['content-range'];
    const requestLine = `${req.method ?? 'GET'} ${req.url.host} ${req.url.pathname}${range ? ` ${range}` : ''}`;
    let res;
    try {
      res = await route.dispatcher.request({
        origin: req.url.origin,
        path: req.url.pathname + req.url.search,
        method: req.method ?? 'GET',
        headers,
        // undici sends an iterable as it yields (its types list Readable, which it wraps the same way).
        ...(req.body !== undefined ? { body: req.body as string | Buffer | Readable } : {}),
        signal: ctl.signal,
      });
    } catch (err) {
      cleanup();
      const e = (await this.hiddenTlsAlert(err, req.url, route, what, req.signal)) ?? failure(err);
      log?.info(() => `${requestLine} failed after ${took()}: ${e.code}`);
      throw e;
    }
    const status = res.statusCode;
    const ok = status >= 200 && status < 300;
    const body = new GuardedBody();
    if (kind === 'blob') {
      if (!ok) deadline(timeoutMs, `error answer not complete within ${timeoutMs} ms`);
      else {
        clearTimeout(timer);
        const rate = this.opts.minTransferRate ?? 0;
        const windowMs = this.opts.rateWindowMs ?? DEFAULT_OPTIONS.rateWindowMs;
        if (rate > 0) {
          stopRate = watchRate(body, rate, windowMs, (got) =>
            end(
              new StargzError(
                ErrorCodes.TIMEOUT,
                `${what}: the body arrived slower than ${rate} bytes/s (${got} bytes in ${windowMs} ms)`,
                { retryable: true },
              ),
            ),
          );
        }
      }
    }
    const raw = res.body;
    raw.on('error', (err) => body.destroy(failure(err)));
    body.on('close', () => {
      cleanup();
      log?.info(() => `${requestLine} ${status} ${body.received} bytes ${took()}${bodyEnd(body)}`);
      if (!raw.destroyed) raw.destroy(); // we stopped reading: hang up rather than drain
    });
    raw.pipe(body);
    return { status: res.statusCode, headers: res.headers, body, url: req.url, crossOrigin: false };
  }

  /**
   * A request that follows up to MAX_REDIRECTS redirects. Once a hop leaves the original
   * origin, Authorization is dropped for good: a CDN must never see registry credentials.
   */
  async request(req: HttpRequest): Promise<HttpResponse> {
    const origin = req.url.origin;
    let url = req.url;
    let headers = { ...req.headers };
    for (let hop = 0; ; hop++) {
      const res = await this.send({ ...req, url, headers });
      if (!REDIRECT_STATUSES.has(res.status)) return { ...res, crossOrigin: url.origin !== origin };
      const location = header(res.headers, 'location');
      res.body.dump().catch(() => undefined); // frees the connection for reuse
      if (!location) {
        throw new StargzError(ErrorCodes.REGISTRY_PROTOCOL, `redirect ${res.status} from ${url.origin}${url.pathname} without Location`, { status: res.status });
      }
      if (hop >= MAX_REDIRECTS) {
        throw new StargzError(ErrorCodes.REGISTRY_PROTOCOL, `more than ${MAX_REDIRECTS} redirects starting at ${origin}${req.url.pathname}`);
      }
      let next: URL;
      try {
        next = new URL(location, url);
      } catch {
        throw new StargzError(ErrorCodes.REGISTRY_PROTOCOL, `redirect to an invalid URL from ${url.origin}${url.pathname}`);
      }
      if (next.protocol !== 'https:' && next.protocol !== 'http:') {
        throw new StargzError(ErrorCodes.REGISTRY_PROTOCOL, `redirect to unsupported scheme ${next.protocol}`);
      }
      if (next.origin !== origin) headers = withoutAuthorization(headers);
      url = next;
    }
  }

  /** Waits for requests in flight; once aborted, cuts them off instead. */
  async close(): Promise<void> {
    const all = [...this.routes.values()].map((r) => r.dispatcher);
    if (this.opts.signal?.aborted) await Promise.all(all.map((d) => d.destroy()));
    else await Promise.all(all.map((d) => d.close()));
  }
}

/** The time a request body may take to leave at the minimum transfer rate (0: no body, or no minimum). */
function uploadAllowanceMs(bodyBytes: number, minRate: number): number {
  return minRate > 0 ? Math.ceil((bodyBytes / minRate) * 1000) : 0;
}

/** How a body ended, for the request's log line: read to its end, hung up on, or failed. */
function bodyEnd(body: GuardedBody): string {
  const err = body.errored as { code?: string } | null;
  if (err) return ` (body failed: ${err.code ?? 'error'})`;
  return body.readableEnded ? '' : ' (hung up before its end)';
}

function withoutAuthorization(headers: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) if (k.toLowerCase() !== 'authorization' && k.toLowerCase() !== 'cookie') out[k] = v;
  return out;
}
