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
  const name = canonicalAsIs(raw) ?? resolveParts(raw, what);
  if (longerThan(name, MAX_NAME_BYTES)) throw new StargzError(ErrorCodes.TOC_INVALID, `${what} is longer than ${MAX_NAME_BYTES} bytes`);
  return name;
}

/** Whether s takes more than max bytes as UTF-8 (at most 3 per UTF-16 unit: a short string is never counted). */
export function longerThan(s: string, max: number): boolean {
  return s.length * 3 > max && Buffer.byteLength(s) > max;
}

const SLASH = 0x2f;
const DOT = 0x2e;

/**
 * The name as written (less one trailing '/') when it is canonical already, as writers write
 * nearly every name: no empty, '.' or '..' part, not too deep. Otherwise undefined.
 */
function canonicalAsIs(raw: string): string | undefined {
  const end = raw.length > 0 && raw.charCodeAt(raw.length - 1) === SLASH ? raw.length - 1 : raw.length;
  let start = 0;
  let depth = 0;
  for (let i = 0; i <= end; i++) {
    if (i < end && raw.charCodeAt(i) !== SLASH) continue;
    const len = i - start;
    if (len === 0) return undefined;
    if (raw.charCodeAt(start) === DOT && (len === 1 || (len === 2 && raw.charCodeAt(start + 1) === DOT))) return undefined;
    if (++depth > MAX_PATH_DEPTH) return undefined;
    start = i + 1;
  }
  return end === raw.length ? raw : raw.slice(0, end);
}

/** Resolves '', '.' and '..' parts lexically ('..' at the root is the root). */
function resolveParts(raw: string, what: string): string {
  const parts: string[] = [];
  for (const p of raw.split('/')) {
    if (p === '' || p === '.') continue;
    if (p === '..') parts.pop();
    else parts.push(p);
  }
  if (parts.length > MAX_PATH_DEPTH) throw new StargzError(ErrorCodes.TOC_INVALID, `${what} is nested deeper than ${MAX_PATH_DEPTH}`);
  return parts.join('/');
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
