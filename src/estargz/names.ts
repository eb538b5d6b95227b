// Entry names as the TOC writes them ("./etc/", "bin//sh", "/abs") become one canonical form:
// '/'-separated, no leading or trailing '/', no '.' parts, '' for the root. Names that could
// escape the layer ('..' parts) or that no file system can hold (NUL) are refused.
import { ErrorCodes, StargzError } from '../errors.js';

export const MAX_NAME_BYTES = 4096;
export const MAX_PATH_DEPTH = 1024;

export function normalizeEntryName(raw: string, what = 'entry name'): string {
  if (raw.includes('\0')) throw new StargzError(ErrorCodes.TOC_INVALID, `${what} ${JSON.stringify(raw)} contains NUL`);
  const parts: string[] = [];
  for (const p of raw.split('/')) {
    if (p === '' || p === '.') continue;
    if (p === '..') throw new StargzError(ErrorCodes.TOC_INVALID, `${what} ${JSON.stringify(raw)} contains '..'`);
    parts.push(p);
  }
  if (parts.length > MAX_PATH_DEPTH) throw new StargzError(ErrorCodes.TOC_INVALID, `${what} is nested deeper than ${MAX_PATH_DEPTH}`);
  const name = parts.join('/');
  if (Buffer.byteLength(name) > MAX_NAME_BYTES) throw new StargzError(ErrorCodes.TOC_INVALID, `${what} is longer than ${MAX_NAME_BYTES} bytes`);
  return name;
}

/** Parent of a normalized path ('' for top-level names). */
export function parentPath(path: string): string {
  const i = path.lastIndexOf('/');
  return i < 0 ? '' : path.slice(0, i);
}

/** Last component of a normalized path. */
export function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}
