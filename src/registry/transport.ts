// HTTP for the registry client: undici agents with keep-alive and a per-origin connection
// limit, timeouts, TLS policy, and redirects followed by hand so Authorization never leaves
// the origin it was meant for (undici redirect-handler does the same).
import { Agent, type Dispatcher } from 'undici';
import type { IncomingHttpHeaders } from 'node:http';
import { ErrorCodes, StargzError } from '../errors.js';
import { isLoopbackRegistry } from '../reference/reference.js';
import { networkError } from './errors.js';

export interface TransportOptions {
  /** Use TLS without verifying the certificate, for every host. */
  insecure: boolean;
  maxConnectionsPerHost: number;
  /** Deadline for the response headers, and for each idle gap in a body. */
  requestTimeoutMs: number;
  userAgent: string;
  /** Called for every request sent, redirect hops and token fetches included (statistics). */
  onRequest?: (url: URL) => void;
}

export interface HttpRequest {
  url: URL;
  method?: 'GET' | 'HEAD';
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

export type ResponseBody = Dispatcher.ResponseData['body'];

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

/** Sends a request, draining the body of answers nobody will read. */
export class Transport {
  private readonly verifying: Agent;
  private unverifying: Agent | undefined;

  constructor(private readonly opts: TransportOptions) {
    this.verifying = this.makeAgent(opts.insecure);
  }

  private makeAgent(insecure: boolean): Agent {
    return new Agent({
      connections: this.opts.maxConnectionsPerHost,
      pipelining: 1,
      keepAliveTimeout: KEEP_ALIVE_MS,
      keepAliveMaxTimeout: KEEP_ALIVE_MS,
      headersTimeout: this.opts.requestTimeoutMs,
      bodyTimeout: this.opts.requestTimeoutMs,
      connect: {
        timeout: Math.min(this.opts.requestTimeoutMs, MAX_CONNECT_TIMEOUT_MS),
        rejectUnauthorized: !insecure,
      },
    });
  }

  /**
   * Docker treats loopback registries as insecure: TLS if they speak it, without verifying
   * the certificate (and plain HTTP as a fallback, decided by the caller's ping).
   */
  private agentFor(url: URL): Agent {
    if (this.opts.insecure || url.protocol !== 'https:' || !isLoopbackRegistry(url.host)) return this.verifying;
    return (this.unverifying ??= this.makeAgent(true));
  }

  /** One request without following redirects. Network failures become StargzErrors. */
  async send(req: HttpRequest): Promise<HttpResponse> {
    const headers: Record<string, string> = { 'user-agent': this.opts.userAgent, ...req.headers };
    this.opts.onRequest?.(req.url);
    try {
      const res = await this.agentFor(req.url).request({
        origin: req.url.origin,
        path: req.url.pathname + req.url.search,
        method: req.method ?? 'GET',
        headers,
        signal: req.signal ?? null,
      });
      return { status: res.statusCode, headers: res.headers, body: res.body, url: req.url, crossOrigin: false };
    } catch (err) {
      throw networkError(err, `${req.method ?? 'GET'} ${req.url.origin}${req.url.pathname}`);
    }
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

  async close(): Promise<void> {
    await Promise.all([this.verifying.close(), this.unverifying?.close()]);
  }
}

function withoutAuthorization(headers: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) if (k.toLowerCase() !== 'authorization' && k.toLowerCase() !== 'cookie') out[k] = v;
  return out;
}
