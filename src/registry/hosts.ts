// The hosts to ask for one registry's content, in order: --mirror URLs, the config file's
// `mirrors`, containerd's hosts.toml `[host."URL"]` entries (file order), and last the
// upstream (`server`, or the registry itself). Format: containerd docs/hosts.md.
// Pure apart from reading the hosts.toml file.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCodes, StargzError, registerSecret } from '../errors.js';
import { registryApiHost } from '../reference/reference.js';
import { isTable, parseToml } from '../util/toml.js';
import type { TlsSettings } from './tls.js';

/** Per-host TLS (hosts.toml ca, client, skip_verify): the TLS code's own shape. */
export type HostTls = TlsSettings;

export interface RegistryHost {
  /** 'https://mirror:5000'; undefined for the image's own registry found by the usual ping. */
  origin: string | undefined;
  /** API root path: '/v2' unless override_path gave another. */
  path: string;
  /** Only a `resolve` host may turn a tag into a digest; `pull` hosts serve content by digest. */
  capabilities: { pull: boolean; resolve: boolean };
  tls: HostTls;
  headers: Record<string, string[]>;
  /** The image's own registry: no `?ns=`, and the credentials given are sent to it. */
  isOrigin: boolean;
  /** For messages: the URL as configured. */
  label: string;
}

/** containerd's default place for hosts.toml directories. */
export const DEFAULT_HOSTS_DIR = '/etc/containerd/certs.d';

export function defaultHostsDir(): string | undefined {
  return existsSync(DEFAULT_HOSTS_DIR) ? DEFAULT_HOSTS_DIR : undefined;
}

export interface HostListOptions {
  /** --mirror URLs, then the config file's mirrors. */
  mirrors?: string[];
  hostsDir?: string;
}

const ALL = { pull: true, resolve: true };

/** The ordered hosts for `registry` (as the reference names it). Nothing configured: the registry alone. */
export function registryHosts(registry: string, opts: HostListOptions = {}): RegistryHost[] {
  const hosts = (opts.mirrors ?? []).map((u) => mirrorHost(u, registry, { ...ALL }, {}, {}, false, u));
  const file = opts.hostsDir ? findHostsToml(opts.hostsDir, registry) : undefined;
  if (!file) return [...hosts, originHost(registry)];
  return [...hosts, ...parseHostsToml(readFileSync(file, 'utf8'), file, registry)];
}

function originHost(registry: string): RegistryHost {
  return { origin: undefined, path: '/v2', capabilities: { ...ALL }, tls: {}, headers: {}, isOrigin: true, label: registry };
}

/** `DIR/HOST[:PORT]/hosts.toml`, else `DIR/_default/hosts.toml`. */
export function findHostsToml(dir: string, registry: string): string | undefined {
  for (const name of [registry, '_default']) {
    const p = join(dir, name, 'hosts.toml');
    if (existsSync(p)) return p;
  }
  return undefined;
}

const HOST_KEYS = new Set(['capabilities', 'ca', 'client', 'skip_verify', 'header', 'override_path']);

/** Parses one hosts.toml: its `[host."URL"]` entries in file order, then `server` (or the registry). */
export function parseHostsToml(text: string, file: string, registry: string): RegistryHost[] {
  const { doc, fail } = parseToml(text, file);
  const out: RegistryHost[] = [];
  const hostTable = doc.host;
  if (hostTable !== undefined) {
    if (!isTable(hostTable)) fail(undefined, 'host', 'must be a table of [host."URL"] tables');
    // TOML tables keep their file order in smol-toml's output (insertion order), as containerd's order.
    for (const [url, entry] of Object.entries(hostTable as Record<string, unknown>)) {
      const table = `host.${JSON.stringify(url)}`;
      if (!isTable(entry)) fail(undefined, table, 'must be a table');
      out.push(hostEntry(url, entry as Record<string, unknown>, registry, (k, why) => fail(table, k, why)));
    }
  }
  const top: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(doc)) {
    if (k === 'host') continue;
    if (k !== 'server' && !HOST_KEYS.has(k)) fail(undefined, k, `unknown key (known: server, host, ${[...HOST_KEYS].join(', ')})`);
    top[k] = v;
  }
  const server = top.server;
  delete top.server;
  if (server !== undefined && (typeof server !== 'string' || server === '')) fail(undefined, 'server', 'must be a URL string');
  if (server === undefined) {
    const o = hostEntry(`https://${registryApiHost(registry)}`, top, registry, (k, why) => fail(undefined, k, why));
    // No server: the registry itself, found the usual way (ping, loopback HTTP fallback).
    out.push({ ...o, origin: undefined, label: registry, isOrigin: true });
  } else out.push(hostEntry(server as string, top, registry, (k, why) => fail(undefined, k, why)));
  return out;
}

