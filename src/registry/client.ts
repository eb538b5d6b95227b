// The registry client: manifests, small blobs, exact byte ranges of big blobs, and whole-blob
// streams, over one connection pool per registry, with auth, retries and resume.
import { Transform } from 'node:stream';
import { ErrorCodes, StargzError, toStargzError } from '../errors.js';
import { CLIENT_DEFAULTS } from '../config.js';
import { registryApiHost, type ImageReference } from '../reference/reference.js';
import { sha256Digest } from '../util/digest.js';
import { SingleFlight } from '../util/single-flight.js';
import { Authenticator, pullScope, type Credentials } from './auth.js';
import { anonymousKeychain, defaultKeychain, staticKeychain, type Keychain } from './keychain.js';
import { parseWwwAuthenticate } from './challenge.js';
import { httpStatusError, networkError, readBoundedText } from './errors.js';
import {
  MANIFEST_ACCEPT,
  MAX_MANIFEST_BYTES,
  defaultPlatform,
  manifestMediaType,
  parseManifest,
  selectManifest,
  type ImageManifest,
  type Platform,
} from './manifest.js';
import { ping, unpingedBaseUrl, type PingResult } from './ping.js';
import { proxyFromEnv, type ProxySettings } from './proxy.js';
import { withRetry, type RetryOptions } from './retry.js';
import { hostTlsLookup, type LoadedTls, type TlsSettings } from './tls.js';
import { Transport, discard, header, type HttpRequest, type HttpResponse } from './transport.js';
import type { RegistrySettings } from './settings.js';
import { registryHosts, type RegistryHost } from './hosts.js';
import type { Logger } from '../util/log.js';
import { FetchMetrics } from '../metrics/fetch-metrics.js';

export type { Credentials } from './auth.js';
export type { Descriptor, Platform } from './manifest.js';

export interface RegistryClientOptions {
  /** Fixed credentials; without them (and without `keychain`), defaultKeychain() is asked. */
  credentials?: Credentials;
  /** Where credentials come from, asked at each authentication (see keychain.ts). */
  keychain?: Keychain;
  /** Talk HTTP, not HTTPS. */
  plainHttp?: boolean;
  /** HTTPS without certificate verification. */
  insecure?: boolean;
  /**
   * TLS for the registry host (CAs added to the system roots, a client certificate, skip
   * verification). Unset: its certs.d directory (tls.ts certsDirRoots), as docker and podman.
   * Other hosts (token realm, blob CDN) always use their own certs.d directory, if any.
   */
  tls?: TlsSettings;
  /** Roots searched for HOST[:PORT] directories (default tls.ts certsDirRoots()). */
  certsDirs?: string[];
  /** Forward proxies (default: HTTPS_PROXY, HTTP_PROXY, NO_PROXY from the environment, proxy.ts). */
  proxy?: ProxySettings;
  /** Retries of a failed request (default 5). */
  retries?: number;
  /** First retry delay, doubled each time (default 200 ms). */
  retryBaseDelayMs?: number;
  /** Deadline for response headers, each idle gap in a body, and a whole small document (default: config.ts). */
  requestTimeoutMs?: number;
  /** Minimum rate of a blob body, bytes/s over rateWindowMs (default: config.ts). */
  minTransferRate?: number;
  rateWindowMs?: number;
  /** Ends every request and retry of this client, token fetches included (the CLI's Ctrl-C). */
  signal?: AbortSignal;
  /** Connections kept to one origin (default 16). */
  maxConnectionsPerHost?: number;
  userAgent?: string;
  /**
   * This registry's settings from the configuration file, for the record: the CLI has already
   * folded them into the fields above (plainHttp, insecure, certDir into `tls`, authfile into
   * `keychain`, mirrors into `hosts`).
   */
  settings?: RegistrySettings;
  /**
   * Where to ask, in order (hosts.ts): mirrors first, the upstream last. Unset: the registry
   * alone. Each host gets its own transport: its hosts.toml ca/client/skip_verify (the
   * registry's joined with `tls`), else its certs.d directory; `proxy` applies to every one.
   */
  hosts?: RegistryHost[];
  /** One line per host that failed and was passed over (the CLI's notice). */
  notice?: (message: string) => void;
  /** Requests (transport.ts) and retries, at info: the CLI's -v. */
  log?: Logger;
  /** Where requests and bytes are counted; a fresh one when unset (the image's, from openImage). */
  metrics?: FetchMetrics;
}

/** A mirror gets no retries: failing over to the next host is the retry. */
const MIRROR_RETRIES = 0;

/**
 * What withBlobHosts passes a host over for: its own failures (transport, status, protocol)
 * and bytes from it that do not verify, inflate or parse. Anything else thrown by an attempt
 * (the cache, the disk, an abort) is ours, and another host would not change it.
 */
