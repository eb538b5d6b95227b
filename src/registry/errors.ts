// Maps registry HTTP answers and network failures to StargzError codes, and says which of
// them are worth retrying (go-containerregistry transport/error.go: 408, 429, 5xx).
import { ErrorCodes, StargzError, redact, type ErrorCode } from '../errors.js';
import { causeCodes, errnoCode } from '../util/errno-code.js';

/** Never read more than this of an error body: a hostile or broken server could send gigabytes. */
export const MAX_ERROR_BODY_BYTES = 64 * 1024;

/** The spec's error body: `{"errors":[{"code","message","detail"}]}`. */
interface SpecError {
  code?: unknown;
  message?: unknown;
  detail?: unknown;
}

/** Reads at most `limit` bytes of a body and discards the rest (destroys the stream). */
export async function readBoundedText(
  body: AsyncIterable<Buffer> & { destroy?(): unknown; on?(event: 'error', fn: () => void): unknown },
  limit = MAX_ERROR_BODY_BYTES,
): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of body) {
      const room = limit - size;
      chunks.push(chunk.length > room ? chunk.subarray(0, room) : chunk);
      size += Math.min(chunk.length, room);
      if (size >= limit) break;
    }
  } catch (err) {
    // A broken error body must not hide the status that came with it; being told to stop must.
    if (isAbortError(err) || (err instanceof StargzError && err.code === ErrorCodes.ABORTED)) throw err;
  } finally {
    body.on?.('error', () => undefined); // destroying an unfinished undici body emits an error
    body.destroy?.();
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** A whole body of at most `max` bytes (a token response): more fails, read errors propagate. */
export async function readBody(body: AsyncIterable<Buffer> & { destroy(): unknown; on(event: 'error', fn: () => void): unknown }, max: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of body) {
      size += chunk.length;
      if (size > max) {
        body.on('error', () => undefined);
        body.destroy();
        throw new StargzError(ErrorCodes.REGISTRY_PROTOCOL, `${what}: the answer is more than the ${max} bytes allowed`);
      }
      chunks.push(chunk);
    }
  } catch (err) {
    throw networkError(err, what);
  }
  return Buffer.concat(chunks, size);
}

/** Summarizes a registry error body: the spec's error list when it is one, else the first line of text. */
export function describeErrorBody(text: string): string {
  const trimmed = text.trim();
  if (trimmed === '') return '';
  try {
    const parsed = JSON.parse(trimmed) as { errors?: SpecError[] };
    if (Array.isArray(parsed.errors) && parsed.errors.length > 0) {
      const parts = parsed.errors.slice(0, 5).map((e) => {
        const code = typeof e.code === 'string' ? e.code : 'UNKNOWN';
        const message = typeof e.message === 'string' ? e.message : '';
        let s = message ? `${code}: ${message}` : code;
        if (e.detail !== undefined && e.detail !== null && e.detail !== '') {
          const detail = typeof e.detail === 'string' ? e.detail : JSON.stringify(e.detail);
          s += ` (${detail.length > 300 ? detail.slice(0, 300) + '…' : detail})`;
        }
        return s;
      });
      return redact(parts.join('; '));
    }
  } catch {
    // Not JSON: fall through to plain text.
  }
  const line = trimmed.split('\n', 1)[0]!;
  return redact(line.length > 200 ? line.slice(0, 200) + '…' : line);
}

/** Parses Retry-After: delta seconds or an HTTP date. Returns seconds, or undefined. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v);
  if (!/^[A-Za-z]{3},/.test(v)) return undefined; // an HTTP-date starts with the day name
  const when = Date.parse(v);
  if (Number.isNaN(when)) return undefined;
  return Math.max(0, Math.ceil((when - now) / 1000));
}

/** The StargzError for a non-success HTTP status. `what` names the request, e.g. 'manifest library/alpine:latest'. */
export function httpStatusError(status: number, what: string, bodyText = '', retryAfter?: string): StargzError {
  const detail = describeErrorBody(bodyText);
  const suffix = detail ? `: ${detail}` : '';
  const retryAfterSeconds = parseRetryAfter(retryAfter);
  let code: ErrorCode;
  let retryable = false;
  let reason: string;
  if (status === 401 || status === 403) {
    code = ErrorCodes.REGISTRY_AUTH;
    reason = status === 401 ? 'authentication required or refused' : 'access denied';
  } else if (status === 404) {
    code = ErrorCodes.REGISTRY_NOT_FOUND;
    reason = 'not found';
  } else if (status === 429) {
    code = ErrorCodes.REGISTRY_RATE_LIMITED;
    retryable = true;
    reason = 'rate limited (429 Too Many Requests)';
  } else if (status === 408) {
    code = ErrorCodes.TIMEOUT;
    retryable = true;
    reason = 'request timeout (408)';
  } else if (status >= 500) {
    code = ErrorCodes.REGISTRY_SERVER;
    retryable = true;
    reason = `server error ${status}`;
  } else {
    code = ErrorCodes.REGISTRY_PROTOCOL;
    reason = `unexpected HTTP status ${status}`;
  }
  return new StargzError(code, redact(`${what}: ${reason}${suffix}`), { retryable, status, retryAfterSeconds });
}

const UNREACHABLE_RETRYABLE = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'EAI_AGAIN',
  'ECONNABORTED',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
]);
const TIMEOUTS = new Set(['ETIMEDOUT', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

export function isAbortError(err: unknown): boolean {
  const code = errnoCode(err);
  return (err instanceof Error && err.name === 'AbortError') || code === 'UND_ERR_ABORTED' || code === 'ABORT_ERR';
}

/** True for TLS handshake failures (certificate or protocol), where retrying the same way cannot help. */
export function isTlsError(err: unknown): boolean {
  return causeCodes(err, 5).some(
    (c) => c.startsWith('ERR_SSL_') || c.startsWith('ERR_TLS_') || c === 'EPROTO' || /CERT|SELF_SIGNED|UNABLE_TO_VERIFY/.test(c),
  );
}

/** Maps a thrown network error (undici or node) to a StargzError. `what` names the request. */
export function networkError(err: unknown, what: string): StargzError {
  if (err instanceof StargzError) return err;
  const message = redact(err instanceof Error ? err.message : String(err));
  if (isAbortError(err)) return new StargzError(ErrorCodes.ABORTED, `${what}: aborted`, { cause: err });
  const codes = causeCodes(err, 5);
  if (codes.some((c) => TIMEOUTS.has(c))) {
    return new StargzError(ErrorCodes.TIMEOUT, `${what}: timed out (${message})`, { retryable: true, cause: err });
  }
  if (isTlsError(err)) {
    return new StargzError(
      ErrorCodes.REGISTRY_UNREACHABLE,
      `${what}: TLS failure (${message}); use --insecure to skip verification or --plain-http for a registry without TLS`,
      { cause: err },
    );
  }
  if (codes.some((c) => UNREACHABLE_RETRYABLE.has(c))) {
    return new StargzError(ErrorCodes.REGISTRY_UNREACHABLE, `${what}: ${message}`, { retryable: true, cause: err });
  }
  if (codes.includes('ENOTFOUND')) {
    return new StargzError(ErrorCodes.REGISTRY_UNREACHABLE, `${what}: host not found (${message})`, { cause: err });
  }
  // Anything else (an invalid argument, a bug) would fail the same way again.
  return new StargzError(ErrorCodes.REGISTRY_UNREACHABLE, `${what}: ${message}`, { cause: err });
}