function hostEntry(url: string, t: Record<string, unknown>, registry: string, fail: (key: string, why: string) => never): RegistryHost {
  for (const k of Object.keys(t)) if (!HOST_KEYS.has(k)) fail(k, `unknown key (known: ${[...HOST_KEYS].join(', ')})`);
  let capabilities = { ...ALL };
  if (t.capabilities !== undefined) {
    const caps = t.capabilities;
    if (!Array.isArray(caps) || caps.some((c) => typeof c !== 'string')) fail('capabilities', 'must be an array of "pull", "resolve", "push"');
    for (const c of caps as string[]) if (!['pull', 'resolve', 'push'].includes(c)) fail('capabilities', `unknown capability ${JSON.stringify(c)}`);
    capabilities = { pull: (caps as string[]).includes('pull'), resolve: (caps as string[]).includes('resolve') };
  }
  const tls: HostTls = {};
  if (t.ca !== undefined) {
    const ca = typeof t.ca === 'string' ? [t.ca] : t.ca;
    if (!Array.isArray(ca) || ca.some((c) => typeof c !== 'string')) fail('ca', 'must be a path or an array of paths');
    tls.caFiles = ca as string[];
  }
  if (t.client !== undefined) {
    // containerd: "cert.pem" (key in the same file), ["cert", "key"], or [["cert", "key"], ...]: the first pair is used.
    const c = t.client;
    const first = Array.isArray(c) ? c[0] : c;
    if (typeof first === 'string') {
      tls.certFile = first;
      tls.keyFile = Array.isArray(c) && typeof c[1] === 'string' ? c[1] : first;
    } else if (Array.isArray(first) && typeof first[0] === 'string') {
      tls.certFile = first[0];
      tls.keyFile = typeof first[1] === 'string' && first[1] !== '' ? first[1] : first[0];
    } else fail('client', 'must be a path, [cert, key], or [[cert, key], ...]');
  }
  if (t.skip_verify !== undefined) {
    if (typeof t.skip_verify !== 'boolean') fail('skip_verify', 'must be true or false');
    tls.insecureSkipVerify = t.skip_verify as boolean;
  }
  const headers: Record<string, string[]> = {};
  if (t.header !== undefined) {
    if (!isTable(t.header)) fail('header', 'must be a table of name = "value" or ["values"]');
    for (const [name, v] of Object.entries(t.header as Record<string, unknown>)) {
      const vals = typeof v === 'string' ? [v] : v;
      if (!Array.isArray(vals) || vals.some((x) => typeof x !== 'string')) fail('header', `${name} must be a string or an array of strings`);
      headers[name.toLowerCase()] = vals as string[];
      // Header values are often tokens: never in a message.
      for (const x of vals as string[]) registerSecret(x);
    }
  }
  if (t.override_path !== undefined && typeof t.override_path !== 'boolean') fail('override_path', 'must be true or false');
  return mirrorHost(url, registry, capabilities, tls, headers, t.override_path === true, url);
}

function mirrorHost(
  raw: string,
  registry: string,
  capabilities: RegistryHost['capabilities'],
  tls: HostTls,
  headers: Record<string, string[]>,
  overridePath: boolean,
  label: string,
): RegistryHost {
  // containerd: a host without a scheme is HTTPS.
  const text = /^[a-z][a-z0-9+.-]*:\/\//i.test(raw) ? raw : `https://${raw}`;
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw new StargzError(ErrorCodes.CONFIG, `mirror ${JSON.stringify(raw)} is not a URL`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new StargzError(ErrorCodes.CONFIG, `mirror ${JSON.stringify(raw)}: only http and https`);
  let path = u.pathname.replace(/\/+$/, '');
  // containerd appends /v2 unless override_path says the path is the API root already.
  if (!overridePath && !path.endsWith('/v2')) path += '/v2';
  const isOrigin = u.host === registryApiHost(registry);
  return { origin: u.origin, path, capabilities, tls, headers, isOrigin, label: label.replace(/\/\/[^@/]*@/, '//') };
}