export const PASS_OVER_CODES: ReadonlySet<string> = new Set([
  ErrorCodes.REGISTRY_UNREACHABLE,
  ErrorCodes.REGISTRY_AUTH,
  ErrorCodes.REGISTRY_NOT_FOUND,
  ErrorCodes.REGISTRY_RATE_LIMITED,
  ErrorCodes.REGISTRY_SERVER,
  ErrorCodes.REGISTRY_PROTOCOL,
  ErrorCodes.TLS,
  ErrorCodes.PROXY,
  ErrorCodes.TIMEOUT,
  ErrorCodes.DIGEST_MISMATCH,
  ErrorCodes.NOT_ESTARGZ,
  ErrorCodes.TOC_INVALID,
  ErrorCodes.CORRUPT_DATA,
]);

/** Reads of one blob from one host, for one try of withBlobHosts. */
export interface HostBlobReader {
  readRange(offset: number, length: number, signal?: AbortSignal): Promise<Buffer>;
  openStream(signal?: AbortSignal): Promise<NodeJS.ReadableStream>;
}

/** One host of the list, with its own connection state. */
interface Endpoint {
  host: RegistryHost;
  transport: Transport;
  auth: Authenticator;
  pinged?: PingResult;
  pingFlight: SingleFlight<string, PingResult>;
  cdnUrls: Map<string, { url: URL; expiresAt: number }>;
  /** Failed as a host (unreachable, 5xx, bad bytes): passed over from then on. */
  down: boolean;
}

export interface ResolvedImage {
  ref: ImageReference;
  manifestDigest: string;
  manifest: ImageManifest;
  manifestBytes: Buffer;
  /** Set when the reference named an index and a platform's manifest was chosen from it. */
  indexDigest?: string;
  platform?: Platform;
}

/** Config blobs and the like: anything bigger is not a "small blob". */
export const DEFAULT_MAX_BLOB_BYTES = 16 * 1024 * 1024;
/** How long a CDN URL a registry redirected a blob to is reused for later ranges of that blob. */
const CDN_URL_TTL_MS = 60_000;

const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;
const TAG_RE = /^\w[\w.-]{0,127}$/;

function usage(message: string): StargzError {
  return new StargzError(ErrorCodes.USAGE, message);
}

function checkInt(name: string, v: number, min: number, max: number): void {
  if (!Number.isSafeInteger(v) || v < min || v > max) throw usage(`${name} must be an integer between ${min} and ${max}, got ${v}`);
}

function checkDigest(digest: string): void {
  if (!DIGEST_RE.test(digest)) throw new StargzError(ErrorCodes.REFERENCE_INVALID, `invalid digest ${JSON.stringify(digest)} (want sha256:<64 hex>)`);
}

/** Parses `bytes a-b/total` (total may be '*'). */
export function parseContentRange(value: string | undefined): { start: number; end: number; total?: number } | undefined {
  const m = value === undefined ? null : /^\s*bytes\s+(\d+)-(\d+)\/(\d+|\*)\s*$/i.exec(value);
  if (!m) return undefined;
  const start = Number(m[1]);
  const end = Number(m[2]);
  if (end < start) return undefined;
  return m[3] === '*' ? { start, end } : { start, end, total: Number(m[3]) };
}

/**
 * The explicit TLS of one host: for the registry itself, `tls` (--cert-dir) joined with
 * hosts.toml's top-level ca/client/skip_verify; for a mirror, its own `[host]` settings.
 * Neither: undefined, and the host's certs.d directory is looked up.
 */
export function hostTlsSettings(host: RegistryHost, tls: TlsSettings | undefined): TlsSettings | undefined {
  const given = host.isOrigin ? tls : undefined;
  const own = host.tls;
  if (given === undefined && own.caFiles === undefined && own.certFile === undefined && own.insecureSkipVerify === undefined) return undefined;
  // A client pair comes whole from one place; the one given (--cert-dir) wins.
  const pair = given?.certFile !== undefined ? given : own;
  return {
    caFiles: [...(given?.caFiles ?? []), ...(own.caFiles ?? [])],
    ...(pair.certFile !== undefined ? { certFile: pair.certFile, keyFile: pair.keyFile } : {}),
    ...(given?.insecureSkipVerify || own.insecureSkipVerify ? { insecureSkipVerify: true } : {}),
  };
}

export class RegistryClient {
  /** Where requests and received bytes are counted (metrics/fetch-metrics.ts). */
  readonly metrics: FetchMetrics;
  private readonly opts: Required<Omit<RegistryClientOptions, 'credentials' | 'keychain' | 'signal' | 'tls' | 'certsDirs' | 'proxy' | 'settings' | 'hosts' | 'notice' | 'log' | 'metrics'>>;
  private readonly signal: AbortSignal | undefined;
  private readonly apiHost: string;
  private readonly endpoints: Endpoint[];
  private readonly notice: (message: string) => void;
  private readonly log: Logger | undefined;
  private range: 'unknown' | 'yes' | 'ignored' = 'unknown';

