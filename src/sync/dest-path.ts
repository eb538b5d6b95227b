// Names that reach the disk and temporary names. Every name `sync` writes is one entry of a
// directory it holds a descriptor for, so it must be one well-formed component; two names
// of a directory must differ in the bytes the file system sees (UTF-8), not only as JS strings.
import { randomBytes } from 'node:crypto';
import { ErrorCodes, StargzError } from '../errors.js';

function unsafe(message: string): StargzError {
  return new StargzError(ErrorCodes.UNSAFE_PATH, message);
}

/** Refuses a name that is not exactly one directory entry on disk. */
export function checkEntryName(name: string): void {
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0') || !name.isWellFormed()) {
    throw unsafe(`refusing to write an entry named ${JSON.stringify(name)}`);
  }
}

/** Remembers the on-disk bytes of each name of one directory; a second name with the same bytes is refused. */
export class NameSet {
  private readonly seen = new Set<string>();

  add(name: string, where: string): void {
    checkEntryName(name);
    const key = Buffer.from(name, 'utf8').toString('latin1');
    if (this.seen.has(key)) throw unsafe(`two entries of ${where} have the same name on disk: ${JSON.stringify(name)}`);
    this.seen.add(key);
  }
}

/** Every temporary sync makes is named TEMP_PREFIX + 24 lower-case hex digits: a name a later
 * run recognizes as a leftover of a killed run (temporaries.ts removes them), and one
 * nobody can guess in advance. */
export const TEMP_PREFIX = '.sgtmp-';
const TEMP_NAME = /^\.sgtmp-[0-9a-f]{24}$/;

/** A hidden name nobody can guess in advance (96 random bits); callers create it with O_EXCL semantics. */
export function tempName(): string {
  return TEMP_PREFIX + randomBytes(12).toString('hex');
}

/** Whether a name is one tempName() makes: exactly our kind, never a user's `.sgtmp-notes`. */
export function isTempName(name: string): boolean {
  return TEMP_NAME.test(name);
}
