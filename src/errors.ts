// Every error stargz-get raises carries a stable `code`: callers and tests match on the
// code, never on the message. The CLI maps codes to exit statuses and a one-line hint.

export const ErrorCodes = {
  /** A command-line option or argument is malformed or contradicts another. */
  USAGE: 'ERR_USAGE',
  /** An image reference (`host/repo:tag@digest/path`) cannot be parsed. */
  REFERENCE_INVALID: 'ERR_REFERENCE_INVALID',
  /** No connection to the registry (refused, DNS, TLS, reset before any answer). */
  REGISTRY_UNREACHABLE: 'ERR_REGISTRY_UNREACHABLE',
  /** The registry refused our credentials, or wants credentials we do not have. */
  REGISTRY_AUTH: 'ERR_REGISTRY_AUTH',
  /** Credentials cannot be looked up or stored: a malformed credential file, a failing or hung credential helper. */
  CREDENTIALS: 'ERR_CREDENTIALS',
  /** The repository, tag, manifest or blob does not exist. */
  REGISTRY_NOT_FOUND: 'ERR_REGISTRY_NOT_FOUND',
  /** 429 Too Many Requests, still after our retries. */
  REGISTRY_RATE_LIMITED: 'ERR_REGISTRY_RATE_LIMITED',
  /** 5xx, still after our retries. */
  REGISTRY_SERVER: 'ERR_REGISTRY_SERVER',
  /**
   * A TLS failure that retrying cannot fix: a certificate we cannot verify, a client
   * certificate the server wants or refuses, unreadable certificate files.
   */
  TLS: 'ERR_TLS',
  /** The forward proxy (HTTPS_PROXY, HTTP_PROXY) cannot be reached or refused the request (407, 502...). */
  PROXY: 'ERR_PROXY',
  /** The registry answered something the protocol does not allow (bad Content-Range, short body...). */
  REGISTRY_PROTOCOL: 'ERR_REGISTRY_PROTOCOL',
  /** A request took longer than its deadline. */
  TIMEOUT: 'ERR_TIMEOUT',
  /** A registry we push to refused a blob: too large (413), digest invalid, quota, a bad upload request. */
  BLOB_REFUSED: 'ERR_BLOB_REFUSED',
  /** A registry we push to refused a manifest: invalid, a media type it does not take, blobs it does not know. */
  MANIFEST_REFUSED: 'ERR_MANIFEST_REFUSED',
  /** A manifest media type or layer media type we cannot read. */
  MANIFEST_UNSUPPORTED: 'ERR_MANIFEST_UNSUPPORTED',
  /** An image index has no manifest for the requested platform. */
  PLATFORM_NOT_FOUND: 'ERR_PLATFORM_NOT_FOUND',
  /** Bytes do not hash to the digest that names them (manifest, TOC, chunk, blob). */
  DIGEST_MISMATCH: 'ERR_DIGEST_MISMATCH',
  /** A layer is not eStargz: no valid footer. */
  NOT_ESTARGZ: 'ERR_NOT_ESTARGZ',
  /** A TOC (or a plain layer's tar) is malformed, inconsistent or hostile. */
  TOC_INVALID: 'ERR_TOC_INVALID',
  /** Compressed data does not inflate (corrupt gzip/zstd member). */
  CORRUPT_DATA: 'ERR_CORRUPT_DATA',
  /** The requested path does not exist in the image. */
  PATH_NOT_FOUND: 'ERR_PATH_NOT_FOUND',
  /** A file was asked for (read, cat) and the path names a directory. */
  IS_DIRECTORY: 'ERR_IS_DIRECTORY',
  /** A file was asked for and the path names a device, fifo or socket: nothing to read. */
  NOT_REGULAR_FILE: 'ERR_NOT_REGULAR_FILE',
  /** A name in the image would escape the destination (`..`, absolute, symlinked parent). */
  UNSAFE_PATH: 'ERR_UNSAFE_PATH',
  /** --offline, and what is needed is not in the cache. */
  OFFLINE_MISS: 'ERR_OFFLINE_MISS',
  /** The on-disk cache cannot be opened or used. */
  CACHE: 'ERR_CACHE',
  /** Mounting or unmounting failed. */
  FUSE: 'ERR_FUSE',
  /** The operation was cancelled (Ctrl-C, SIGTERM, AbortSignal). */
  ABORTED: 'ERR_ABORTED',
  /** A local I/O failure we did not expect. */
  IO: 'ERR_IO',
  /** The configuration file (or a hosts.toml) is unreadable, not TOML, or has an unknown key or a wrong type. */
  CONFIG: 'ERR_CONFIG',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

export interface StargzErrorOptions {
  /** True when the same request may succeed if tried again (network blips, 429, 5xx). */
  retryable?: boolean;
  /** Seconds the server asked us to wait before retrying (Retry-After). */
  retryAfterSeconds?: number;
  /** HTTP status, when the error came from a response. */
  status?: number;
  cause?: unknown;
}

export class StargzError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  readonly retryAfterSeconds: number | undefined;
  readonly status: number | undefined;

  constructor(code: ErrorCode, message: string, options: StargzErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'StargzError';
    this.code = code;
    this.retryable = options.retryable ?? false;
    this.retryAfterSeconds = options.retryAfterSeconds;
    this.status = options.status;
  }
}