  constructor(
    readonly registry: string,
    options: RegistryClientOptions = {},
  ) {
    if (!registry) throw usage('registry host is empty');
    this.metrics = options.metrics ?? new FetchMetrics();
    this.opts = {
      plainHttp: options.plainHttp ?? false,
      insecure: options.insecure ?? false,
      retries: options.retries ?? CLIENT_DEFAULTS.retries,
      retryBaseDelayMs: options.retryBaseDelayMs ?? CLIENT_DEFAULTS.retryBaseDelayMs,
      requestTimeoutMs: options.requestTimeoutMs ?? CLIENT_DEFAULTS.requestTimeoutMs,
      minTransferRate: options.minTransferRate ?? CLIENT_DEFAULTS.minTransferRate,
      rateWindowMs: options.rateWindowMs ?? CLIENT_DEFAULTS.rateWindowMs,
      maxConnectionsPerHost: options.maxConnectionsPerHost ?? CLIENT_DEFAULTS.maxConnectionsPerHost,
      userAgent: options.userAgent ?? CLIENT_DEFAULTS.userAgent,
    };
    if (this.opts.plainHttp && this.opts.insecure) throw usage('--plain-http and --insecure contradict each other: plain HTTP has no TLS to skip verifying');
    checkInt('retries', this.opts.retries, 0, 100);
    checkInt('retryBaseDelayMs', this.opts.retryBaseDelayMs, 0, 60_000);
    checkInt('requestTimeoutMs', this.opts.requestTimeoutMs, 1, 3_600_000);
    checkInt('minTransferRate', this.opts.minTransferRate, 0, 1024 ** 3);
    checkInt('rateWindowMs', this.opts.rateWindowMs, 100, 3_600_000);
    this.signal = options.signal;
    checkInt('maxConnectionsPerHost', this.opts.maxConnectionsPerHost, 1, 1024);
    this.apiHost = registryApiHost(registry);
    this.notice = options.notice ?? (() => undefined);
    this.log = options.log;
    const hosts = options.hosts ?? registryHosts(registry);
    const proxy = options.proxy ?? proxyFromEnv();
    const keychain = options.keychain ?? (options.credentials ? staticKeychain(options.credentials.username, options.credentials.password) : defaultKeychain());
    this.endpoints = hosts.map((host) => {
      const hostName = host.origin === undefined ? this.apiHost : new URL(host.origin).host;
      // Each host its own TLS (its explicit settings, else its certs.d directory); other hosts
      // it sends us to (token realm, CDN) their own certs.d directory. Proxies apply to all.
      const transport = this.makeTransport(hostTlsLookup(hostName, hostTlsSettings(host, options.tls), options.certsDirs), proxy);
      // The credentials are for the image's registry: a mirror never sees them.
      const auth = new Authenticator(transport, registry, host.isOrigin ? keychain : anonymousKeychain, this.retryOptions());
      return { host, transport, auth, pingFlight: new SingleFlight<string, PingResult>(), cdnUrls: new Map(), down: false };
    });
  }

  private makeTransport(tlsFor: (host: string) => LoadedTls | undefined, proxy: ProxySettings): Transport {
    return new Transport({
      insecure: this.opts.insecure,
      tlsFor,
      proxy,
      maxConnectionsPerHost: this.opts.maxConnectionsPerHost,
      requestTimeoutMs: this.opts.requestTimeoutMs,
      minTransferRate: this.opts.minTransferRate,
      rateWindowMs: this.opts.rateWindowMs,
      ...(this.signal ? { signal: this.signal } : {}),
      userAgent: this.opts.userAgent,
      onRequest: () => this.metrics.request(),
      ...(this.log ? { log: this.log } : {}),
    });
  }

  /** Retries stop at the caller's signal and at the client's. */
  private retryOptions(signal?: AbortSignal, retries = this.opts.retries): RetryOptions {
    const both = [signal, this.signal].filter((s): s is AbortSignal => s !== undefined);
    const any = both.length === 2 ? AbortSignal.any(both) : both[0];
    const log = this.log;
    return {
      retries,
      baseDelayMs: this.opts.retryBaseDelayMs,
      ...(any ? { signal: any } : {}),
      ...(log ? { onRetry: (err: StargzError, attempt: number, delayMs: number) => log.info(`retry ${attempt} of ${retries} in ${delayMs} ms after ${err.code}: ${err.message}`) } : {}),
    };
  }

  /** 'unknown' until a range read was answered; 'ignored' once a server sent 200 with the whole blob. */
  rangeSupport(): 'unknown' | 'yes' | 'ignored' {
    return this.range;
  }

  async close(): Promise<void> {
    await Promise.all([...new Set(this.endpoints.map((e) => e.transport))].map((t) => t.close()));
  }

  // ---- plumbing ----

