import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { backoffDelay, sleep, withRetry } from '../../src/registry/retry.js';
import { ErrorCodes, StargzError, isStargzError } from '../../src/errors.js';

const transient = (opts: { retryAfterSeconds?: number } = {}): StargzError =>
  new StargzError(ErrorCodes.REGISTRY_SERVER, 'x', { retryable: true, ...opts });

describe('withRetry', () => {
  test('retries retryable errors, then succeeds', async () => {
    let calls = 0;
    const got = await withRetry(async () => {
      if (++calls < 3) throw transient();
      return 'ok';
    }, { retries: 5, baseDelayMs: 1 });
    assert.equal(got, 'ok');
    assert.equal(calls, 3);
  });

  test('gives up after retries + 1 attempts with the last error', async () => {
    let calls = 0;
    await assert.rejects(
      withRetry(async () => {
        calls++;
        throw transient();
      }, { retries: 3, baseDelayMs: 1 }),
      (err: unknown) => isStargzError(err, ErrorCodes.REGISTRY_SERVER),
    );
    assert.equal(calls, 4);
  });

  test('does not retry what is not retryable; wraps foreign errors', async () => {
    let calls = 0;
    await assert.rejects(
      withRetry(async () => {
        calls++;
        throw new StargzError(ErrorCodes.REGISTRY_NOT_FOUND, 'nope');
      }, { retries: 5, baseDelayMs: 1 }),
      (err: unknown) => isStargzError(err, ErrorCodes.REGISTRY_NOT_FOUND),
    );
    assert.equal(calls, 1);
    await assert.rejects(withRetry(async () => { throw new Error('boom'); }, { retries: 5, baseDelayMs: 1 }), (err: unknown) => isStargzError(err, ErrorCodes.IO));
  });

  test('honours Retry-After, and fails at once when it asks too much', async () => {
    let calls = 0;
    const t0 = Date.now();
    await withRetry(async () => {
      if (++calls === 1) throw transient({ retryAfterSeconds: 0.2 });
    }, { retries: 2, baseDelayMs: 1 });
    assert.ok(Date.now() - t0 >= 190);
    calls = 0;
    await assert.rejects(
      withRetry(async () => {
        calls++;
        throw transient({ retryAfterSeconds: 120 });
      }, { retries: 5, baseDelayMs: 1, maxRetryAfterMs: 1000 }),
    );
    assert.equal(calls, 1);
  });

  test('bounded total time', async () => {
    let calls = 0;
    const t0 = Date.now();
    await assert.rejects(
      withRetry(async () => {
        calls++;
        throw transient();
      }, { retries: 100, baseDelayMs: 50, maxDelayMs: 50, maxTotalMs: 300 }),
    );
    assert.ok(Date.now() - t0 < 1000);
    assert.ok(calls >= 2 && calls < 20, `calls ${calls}`);
  });

  test('abort during a wait rejects with ABORTED at once', async () => {
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 30);
    const t0 = Date.now();
    await assert.rejects(
      withRetry(async () => { throw transient(); }, { retries: 5, baseDelayMs: 5000, signal: ac.signal }),
      (err: unknown) => isStargzError(err, ErrorCodes.ABORTED),
    );
    assert.ok(Date.now() - t0 < 1000);
    await assert.rejects(withRetry(async () => 1, { retries: 1, baseDelayMs: 1, signal: ac.signal }), (err: unknown) => isStargzError(err, ErrorCodes.ABORTED));
  });

  test('onRetry sees each wait', async () => {
    const seen: number[] = [];
    await assert.rejects(withRetry(async () => { throw transient(); }, { retries: 2, baseDelayMs: 1, onRetry: (_e, n) => seen.push(n) }));
    assert.deepEqual(seen, [1, 2]);
  });
});

describe('backoffDelay', () => {
  test('doubles, is jittered within [d/2, d], and is capped', () => {
    assert.equal(backoffDelay(1, 100, 10_000, () => 0), 50);
    assert.equal(backoffDelay(1, 100, 10_000, () => 1), 100);
    assert.equal(backoffDelay(3, 100, 10_000, () => 1), 400);
    assert.equal(backoffDelay(30, 100, 10_000, () => 1), 10_000);
    for (let i = 0; i < 100; i++) {
      const d = backoffDelay(2, 100, 10_000);
      assert.ok(d >= 100 && d <= 200);
    }
  });
  test('sleep can be aborted', async () => {
    const ac = new AbortController();
    ac.abort();
    await assert.rejects(sleep(1000, ac.signal), (err: unknown) => isStargzError(err, ErrorCodes.ABORTED));
  });
});
