// Chunk digests name files on disk, so they are checked strictly before any path is built
// from them: only 'sha256:' + 64 lowercase hex digits ever reaches the filesystem.
import { ErrorCodes, StargzError } from '../errors.js';
import { sha256Hex } from '../util/digest.js';

const SHA256_DIGEST = /^sha256:([0-9a-f]{64})$/;

export interface DigestKey {
  /** The 64 hex digits: the file name of a chunk stored as a file. */
  hex: string;
  /** The 32 raw bytes: the index key (half the size of the hex text). */
  raw: Buffer;
}

/** True for 'sha256:' + 64 lowercase hex digits: a key the disk tier accepts. */
export function isChunkDigest(key: string): boolean {
  return SHA256_DIGEST.test(key);
}

export function parseChunkDigest(digest: string): DigestKey {
  const m = SHA256_DIGEST.exec(digest);
  if (!m) throw new StargzError(ErrorCodes.CACHE, `not a sha256 chunk digest: ${JSON.stringify(String(digest).slice(0, 80))}`);
  const hex = m[1]!;
  return { hex, raw: Buffer.from(hex, 'hex') };
}

/** True when `data` hashes to the 32 raw digest bytes `raw`. */
export function sha256Matches(data: Uint8Array, raw: Buffer): boolean {
  return sha256Hex(data) === raw.toString('hex');
}