  /**
   * Runs `fn` against each host that has `capability`, in order, until one succeeds. A host
   * that fails (with an error `passOver` accepts) is passed over with one notice (and, unless
   * it only lacked the thing asked for, for the rest of the run); the last host's error is the
   * answer. Safe because every answer is verified by digest the same way whichever host sent it.
   */
  private async tryHosts<T>(
    capability: 'pull' | 'resolve',
    what: string,
    signal: AbortSignal | undefined,
    fn: (ep: Endpoint, retries: number) => Promise<T>,
    passOver: (err: StargzError) => boolean = () => true,
  ): Promise<T> {
    const able = this.endpoints.filter((e) => e.host.capabilities[capability]);
    if (able.length === 0) throw new StargzError(ErrorCodes.CONFIG, `no configured host of ${this.registry} may ${capability === 'resolve' ? 'resolve tags' : 'pull'} (${what})`);
    const up = able.filter((e) => !e.down);
    const list = up.length > 0 ? up : [able[able.length - 1]!];
    for (let i = 0; ; i++) {
      const ep = list[i]!;
      const last = i === list.length - 1;
      try {
        return await fn(ep, last ? this.opts.retries : MIRROR_RETRIES);
      } catch (e) {
        const err = toStargzError(e);
        if (last || err.code === ErrorCodes.ABORTED || signal?.aborted || this.signal?.aborted || !passOver(err)) throw err;
        // Concurrent reads that fail on one host say so once: the first marks it down.
        const wasDown = ep.down;
        if (err.code !== ErrorCodes.REGISTRY_NOT_FOUND) ep.down = true;
        if (!wasDown) this.notice(`${ep.host.label}: ${err.code}: ${err.message}; ${ep.down ? 'passing over it from now on, ' : ''}trying ${list[i + 1]!.host.label}`);
      }
    }
  }

  /**
   * The host's base URL: a configured one as is, the registry itself by pinging it once (shared
   * by concurrent callers). With `pull`, a registry whose scheme is not in doubt (unpingedBaseUrl)
   * is not pinged: its first answer's 401, if any, brings the challenge (authorized), as
   * containerd pulls. That saves a round trip per command where anyone may pull. Pushes and
   * login still ping: an upload's streamed body cannot be sent again after a 401.
   */
  private async baseUrl(ep: Endpoint, pull = false): Promise<string> {
    if (ep.host.origin !== undefined) return ep.host.origin;
    if (ep.pinged) return ep.pinged.baseUrl;
    const known = pull ? unpingedBaseUrl(this.apiHost, this.opts.plainHttp) : undefined;
    if (known !== undefined) return known;
    return (await this.ping(ep)).baseUrl;
  }

  /** GET /v2/ once (shared by concurrent callers): the scheme, and the challenges the authenticator starts from. */
  private async ping(ep: Endpoint): Promise<PingResult> {
    if (ep.pinged) return ep.pinged;
    const result = await ep.pingFlight.run('ping', () => ping(ep.transport, this.apiHost, this.opts.plainHttp, this.signal));
    if (!ep.pinged) {
      ep.pinged = result;
      ep.auth.setChallenges(result.challenges);
    }
    return result;
  }

  /**
   * `/v2/<repo>/<rest>` on `ep`: under its API root, and for a host other than the image's
   * registry with `?ns=REGISTRY`, as containerd sends it (pull-through caches key on it).
   */
  private async urlFor(ep: Endpoint, repository: string, rest: string): Promise<URL> {
    const url = new URL(`${ep.host.path}/${repository}/${rest}`, await this.baseUrl(ep, true));
    if (!ep.host.isOrigin) url.searchParams.set('ns', this.registry);
    return url;
  }

  /** A GET on the registry with auth; a 401 gets one more try with fresh or other credentials. */
  private async registryGet(
    ep: Endpoint,
    repository: string,
    path: string,
    headers: Record<string, string>,
    what: string,
    signal: AbortSignal | undefined,
    kind: 'document' | 'blob',
  ): Promise<HttpResponse> {
    const url = await this.urlFor(ep, repository, path);
    for (const [name, values] of Object.entries(ep.host.headers)) headers = { [name]: values.join(', '), ...headers };
    return this.authorized(ep, { url, kind, headers, ...(signal ? { signal } : {}) }, pullScope(repository), what);
  }

  /**
   * One request with the Authorization `scope` needs; a 401 gets one more try with fresh or
   * other credentials — sent again here, or for a streamed body, which cannot be replayed, by
   * the caller's retry (a retryable REGISTRY_AUTH; the fresh token is cached by then). A URL on
   * another origin than the host's (an upload Location elsewhere) is sent without credentials,
   * as a redirect would be.
   */
  private async authorized(ep: Endpoint, req: HttpRequest, scope: string, what: string): Promise<HttpResponse> {
    const base = new URL(await this.baseUrl(ep, true));
    if (req.url.origin !== base.origin) return ep.transport.request(req);
    const { signal } = req;
    const used = await ep.auth.authorization(scope, signal);
    const res = await ep.transport.request(used ? { ...req, headers: { ...req.headers, authorization: used } } : req);
    if (res.crossOrigin) return res;
    if ((res.status === 403 || res.status === 404) && used === undefined && !ep.pinged && ep.host.origin === undefined) {
      // Quirk: a registry may refuse an anonymous pull with 403 or 404 instead of the 401 that
      // names its scheme, and tell only /v2/. Not pinged yet (baseUrl): ask it now, and send
      // the request again with credentials if it wants some; if not, the refusal stands.
      const text = await readBoundedText(res.body);
      await this.ping(ep);
      const retry = await ep.auth.authorization(scope, signal);
      if (retry === undefined) throw this.errorFor(ep, res, text, what);
      return ep.transport.request({ ...req, headers: { ...req.headers, authorization: retry } });
    }
    if (res.status !== 401) return res;
    const text = await readBoundedText(res.body);
    const next = await ep.auth.retryAuthorization(scope, parseWwwAuthenticate(res.headers['www-authenticate']), used, signal);
    if (next === undefined) throw this.errorFor(ep, res, text, what);
    if (req.body !== undefined && typeof req.body !== 'string' && !Buffer.isBuffer(req.body)) {
      throw new StargzError(ErrorCodes.REGISTRY_AUTH, `${what}: authorization renewed; the body is sent again`, { retryable: true, status: 401 });
    }
    return ep.transport.request({ ...req, headers: { ...req.headers, authorization: next } });
  }

