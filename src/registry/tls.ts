// TLS material per host, as docker, podman and skopeo find it: a certs.d directory per
// HOST[:PORT] holding `*.crt` (CA certificates, added to the system roots) and `NAME.cert` +
// `NAME.key` (a client certificate), and the classification of handshake failures into
// messages that say what is wrong and where the fix goes.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { isIP } from 'node:net';
import { connect as tlsConnect, rootCertificates, type ConnectionOptions } from 'node:tls';
import { ErrorCodes, StargzError } from '../errors.js';
import { causeCodes } from '../util/errno-code.js';

/**
 * How to talk TLS to one host. Shaped after containerd's hosts.toml (`ca`, `client`,
 * `skip_verify`) so a mirror's settings map onto it field by field.
 */
export interface TlsSettings {
  /** PEM files of CA certificates trusted for this host, in addition to the system roots. */
  caFiles?: string[];
  /** PEM client certificate presented to this host (needs keyFile). */
  certFile?: string;
  /** PEM private key of certFile. */
  keyFile?: string;
  /** Do not verify the host's certificate at all (--insecure, containerd's skip_verify). */
  insecureSkipVerify?: boolean;
}

/** TLS material read from disk, ready for a TLS connect. */
export interface LoadedTls {
  /** Extra CAs only; tlsConnectOptions() adds the system roots. */
  ca: Buffer[];
  cert?: Buffer;
  key?: Buffer;
  insecureSkipVerify?: boolean;
}

/** Environment variable replacing the certs.d roots (':'-separated), for tests and odd setups. */
export const CERTS_D_ENV = 'STARGZ_GET_CERTS_D';

/**
 * Where per-host directories are looked up, first existing HOST dir wins (containers/image
 * order: the user's own, then containers', then Docker's).
 */
export function certsDirRoots(env: NodeJS.ProcessEnv = process.env): string[] {
  const override = env[CERTS_D_ENV];
  if (override !== undefined) return override.split(':').filter((d) => d !== '');
  return [join(env.HOME ?? homedir(), '.config', 'containers', 'certs.d'), '/etc/containers/certs.d', '/etc/docker/certs.d'];
}

function isDir(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

function tlsError(message: string, cause?: unknown): StargzError {
  return new StargzError(ErrorCodes.TLS, message, cause === undefined ? {} : { cause });
}

/**
 * The files of a Docker-style certificate directory: every `*.crt` is a CA, every
 * `NAME.cert` needs its `NAME.key` (Docker refuses a lone half, and so do we).
 */
export function certDirSettings(dir: string): TlsSettings {
  let names: string[];
  try {
    names = readdirSync(dir).sort();
  } catch (err) {
    throw tlsError(`cannot read certificate directory ${dir}: ${(err as Error).message}`, err);
  }
  const settings: TlsSettings = { caFiles: names.filter((n) => n.endsWith('.crt')).map((n) => join(dir, n)) };
  const certs = names.filter((n) => n.endsWith('.cert'));
  const keys = names.filter((n) => n.endsWith('.key'));
  for (const key of keys) {
    if (!certs.includes(key.slice(0, -'.key'.length) + '.cert')) throw tlsError(`missing client certificate ${key.slice(0, -4)}.cert for key ${join(dir, key)}`);
  }
  for (const cert of certs) {
    const key = cert.slice(0, -'.cert'.length) + '.key';
    if (!keys.includes(key)) throw tlsError(`missing key ${key} for client certificate ${join(dir, cert)} (CA certificates end in .crt)`);
  }
  if (certs.length > 1) throw tlsError(`more than one client certificate in ${dir} (${certs.join(', ')}): keep one NAME.cert + NAME.key`);
  if (certs[0]) {
    settings.certFile = join(dir, certs[0]);
    settings.keyFile = join(dir, certs[0].slice(0, -'.cert'.length) + '.key');
  }
  return settings;
}

/** The certs.d directory of `host` ('registry.example.com' or '127.0.0.1:5000'), if any. */
export function findHostCertDir(host: string, roots: string[] = certsDirRoots()): string | undefined {
  // A host name never contains a path separator; refuse one rather than look outside the roots.
  if (host === '' || host.includes('/') || host === '.' || host === '..') return undefined;
  for (const root of roots) {
    const dir = join(root, host);
    if (isDir(dir)) return dir;
  }
  return undefined;
}

function readPem(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw tlsError(`cannot read ${what} ${file}: ${(err as Error).message}`, err);
  }
}

/** Reads the files named by settings. */
export function loadTls(settings: TlsSettings): LoadedTls {
  if ((settings.certFile === undefined) !== (settings.keyFile === undefined)) {
    throw tlsError('a client certificate needs both certFile and keyFile');
  }
  const out: LoadedTls = { ca: (settings.caFiles ?? []).map((f) => readPem(f, 'CA certificate')) };
  if (settings.certFile !== undefined && settings.keyFile !== undefined) {
    out.cert = readPem(settings.certFile, 'client certificate');
    out.key = readPem(settings.keyFile, 'client key');
  }
  if (settings.insecureSkipVerify) out.insecureSkipVerify = true;
  return out;
}

/** `loadCertDir(dir)`: the CAs and client pair of a Docker-style certificate directory. */
export function loadCertDir(dir: string): LoadedTls {
  return loadTls(certDirSettings(dir));
}

