// Linux errno values the adapter answers with, and the mapping from our error codes.
// fuse-native wants them negated (-ENOENT); `negErrno` does that in one place.
import { ErrorCodes, type StargzError } from '../errors.js';

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
