// The one stream that verifies a blob on its way (export's archives, plain layers): what it
// lets through, and how each kind of wrong body fails.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { randomBytes } from 'node:crypto';
import { verifyingStream } from '../../src/blob/verifying-stream.js';
import { sha256Digest } from '../../src/util/digest.js';

const blob = randomBytes(200_000);
const descriptor = { digest: sha256Digest(blob), size: blob.length };

async function pass(body: Buffer): Promise<{ out: Buffer; counted: number }> {
  const parts: Buffer[] = [];
  let counted = 0;
  const pieces = Array.from({ length: Math.ceil(body.length / 16384) }, (_, i) => body.subarray(i * 16384, (i + 1) * 16384));
  await pipeline(
    Readable.from(pieces),
    verifyingStream(descriptor, 'blob b', (n) => (counted += n)),
    new Writable({ write: (c: Buffer, _e, cb) => (parts.push(c), cb()) }),
  );
  return { out: Buffer.concat(parts), counted };
}

test('the blob itself passes through unchanged, every byte counted', async () => {
  const { out, counted } = await pass(blob);
  assert.deepEqual(out, blob);
  assert.equal(counted, blob.length);
});

test('a flipped byte, a short body and a long body fail with ERR_DIGEST_MISMATCH', async () => {
  const flipped = Buffer.from(blob);
  flipped[100_000]! ^= 0x01;
  const cases: Array<[string, Buffer, RegExp]> = [
    ['flipped', flipped, /blob b: the bytes hash to sha256:/],
    ['short', blob.subarray(0, blob.length - 1), /blob b: 199999 bytes, its descriptor gives 200000/],
    ['long', Buffer.concat([blob, Buffer.from('x')]), /blob b: more than the 200000 bytes/],
  ];
  for (const [name, body, message] of cases) {
    await assert.rejects(pass(body), (err: Error & { code?: string }) => err.code === 'ERR_DIGEST_MISMATCH' && message.test(err.message), name);
  }
});