/** Options for tls.connect / undici's `connect`: private CAs join the system roots, never replace them. */
export function tlsConnectOptions(tls: LoadedTls | undefined, insecure: boolean): { rejectUnauthorized: boolean; ca?: string[] | Buffer[]; cert?: Buffer; key?: Buffer } {
  const opts: { rejectUnauthorized: boolean; ca?: Array<string | Buffer>; cert?: Buffer; key?: Buffer } = {
    rejectUnauthorized: !(insecure || tls?.insecureSkipVerify),
  };
  if (tls && tls.ca.length > 0) opts.ca = [...rootCertificates, ...tls.ca];
  if (tls?.cert && tls.key) {
    opts.cert = tls.cert;
    opts.key = tls.key;
  }
  return opts as { rejectUnauthorized: boolean; ca?: string[] | Buffer[]; cert?: Buffer; key?: Buffer };
}

// ---- handshake failures ----

const UNKNOWN_AUTHORITY = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
]);
/** Alerts a TLS server sends when it wants a client certificate we did not send, or refuses ours. */
const CLIENT_CERT_ALERTS = new Set([
  'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED',
  'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE',
  'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA',
  'ERR_SSL_SSLV3_ALERT_CERTIFICATE_UNKNOWN',
]);

/**
 * True when the failure proves a TLS server is there (it sent a certificate or a TLS alert):
 * falling back to plain HTTP would only hide the real problem. "Wrong version number" and
 * friends mean the answer was not TLS at all (a plain-HTTP server), and are not this.
 */
export function serverSpeaksTls(err: unknown): boolean {
  if (err instanceof StargzError && err.code === ErrorCodes.TLS) return true;
  return causeCodes(err).some(
    (c) =>
      UNKNOWN_AUTHORITY.has(c) ||
      CLIENT_CERT_ALERTS.has(c) ||
      c === 'ERR_TLS_CERT_ALTNAME_INVALID' ||
      c.startsWith('CERT_') ||
      (c.startsWith('ERR_SSL_') && c.includes('ALERT')),
  );
}

/**
 * A TLS failure as what it is, with where the fix goes; undefined when err is no TLS failure
 * of a TLS server. `host` is HOST[:PORT]; `sentClientCert` tells "required" from "refused".
 */
export function describeTlsFailure(err: unknown, what: string, host: string, sentClientCert: boolean): StargzError | undefined {
  if (!serverSpeaksTls(err)) return undefined;
  const codes = causeCodes(err);
  const where = `/etc/containers/certs.d/${host}/`;
  let reason: string;
  if (codes.some((c) => UNKNOWN_AUTHORITY.has(c))) {
    reason = `certificate signed by an unknown authority; put the CA in ${where}ca.crt or pass --cert-dir`;
  } else if (codes.some((c) => CLIENT_CERT_ALERTS.has(c))) {
    reason = sentClientCert
      ? `the server refused our client certificate (TLS alert ${codes.find((c) => CLIENT_CERT_ALERTS.has(c))})`
      : `the server requires a client certificate; put NAME.cert and NAME.key in ${where} or pass --cert-dir`;
  } else if (codes.includes('ERR_TLS_CERT_ALTNAME_INVALID')) {
    reason = `the certificate is not valid for ${host} (${(err as Error).message})`;
  } else {
    reason = `TLS handshake failed (${codes.find((c) => c.startsWith('CERT_') || c.startsWith('ERR_SSL_')) ?? (err as Error).message})`;
  }
  return new StargzError(ErrorCodes.TLS, `${what}: ${reason}`, { cause: err });
}

/**
 * TLS material per host for one client: `registryHost` gets `explicit` when given (--cert-dir,
 * a mirror's hosts.toml), every other host (and the registry without `explicit`) its certs.d
 * directory, if it has one. Read once per host.
 */
export function hostTlsLookup(registryHost: string, explicit?: TlsSettings, roots?: string[]): (host: string) => LoadedTls | undefined {
  const cache = new Map<string, LoadedTls | undefined>();
  return (host) => {
    if (cache.has(host)) return cache.get(host);
    let loaded: LoadedTls | undefined;
    if (host === registryHost && explicit) loaded = loadTls(explicit);
    else {
      const dir = findHostCertDir(host, roots ?? certsDirRoots());
      loaded = dir === undefined ? undefined : loadCertDir(dir);
    }
    cache.set(host, loaded);
    return loaded;
  };
}

/**
 * A TLS 1.3 server checks the client certificate after the client's handshake is done, and
 * its alert ("certificate required", "bad certificate") arrives just after the connection's
 * end: undici then reports only "other side closed". To say what really happened, connect
 * once with a bare TLS socket and the same settings, send a request, and return the error
 * the socket reports (undefined if the server answers or just hangs up).
 */
export function probeTlsAlert(url: URL, options: ConnectionOptions, timeoutMs: number): Promise<Error | undefined> {
  return new Promise((resolve) => {
    const host = url.hostname.replace(/^\[|\]$/g, '');
    const socket = tlsConnect({ ...options, host, port: Number(url.port) || 443, ...(isIP(host) ? {} : { servername: host }) });
    const done = (err?: Error): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(err);
    };
    const timer = setTimeout(() => done(), timeoutMs);
    timer.unref();
    socket.once('secureConnect', () => socket.write(`GET /v2/ HTTP/1.1\r\nHost: ${url.host}\r\nConnection: close\r\n\r\n`));
    socket.once('data', () => done());
    socket.once('error', (err) => done(err));
    socket.once('close', () => done());
  });
}
