// Exit statuses and one-line hints per error code: scripts can branch on the status,
// people read the hint.
import { ErrorCodes, type ErrorCode } from '../errors.js';

export const EXIT_OK = 0;

const TABLE: Record<ErrorCode, { status: number; hint?: string }> = {
  [ErrorCodes.USAGE]: { status: 2, hint: 'see stargz-get --help' },
  [ErrorCodes.CONFIG]: { status: 2, hint: 'fix the file at the line named, or see stargz-get config' },
  [ErrorCodes.REFERENCE_INVALID]: { status: 2, hint: 'a reference looks like registry.example.com/repo:tag[/path] or repo@sha256:<digest>[/path]' },
  [ErrorCodes.PATH_NOT_FOUND]: { status: 3 },
  [ErrorCodes.IS_DIRECTORY]: { status: 3, hint: 'list it with stargz-get ls, or copy it with stargz-get sync' },
  [ErrorCodes.NOT_REGULAR_FILE]: { status: 3, hint: 'a device, fifo or socket has no bytes; see it with stargz-get ls -l' },
  [ErrorCodes.REGISTRY_NOT_FOUND]: { status: 3, hint: 'check the repository name and tag' },
  [ErrorCodes.PLATFORM_NOT_FOUND]: { status: 3, hint: 'pick one of the listed platforms with --platform' },
  [ErrorCodes.MANIFEST_UNSUPPORTED]: { status: 3 },
  [ErrorCodes.REGISTRY_AUTH]: { status: 4, hint: 'pass --username with --password-stdin, or run stargz-get login REGISTRY' },
  [ErrorCodes.CREDENTIALS]: { status: 4, hint: 'check the credential files (Docker config.json, containers auth.json) and the credential helper they name' },
  [ErrorCodes.REGISTRY_UNREACHABLE]: { status: 5, hint: 'is the registry up? for a plain-HTTP registry add --plain-http' },
  [ErrorCodes.TLS]: { status: 5, hint: 'see README, Certificates; --insecure skips verification altogether' },
  [ErrorCodes.PROXY]: { status: 5, hint: 'check HTTPS_PROXY / HTTP_PROXY; NO_PROXY lists hosts reached directly' },
  [ErrorCodes.TIMEOUT]: { status: 5, hint: 'the registry or the link is too slow; raise --timeout, or lower --min-rate / lengthen --rate-window' },
  [ErrorCodes.REGISTRY_RATE_LIMITED]: { status: 5, hint: 'the registry is rate limiting; try again later or lower --concurrency' },
  [ErrorCodes.REGISTRY_SERVER]: { status: 5 },
  [ErrorCodes.REGISTRY_PROTOCOL]: { status: 5 },
  [ErrorCodes.BLOB_REFUSED]: { status: 5, hint: 'the target registry refused the blob: check its size limits and quota (the message has its answer)' },
  [ErrorCodes.MANIFEST_REFUSED]: { status: 5, hint: 'the target registry does not take this manifest (its media type or content); the message has its answer' },
  [ErrorCodes.DIGEST_MISMATCH]: { status: 6, hint: 'the registry served bytes that do not match their digest; nothing wrong was written' },
  [ErrorCodes.NOT_ESTARGZ]: { status: 6 },
  [ErrorCodes.TOC_INVALID]: { status: 6, hint: 'the layer table of contents is malformed or hostile; nothing was written from it' },
  [ErrorCodes.CORRUPT_DATA]: { status: 6 },
  [ErrorCodes.UNSAFE_PATH]: { status: 6 },
  [ErrorCodes.OFFLINE_MISS]: { status: 7, hint: 'run once without --offline to fill the cache' },
  [ErrorCodes.CACHE]: { status: 8, hint: 'check --cache-dir, or clear it with stargz-get cache clear' },
  [ErrorCodes.IO]: { status: 8 },
  [ErrorCodes.FUSE]: { status: 9, hint: 'is /dev/fuse available and fusermount installed (Debian: fuse3)?' },
  [ErrorCodes.ABORTED]: { status: 130 },
};

export function exitStatusFor(code: ErrorCode): number {
  return TABLE[code]?.status ?? 1;
}

export function hintFor(code: ErrorCode): string | undefined {
  return TABLE[code]?.hint;
}
