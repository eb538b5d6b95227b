// Destination paths come from names in an untrusted TOC. The layer index already refuses
// `..` and absolute names; this is the last check before anything touches the disk.
import { join } from 'node:path';
import { ErrorCodes, StargzError } from '../errors.js';

export function safeChildPath(dir: string, name: string): string {
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
    throw new StargzError(ErrorCodes.UNSAFE_PATH, `refusing to write an entry named ${JSON.stringify(name)}`);
  }
  return join(dir, name);
}

let counter = 0;
/** A hidden sibling name for a file being written; renamed to its final name once complete. */
export function tempSibling(dir: string, name: string): string {
  counter = (counter + 1) % 1e9;
  const base = name.length > 200 ? name.slice(0, 200) : name;
  return join(dir, `.${base}.sgtmp-${process.pid}-${counter}`);
}
