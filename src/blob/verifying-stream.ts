// A blob's bytes passed through on their way somewhere (an export's archive, a plain layer's
// inflater), hashed and counted as they go, so that nothing downstream is trusted to finish
// before the bytes are known to be the descriptor's.
import { createHash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { ErrorCodes, StargzError } from '../errors.js';

/**
 * A Transform that passes `expected`'s bytes through: more bytes than its size fail at once
 * (a hostile body cannot make us hash forever), and at the end a size or sha256 digest other
 * than the descriptor's fails the stream with DIGEST_MISMATCH, so its pipeline fails too.
 * `what` names the blob in the message; `onBytes` counts bytes as they pass (progress).
 */
export function verifyingStream(expected: { digest: string; size: number }, what: string, onBytes?: (n: number) => void): Transform {
  const hash = createHash('sha256');
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      seen += chunk.length;
      if (seen > expected.size) return cb(new StargzError(ErrorCodes.DIGEST_MISMATCH, `${what}: more than the ${expected.size} bytes its descriptor gives`));
      hash.update(chunk);
      onBytes?.(chunk.length);
      cb(null, chunk);
    },
    flush(cb: TransformCallback) {
      if (seen !== expected.size) return cb(new StargzError(ErrorCodes.DIGEST_MISMATCH, `${what}: ${seen} bytes, its descriptor gives ${expected.size}`));
      const got = 'sha256:' + hash.digest('hex');
      if (got !== expected.digest) return cb(new StargzError(ErrorCodes.DIGEST_MISMATCH, `${what}: the bytes hash to ${got}, the descriptor says ${expected.digest}`));
      cb();
    },
  });
}
