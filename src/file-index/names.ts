// Entry names as the TOC writes them ("./etc/", "bin//sh", "/abs", "../x") become one canonical
// form: '/'-separated, no leading or trailing '/', no '.' or '..' parts, '' for the root. Like
// estargz's cleanEntryName and umoci (path.Clean("/" + name)), '..' is resolved lexically at the
// image root: "../foo" is "foo", "a/../b" is "b", so no name can reach above the root.
// Names no file system can hold as given are refused: NUL, and strings that are not well-formed
// Unicode (a lone UTF-16 surrogate is written as U+FFFD, so two different names would become one
// file on disk; for well-formed strings UTF-8 is one-to-one, so different names stay different).
import { ErrorCodes, StargzError } from '../errors.js';

export const MAX_NAME_BYTES = 4096;
export const MAX_PATH_DEPTH = 1024;

export function normalizeEntryName(raw: string, what = 'entry name'): string {
  if (raw.includes('\0')) throw new StargzError(ErrorCodes.TOC_INVALID, `${what} ${JSON.stringify(raw)} contains NUL`);
  if (!raw.isWellFormed()) throw new StargzError(ErrorCodes.TOC_INVALID, `${what} ${JSON.stringify(raw)} is not well-formed Unicode`);
  const parts: string[] = [];
  for (const p of raw.split('/')) {
    if (p === '' || p === '.') continue;
    if (p === '..') parts.pop(); // at the root, '..' is the root
    else parts.push(p);
  }
  if (parts.length > MAX_PATH_DEPTH) throw new StargzError(ErrorCodes.TOC_INVALID, `${what} is nested deeper than ${MAX_PATH_DEPTH}`);
  const name = parts.join('/');
  if (Buffer.byteLength(name) > MAX_NAME_BYTES) throw new StargzError(ErrorCodes.TOC_INVALID, `${what} is longer than ${MAX_NAME_BYTES} bytes`);
  return name;
}

/**
 * The parent of a normalized entry name: 'a/b' -> 'a', and '' (the root) for a top-level name.
 * Not fuse/vfs-walk.ts's parentPath, which takes VFS paths ('/a/b' -> '/a', '/a' -> '/').
 */
export function parentEntryName(name: string): string {
  const i = name.lastIndexOf('/');
  return i < 0 ? '' : name.slice(0, i);
}

/** Last component of a normalized path. */
export function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}