  /** The registry itself: the last host of the list (mirrors only serve pulls), the only one the keychain's credentials go to. */
  private get upstream(): Endpoint {
    return this.endpoints[this.endpoints.length - 1]!;
  }

  /**
   * A request for pushing (registry/push.ts) to the registry itself, never a mirror, with the
   * Authorization `scope` needs (`repository:NAME:pull,push`, plus the mount source's pull).
   * `target` is `/v2/`-relative (`NAME/blobs/uploads/`) or a Location the registry answered,
   * resolved against its API root. Throws REGISTRY_AUTH when credentials are refused; any
   * other status is the caller's to read (see responseError).
   */
  async pushRequest(
    target: { path: string } | { location: string },
    init: Omit<HttpRequest, 'url'> & { method: NonNullable<HttpRequest['method']> },
    scope: string,
    what: string,
  ): Promise<HttpResponse> {
    const ep = this.upstream;
    const base = await this.baseUrl(ep);
    const url = 'path' in target ? new URL(`${ep.host.path}/${target.path}`, base) : new URL(target.location, new URL(`${ep.host.path}/`, base));
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new StargzError(ErrorCodes.REGISTRY_PROTOCOL, `${what}: the registry answered a Location with scheme ${url.protocol}`);
    return this.authorized(ep, { ...init, url }, scope, what);
  }

  /** The error an unwanted answer to pushRequest stands for, with the (bounded) error body in its message. */
  responseError(res: HttpResponse, what: string): Promise<StargzError> {
    return this.statusError(this.upstream, res, what);
  }

  /** Turns an unwanted status into its error, with the (bounded) error body in the message. */
  private async statusError(ep: Endpoint, res: HttpResponse, what: string): Promise<StargzError> {
    return this.errorFor(ep, res, await readBoundedText(res.body), what);
  }

  private errorFor(ep: Endpoint, res: HttpResponse, bodyText: string, what: string): StargzError {
    this.metrics.documentReceived(Buffer.byteLength(bodyText));
    const err = httpStatusError(res.status, what, bodyText, header(res.headers, 'retry-after'));
    if (err.code === ErrorCodes.REGISTRY_AUTH && res.status === 401 && !ep.auth.hasCredentials) {
      return new StargzError(err.code, `${err.message} (no credentials found)`, { status: err.status });
    }
    return err;
  }

