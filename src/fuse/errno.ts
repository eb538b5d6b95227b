// Linux errno values the adapter answers with, and the mapping from our error codes.
// Both FUSE backends take them negated (-ENOENT); `negErrno` does that in one place.
import { ErrorCodes, redact, toStargzError, type StargzError } from '../errors.js';

export const Errno = {
  ENOENT: 2,
  EIO: 5,
  EACCES: 13,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  EROFS: 30,
  ERANGE: 34,
  ENOSYS: 38,
  ENODATA: 61,
} as const;

/** The errno a failed operation reports. Anything about fetching or verifying bytes is EIO. */
export function errnoFor(err: StargzError): number {
  switch (err.code) {
    case ErrorCodes.PATH_NOT_FOUND:
      return Errno.ENOENT;
    case ErrorCodes.UNSAFE_PATH:
      return Errno.EACCES;
    default:
      return Errno.EIO;
  }
}

export function negErrno(errno: number): number {
  return -Math.abs(errno);
}

/** Maps a thrown error to a negative errno, logging anything that is not a plain ENOENT. */
export type FailureMapper = (op: string, what: string, err: unknown) => number;

export function failureMapper(log: (line: string) => void): FailureMapper {
  return (op, what, err) => {
    const e = toStargzError(err);
    const errno = errnoFor(e);
    if (errno !== Errno.ENOENT) log(`${op} ${what}: ${errnoName(errno)} (${e.code}: ${redact(e.message)})`);
    return negErrno(errno);
  };
}

function errnoName(errno: number): string {
  for (const [name, value] of Object.entries(Errno)) if (value === errno) return name;
  return `errno ${errno}`;
}