export function isStargzError(err: unknown, code?: ErrorCode): err is StargzError {
  return err instanceof StargzError && (code === undefined || err.code === code);
}

/** Wraps anything thrown into a StargzError, keeping a StargzError as it is. */
export function toStargzError(err: unknown, fallback: ErrorCode = ErrorCodes.IO): StargzError {
  if (err instanceof StargzError) return err;
  const e = err as NodeJS.ErrnoException | undefined;
  if (e && e.name === 'AbortError') return new StargzError(ErrorCodes.ABORTED, 'operation aborted', { cause: err });
  const message = e && typeof e.message === 'string' ? e.message : String(err);
  return new StargzError(fallback, message, { cause: err });
}

// ---- secrets: one place knows every secret the process holds and scrubs output ----

const secrets = new Set<string>();
/** Longest first, so a secret containing another is replaced whole. */
let ordered: string[] = [];
/**
 * Shorter values are not scrubbed: replacing every "ab" would garble every message, and a
 * secret that short protects nothing anyway.
 */
const MIN_SECRET_LENGTH = 4;

function addSecret(value: string): void {
  if (value.length < MIN_SECRET_LENGTH || secrets.has(value)) return;
  secrets.add(value);
  ordered = [...secrets].sort((a, b) => b.length - a.length);
}

/**
 * Remembers a secret (password, token, identity token) so that redact() removes it from every
 * message, in the forms a server might echo it: as is, URL-encoded, JSON-escaped, base64.
 */
export function registerSecret(value: string | undefined): void {
  if (!value) return;
  addSecret(value);
  addSecret(encodeURIComponent(value));
  addSecret(JSON.stringify(value).slice(1, -1));
  addSecret(Buffer.from(value, 'utf8').toString('base64'));
}

/** A username and password: the password, and user:password in every form a Basic header carries it. */
export function registerCredentials(username: string, password: string): void {
  registerSecret(password);
  if (password.length >= MIN_SECRET_LENGTH) registerSecret(`${username}:${password}`);
}

/** Strips credentials from text that may end up in a log or an error message. */
export function redact(text: string): string {
  let out = text;
  for (const secret of ordered) if (out.includes(secret)) out = out.split(secret).join('<redacted>');
  return out
    .replace(/(authorization:\s*)(basic|bearer)\s+[^\s"',]+/gi, '$1$2 <redacted>')
    .replace(/\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}/g, '$1 <redacted>')
    .replace(/("?(?:access_token|token|refresh_token|password)"?\s*[:=]\s*"?)[^"&\s,}]+/gi, '$1<redacted>')
    .replace(/(\/\/[^/\s:@]+:)[^@/\s]+@/g, '$1<redacted>@');
}

/**
 * Makes text from an image or a server safe to print on one line of a terminal: control
 * characters (C0, DEL, C1 — ESC and CSI drive terminals, a newline forges lines) become
 * visible escapes.
 */
export function escapeControl(text: string): string {
  return text.replace(CONTROL_RE, (c) => NAMED_ESCAPES[c] ?? '\\x' + c.charCodeAt(0).toString(16).padStart(2, '0'));
}
const CONTROL_RE = /[\u0000-\u001f\u007f-\u009f]/g;
const NAMED_ESCAPES: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/** What goes into a message or log line: no secrets, no control characters. */
export function scrub(text: string): string {
  return escapeControl(redact(text));
}