  /** Reads a whole body of at most max bytes (`blob`: the digest of the blob it is, else a document). */
  private async readLimited(res: HttpResponse, max: number, what: string, blob: string | undefined): Promise<Buffer> {
    const declared = Number(header(res.headers, 'content-length'));
    if (Number.isFinite(declared) && declared > max) {
      discard(res.body);
      throw new StargzError(ErrorCodes.REGISTRY_PROTOCOL, `${what} is ${declared} bytes, more than the ${max} allowed`);
    }
    const chunks: Buffer[] = [];
    let size = 0;
    try {
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        size += chunk.length;
        this.count(chunk.length, blob);
        if (size > max) {
          discard(res.body);
          throw new StargzError(ErrorCodes.REGISTRY_PROTOCOL, `${what} is more than the ${max} bytes allowed`);
        }
        chunks.push(chunk);
      }
    } catch (err) {
      throw networkError(err, what);
    }
    return Buffer.concat(chunks, size);
  }

  /** Body bytes received: of the blob `blob`, or of a document. */
  private count(n: number, blob: string | undefined): void {
    if (blob === undefined) this.metrics.documentReceived(n);
    else this.metrics.blobReceived(blob, n);
  }

  /**
   * A blob GET. A registry that redirected this blob to another origin (a CDN) recently is
   * skipped: the CDN URL is asked directly, saving a round trip per range. Any failure there
   * forgets the URL and goes back through the registry.
   */
  private async blobGet(ep: Endpoint, repository: string, digest: string, headers: Record<string, string>, signal?: AbortSignal): Promise<HttpResponse> {
    this.metrics.blobRequest(digest);
    const key = `${repository}@${digest}`;
    const cached = ep.cdnUrls.get(key);
    if (cached && cached.expiresAt > Date.now()) {
      let res: HttpResponse | undefined;
      try {
        res = await ep.transport.request({ url: cached.url, kind: 'blob', headers, ...(signal ? { signal } : {}) });
      } catch (err) {
        ep.cdnUrls.delete(key);
        throw err;
      }
      if (res.status === 200 || res.status === 206) return res;
      res.body.dump().catch(() => undefined);
    }
    ep.cdnUrls.delete(key);
    const res = await this.registryGet(ep, repository, `blobs/${digest}`, headers, `blob ${repository}@${digest}`, signal, 'blob');
    if (res.crossOrigin && (res.status === 200 || res.status === 206)) {
      ep.cdnUrls.set(key, { url: res.url, expiresAt: Date.now() + CDN_URL_TTL_MS });
    }
    return res;
  }

  // ---- API ----

  /** GET /v2/ with the keychain's credentials through the registry's challenge: `login` checks them with this. */
  async checkCredentials(signal?: AbortSignal): Promise<void> {
    const ep = this.upstream;
    const url = new URL(`${ep.host.path}/`, await this.baseUrl(ep));
    const used = await ep.auth.authorization('', signal);
    const res = await ep.transport.request({ url, headers: used ? { authorization: used } : {}, ...(signal ? { signal } : {}) });
    if (res.status >= 200 && res.status < 300) return discard(res.body);
    throw await this.statusError(ep, res, `login to ${this.registry}`);
  }

  /** GET the manifest by tag or digest; verifies the digest (DIGEST_MISMATCH) when fetched by digest, and computes it from the bytes otherwise. */
  async getManifest(repository: string, tagOrDigest: string, signal?: AbortSignal): Promise<{ digest: string; mediaType: string; bytes: Buffer }> {
    const byDigest = tagOrDigest.includes(':');
    if (byDigest) checkDigest(tagOrDigest);
    else if (!TAG_RE.test(tagOrDigest)) throw new StargzError(ErrorCodes.REFERENCE_INVALID, `invalid tag ${JSON.stringify(tagOrDigest)}`);
    const what = `manifest ${repository}${byDigest ? '@' : ':'}${tagOrDigest}`;
    // A tag only from a host trusted to resolve; by digest, any host: the bytes are checked.
    return this.tryHosts(byDigest ? 'pull' : 'resolve', what, signal, (ep, retries) => withRetry(async () => {
      const res = await this.registryGet(ep, repository, `manifests/${tagOrDigest}`, { accept: MANIFEST_ACCEPT }, what, signal, 'document');
      if (res.status !== 200) throw await this.statusError(ep, res, what);
      const bytes = await this.readLimited(res, MAX_MANIFEST_BYTES, what, undefined);
      const digest = sha256Digest(bytes);
      if (byDigest && digest !== tagOrDigest) {
        throw new StargzError(ErrorCodes.DIGEST_MISMATCH, `${what}: the registry sent bytes that hash to ${digest}`);
      }
      const claimed = header(res.headers, 'docker-content-digest');
      if (!byDigest && claimed !== undefined && DIGEST_RE.test(claimed) && claimed !== digest) {
        throw new StargzError(ErrorCodes.DIGEST_MISMATCH, `${what}: Docker-Content-Digest says ${claimed} but the bytes hash to ${digest}`);
      }
      return { digest, mediaType: manifestMediaType(bytes, header(res.headers, 'content-type')), bytes };
    }, this.retryOptions(signal, retries)));
  }

  /** Resolve a reference to one image manifest for `platform` (default this host). */
  async resolveImage(ref: ImageReference, platform?: Platform, signal?: AbortSignal): Promise<ResolvedImage> {
    const top = await this.getManifest(ref.repository, ref.digest ?? ref.tag ?? 'latest', signal);
    const parsed = parseManifest(top.bytes, top.mediaType);
    if (parsed.kind === 'manifest') {
      return { ref, manifestDigest: top.digest, manifest: parsed.manifest, manifestBytes: top.bytes };
    }
    const chosen = selectManifest(parsed.index, platform ?? defaultPlatform());
    const child = await this.getManifest(ref.repository, chosen.digest, signal);
    if (child.bytes.length !== chosen.size) {
      throw new StargzError(ErrorCodes.REGISTRY_PROTOCOL, `manifest ${chosen.digest} is ${child.bytes.length} bytes, the index says ${chosen.size}`);
    }
    const inner = parseManifest(child.bytes, child.mediaType);
    if (inner.kind !== 'manifest') throw new StargzError(ErrorCodes.MANIFEST_UNSUPPORTED, `index ${top.digest} points to another index; nested indexes are not supported`);
    const out: ResolvedImage = { ref, manifestDigest: child.digest, manifest: inner.manifest, manifestBytes: child.bytes, indexDigest: top.digest };
    if (chosen.platform) out.platform = chosen.platform;
    return out;
  }

  /** A whole small blob (config), verified against its digest. Size-bounded (maxBytes default 16 MiB). */
  async getBlob(repository: string, digest: string, maxBytes = DEFAULT_MAX_BLOB_BYTES, signal?: AbortSignal): Promise<Buffer> {
    checkDigest(digest);
    const what = `blob ${repository}@${digest}`;
    return this.tryHosts('pull', what, signal, (ep, retries) => withRetry(async () => {
      const res = await this.blobGet(ep, repository, digest, {}, signal);
      if (res.status !== 200) throw await this.statusError(ep, res, what);
      const bytes = await this.readLimited(res, maxBytes, what, digest);
      const got = sha256Digest(bytes);
      if (got !== digest) throw new StargzError(ErrorCodes.DIGEST_MISMATCH, `${what}: the registry sent bytes that hash to ${got}`);
      return bytes;
    }, this.retryOptions(signal, retries)));
  }

  /**
   * Exactly bytes [offset, offset+length) of a blob, with one single-range request. A broken
   * body is resumed from where it broke. Servers that ignore Range (200 + whole blob) are
   * handled by skipping to offset and hanging up after length bytes; rangeSupport() then says 'ignored'.
   */
  async readBlobRange(repository: string, digest: string, offset: number, length: number, signal?: AbortSignal): Promise<Buffer> {
    checkDigest(digest);
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
      throw new RangeError(`invalid range offset=${offset} length=${length}`);
    }
    return this.tryHosts('pull', `blob ${repository}@${digest}`, signal, (ep, retries) => this.rangeFrom(ep, retries, repository, digest, offset, length, signal));
  }

  /**
   * Runs `attempt` with reads of one blob pinned to one host at a time (BlobSource.verified):
   * when it fails with a PASS_OVER_CODES error, whether its reads failed or the bytes they
   * returned did not verify, the next host is tried, and the attempt runs again from scratch.
   */
  async withBlobHosts<T>(repository: string, digest: string, size: number | undefined, attempt: (from: HostBlobReader) => Promise<T>, signal?: AbortSignal): Promise<T> {
    checkDigest(digest);
    return this.tryHosts(
      'pull',
      `blob ${repository}@${digest}`,
      signal,
      (ep, retries) =>
        attempt({
          readRange: (offset, length, s) => {
            if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
              throw new RangeError(`invalid range offset=${offset} length=${length}`);
            }
            return this.rangeFrom(ep, retries, repository, digest, offset, length, s ?? signal);
          },
          openStream: (s) => this.streamFrom(ep, retries, repository, digest, s ?? signal, size),
        }),
      (err) => PASS_OVER_CODES.has(err.code),
    );
  }

  /** Bytes [offset, offset+length) from one host, resuming a broken body from where it broke. */
  private async rangeFrom(ep: Endpoint, retries: number, repository: string, digest: string, offset: number, length: number, signal?: AbortSignal): Promise<Buffer> {
    const out = Buffer.allocUnsafe(length);
    const state = { got: 0 };
    while (state.got < length) {
      const before = state.got;
      await withRetry(() => this.rangeAttempt(ep, repository, digest, offset, out, state, signal), this.retryOptions(signal, retries));
      if (state.got === before) {
        throw new StargzError(ErrorCodes.REGISTRY_PROTOCOL, `blob ${repository}@${digest}: range answer made no progress at ${offset + before}`);
      }
    }
    return out;
  }

  /** One try at the rest of a range read; fills `out` from state.got on. */
  private async rangeAttempt(ep: Endpoint, repository: string, digest: string, offset: number, out: Buffer, state: { got: number }, signal?: AbortSignal): Promise<void> {
    const start = offset + state.got;
    const end = offset + out.length - 1;
    const what = `blob ${repository}@${digest} bytes ${start}-${end}`;
    const res = await this.blobGet(ep, repository, digest, { range: `bytes=${start}-${end}` }, signal);
    let skip: number;
    let available: number; // bytes of ours in this answer
    if (res.status === 206) {
      const cr = parseContentRange(header(res.headers, 'content-range'));
      if (!cr || cr.start > start || cr.end < start || (cr.total !== undefined && cr.end >= cr.total)) {
        discard(res.body);
        throw new StargzError(ErrorCodes.REGISTRY_PROTOCOL, `${what}: bad Content-Range ${JSON.stringify(header(res.headers, 'content-range') ?? null)}`);
      }
      if (cr.total !== undefined && cr.total <= end) {
        discard(res.body);
        throw new StargzError(ErrorCodes.REGISTRY_PROTOCOL, `${what}: the blob is only ${cr.total} bytes`);
      }
      const announced = cr.end - cr.start + 1;
      const declared = Number(header(res.headers, 'content-length'));
      if (Number.isFinite(declared) && declared !== announced) {
        discard(res.body);
        throw new StargzError(ErrorCodes.REGISTRY_PROTOCOL, `${what}: Content-Length ${declared} contradicts Content-Range ${cr.start}-${cr.end}`);
      }
      // Not one byte past what the Content-Range announces: a server that keeps sending would
      // otherwise hold us forever, since a range answer is read to its end.
      res.body.limit(announced, () =>
        new StargzError(ErrorCodes.REGISTRY_PROTOCOL, `${what}: the server sent more than the ${announced} bytes its Content-Range announces`),
      );
      if (this.range === 'unknown') this.range = 'yes';
      // A server may round a range out (block-aligned stores) or cut it short (size caps).
      skip = start - cr.start;
      available = Math.min(cr.end, end) - start + 1;
    } else if (res.status === 200) {
      // Quirk: the server ignored Range and sends the whole blob. Read up to our bytes and hang up.
      this.range = 'ignored';
      const size = Number(header(res.headers, 'content-length'));
      if (Number.isFinite(size) && size <= end) {
        discard(res.body);
        throw new StargzError(ErrorCodes.REGISTRY_PROTOCOL, `${what}: the blob is only ${size} bytes`);
      }
      skip = start;
      available = end - start + 1;
    } else if (res.status === 416) {
      discard(res.body);
      throw new StargzError(ErrorCodes.REGISTRY_PROTOCOL, `${what}: range not satisfiable (the blob is shorter)`, { status: 416 });
    } else {
      throw await this.statusError(ep, res, what);
    }
    const want = state.got + available;
    res.body.on('error', () => undefined); // the loop sees errors; this keeps the hang-up after `break` from crashing
    try {
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        this.count(chunk.length, digest);
        let c = chunk;
        if (skip > 0) {
          if (c.length <= skip) {
            skip -= c.length;
            continue;
          }
          c = c.subarray(skip);
          skip = 0;
        }
        const n = Math.min(c.length, want - state.got);
        c.copy(out, state.got, 0, n);
        state.got += n;
        // For a whole blob, leaving the loop destroys the body and hangs up: the rest is not ours.
        // A range answer is read to its end instead, so the connection stays reusable.
        if (state.got >= want && res.status === 200) break;
      }
    } catch (err) {
      throw networkError(err, what); // retryable for resets and timeouts: the next try resumes at state.got
    }
    if (state.got < want) {
      throw new StargzError(ErrorCodes.REGISTRY_PROTOCOL, `${what}: the body ended after ${state.got} of ${out.length} bytes`, { retryable: true });
    }
  }

  /**
   * Streaming GET of a whole blob (plain layers), or of its bytes from `offset` on (a copy
   * resuming after a broken body): the caller verifies the digest. Retries before the first
   * byte only. With `size` (the descriptor's), a body that is longer fails with
   * REGISTRY_PROTOCOL as soon as it is.
   */
  async openBlobStream(repository: string, digest: string, signal?: AbortSignal, size?: number, offset = 0): Promise<NodeJS.ReadableStream> {
    checkDigest(digest);
    if (!Number.isSafeInteger(offset) || offset < 0 || (offset > 0 && (size === undefined || offset > size))) throw new RangeError(`invalid stream offset ${offset}`);
    return this.tryHosts('pull', `blob ${repository}@${digest}`, signal, (ep, retries) => this.streamFrom(ep, retries, repository, digest, signal, size, offset));
  }

  /** openBlobStream from one host. */
  private async streamFrom(ep: Endpoint, retries: number, repository: string, digest: string, signal?: AbortSignal, size?: number, offset = 0): Promise<NodeJS.ReadableStream> {
    const what = offset > 0 ? `blob ${repository}@${digest} from byte ${offset}` : `blob ${repository}@${digest}`;
    let skip = 0; // bytes before `offset` in the answer
    const res = await withRetry(async () => {
      const r = await this.blobGet(ep, repository, digest, offset > 0 ? { range: `bytes=${offset}-` } : {}, signal);
      const declared = Number(header(r.headers, 'content-length'));
      if (r.status === 206 && offset > 0) {
        const cr = parseContentRange(header(r.headers, 'content-range'));
        if (!cr || cr.start !== offset || cr.end !== size! - 1 || (cr.total !== undefined && cr.total !== size)) {
          discard(r.body);
          throw new StargzError(ErrorCodes.REGISTRY_PROTOCOL, `${what}: bad Content-Range ${JSON.stringify(header(r.headers, 'content-range') ?? null)}`);
        }
        skip = 0;
        return r;
      }
      if (r.status !== 200) throw await this.statusError(ep, r, what);
      if (size !== undefined && Number.isFinite(declared) && declared !== size) {
        discard(r.body);
        throw new StargzError(ErrorCodes.REGISTRY_PROTOCOL, `${what} is ${declared} bytes, the manifest says ${size}`);
      }
      // Quirk: a server that ignores Range sends the whole blob; what precedes offset is dropped.
      skip = offset;
      if (offset > 0) this.range = 'ignored';
      return r;
    }, this.retryOptions(signal, retries));
    const body = res.body;
    if (size !== undefined) {
      body.limit(size - offset + skip, () => new StargzError(ErrorCodes.REGISTRY_PROTOCOL, `${what}: the server sent more than the ${size} bytes the manifest gives the blob`));
    }
    const count = (n: number): void => this.count(n, digest);
    const out = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        count(chunk.length);
        if (skip >= chunk.length) {
          skip -= chunk.length;
          return cb();
        }
        const c = skip > 0 ? chunk.subarray(skip) : chunk;
        skip = 0;
        cb(null, c);
      },
    });
    body.on('error', (err) => out.destroy(networkError(err, what)));
    out.on('close', () => {
      if (!body.destroyed) body.destroy();
    });
    body.pipe(out);
    return out;
  }

  /** Runs `fn` with this client's retries (count, backoff, signal, -v log lines): push.ts's retry loop. */
  retry<T>(fn: (attempt: number) => Promise<T>, signal?: AbortSignal): Promise<T> {
    return withRetry(fn, this.retryOptions(signal));
  }
}
