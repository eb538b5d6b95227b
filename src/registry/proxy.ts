// Forward proxies from the environment, as curl and Go programs read them. undici's
// EnvHttpProxyAgent is close but differs from both where it matters, so we choose the proxy
// ourselves and hand undici a ProxyAgent per proxy:
// - an HTTPS target uses https_proxy/HTTPS_PROXY only; undici falls back to HTTP_PROXY,
//   curl and Go do not;
// - a plain-HTTP target is sent to the proxy as an absolute-URI request, as curl and Go do
//   (undici tunnels it with CONNECT by default, which many proxies allow only to port 443);
// - NO_PROXY: `*`; names match themselves and their subdomains (a leading `.` or `*.` is
//   ignored); `host:port` matches only that port (Go, undici; curl ignores ports); IP
//   addresses and CIDR ranges (curl >= 7.86, Go); case-insensitive. Loopback is NOT
//   excluded implicitly (curl; Go excludes it): list `localhost,127.0.0.0/8` to bypass it.
// - lower-case variables win over upper-case ones when both are set (curl).
import { BlockList, isIP } from 'node:net';
import { ErrorCodes, StargzError, registerCredentials, registerSecret } from '../errors.js';
import { causeCodes } from '../util/errno-code.js';

export interface ProxySettings {
  /** Proxy for http:// targets. */
  http?: URL;
  /** Proxy for https:// targets. */
  https?: URL;
  /** NO_PROXY as given ('' for none). */
  noProxy: string;
}

/** The proxy chosen for one target. */
export interface ChosenProxy {
  url: URL;
  /** 'http://host:port' — never the credentials. */
  display: string;
}

function envAny(env: NodeJS.ProcessEnv, ...names: string[]): string | undefined {
  for (const n of names) {
    const v = env[n];
    if (v !== undefined && v.trim() !== '') return v.trim();
  }
  return undefined;
}

/** A proxy URL; without a scheme it is http:// (curl, Go). Its credentials become secrets. */
export function parseProxyUrl(text: string, variable: string): URL {
  let url: URL;
  try {
    url = new URL(text.includes('://') ? text : `http://${text}`);
  } catch {
    // The value may hold a password: never echo it.
    throw new StargzError(ErrorCodes.PROXY, `${variable} is not a valid proxy URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new StargzError(ErrorCodes.PROXY, `${variable}: proxy scheme ${url.protocol} is not supported (http:// or https://)`);
  }
  if (url.password) {
    const user = decodeURIComponent(url.username);
    const pass = decodeURIComponent(url.password);
    registerSecret(pass);
    registerSecret(url.password); // the form as typed, percent-encoding and all
    registerCredentials(user, pass); // what Proxy-Authorization carries, base64'd
  }
  return url;
}

/** The proxies the environment asks for (curl's variables). */
export function proxyFromEnv(env: NodeJS.ProcessEnv = process.env): ProxySettings {
  const http = envAny(env, 'http_proxy', 'HTTP_PROXY');
  const https = envAny(env, 'https_proxy', 'HTTPS_PROXY');
  return {
    ...(http ? { http: parseProxyUrl(http, 'HTTP_PROXY') } : {}),
    ...(https ? { https: parseProxyUrl(https, 'HTTPS_PROXY') } : {}),
    noProxy: envAny(env, 'no_proxy', 'NO_PROXY') ?? '',
  };
}

/** 'http://host:port' of a proxy: what messages may show. */
export function proxyDisplay(url: URL): string {
  return `${url.protocol}//${url.host}`;
}

function unbracket(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

/** True when NO_PROXY says `url` is reached directly. */
export function bypassesProxy(url: URL, noProxy: string): boolean {
  const host = unbracket(url.hostname.toLowerCase()).replace(/\.$/, '');
  const port = Number(url.port) || (url.protocol === 'https:' ? 443 : 80);
  for (const raw of noProxy.split(/[,\s]+/)) {
    let entry = raw.trim().toLowerCase();
    if (entry === '') continue;
    if (entry === '*') return true;
    let entryPort = 0;
    const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(entry);
    if (m) {
      entry = m[1]!;
      entryPort = Number(m[2]);
    }
    entry = unbracket(entry);
    if (entryPort !== 0 && entryPort !== port) continue;
    if (isIP(host)) {
      if (entry.includes('/')) {
        const [net, bits] = entry.split('/');
        const family = isIP(net!) === 6 ? 'ipv6' : 'ipv4';
        if (isIP(net!) === 0 || isIP(host) !== isIP(net!)) continue;
        const list = new BlockList();
        try {
          list.addSubnet(net!, Number(bits), family);
        } catch {
          continue;
        }
        if (list.check(host, family)) return true;
      } else if (entry === host) return true;
      continue;
    }
    entry = entry.replace(/^\*?\./, '').replace(/\.$/, '');
    if (host === entry || host.endsWith(`.${entry}`)) return true;
  }
  return false;
}

/** The proxy for `url`, or undefined for a direct connection. */
export function proxyFor(url: URL, settings: ProxySettings | undefined): ChosenProxy | undefined {
  if (!settings) return undefined;
  const proxy = url.protocol === 'https:' ? settings.https : settings.http;
  if (!proxy || bypassesProxy(url, settings.noProxy)) return undefined;
  return { url: proxy, display: proxyDisplay(proxy) };
}

/** undici's tunnel failure: "Proxy response (407) !== 200 when HTTP Tunneling". */
function tunnelStatus(err: unknown): number | undefined {
  for (let e = err as { message?: unknown; cause?: unknown } | undefined, d = 0; e && d < 5; e = e.cause as typeof e, d++) {
    const m = typeof e.message === 'string' ? /Proxy response \((\d{3})\) !== 200/.exec(e.message) : null;
    if (m) return Number(m[1]);
    if (typeof e.message === 'string' && /Proxy Authentication Required \(407\)/.test(e.message)) return 407;
  }
  return undefined;
}

const CONNECT_FAILURES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_CONNECT_TIMEOUT']);

/** A proxy's refusal (status) as an error naming the proxy, never its credentials. */
export function proxyStatusError(status: number, proxy: ChosenProxy, what: string): StargzError {
  const why =
    status === 407
      ? 'proxy authentication required or refused (407); check the user and password in the proxy URL'
      : `the proxy answered ${status}${status === 502 || status === 503 || status === 504 ? ' (it could not reach the registry)' : ''}`;
  return new StargzError(ErrorCodes.PROXY, `${what}: via proxy ${proxy.display}: ${why}`, { status });
}

/** The failure as ERR_PROXY when it was the proxy's (refused tunnel, no connection to it), else undefined. */
export function describeProxyFailure(err: unknown, proxy: ChosenProxy | undefined, what: string): StargzError | undefined {
  if (!proxy) return undefined;
  const status = tunnelStatus(err);
  if (status !== undefined) return proxyStatusError(status, proxy, what);
  const code = causeCodes(err, 2).find((c) => CONNECT_FAILURES.has(c));
  if (code !== undefined) {
    return new StargzError(ErrorCodes.PROXY, `${what}: cannot connect to proxy ${proxy.display} (${code})`, { cause: err, retryable: true });
  }
  return undefined;
}
