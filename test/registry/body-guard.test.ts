// The per-body bounds: a byte limit, and a minimum rate that blames the server only when the
// reader is waiting for data.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GuardedBody, watchRate } from '../../src/registry/body-guard.js';
import { ErrorCodes, StargzError, isStargzError } from '../../src/errors.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

test('more bytes than the limit fail the body with the limit error', async () => {
  const body = new GuardedBody();
  body.limit(10, () => new StargzError(ErrorCodes.REGISTRY_PROTOCOL, 'too long'));
  body.write(Buffer.alloc(8));
  body.write(Buffer.alloc(8));
  await assert.rejects(async () => {
    for await (const _ of body) void _;
  }, (e) => isStargzError(e, ErrorCodes.REGISTRY_PROTOCOL));
});

test('a trickle below the minimum rate fails once a whole window has passed', async () => {
  const body = new GuardedBody();
  body.resume(); // a reader waiting for data
  let failedAt = 0;
  const t0 = Date.now();
  const stop = watchRate(body, 1000, 200, () => (failedAt ||= Date.now()));
  const trickle = setInterval(() => body.write(Buffer.alloc(1)), 20); // 50 bytes/s
  await sleep(600);
  clearInterval(trickle);
  stop();
  assert.ok(failedAt > 0, 'not failed');
  assert.ok(failedAt - t0 >= 200, `failed after ${failedAt - t0} ms, before a whole window`);
});

test('a reader that holds the data up (full buffers) is not blamed on the server', async () => {
  const body = new GuardedBody();
  while (body.write(Buffer.alloc(16 * 1024)));
  let failed = false;
  const stop = watchRate(body, 1000, 200, () => (failed = true));
  await sleep(600);
  stop();
  assert.equal(failed, false);
});
