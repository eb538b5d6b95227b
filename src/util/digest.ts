// The sha256 digest of bytes, as OCI writes it ('sha256:<hex>') and as bare hex.
import { createHash } from 'node:crypto';

export function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** 'sha256:<hex>' of `data`. */
export function sha256Digest(data: Uint8Array | string): string {
  return 'sha256:' + sha256Hex(data);
}
