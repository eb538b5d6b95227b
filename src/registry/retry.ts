// Retries retryable failures with exponential backoff and jitter, honouring Retry-After
// (capped), within a bounded number of attempts and a bounded total time.
import { RETRY_DEFAULTS } from '../config.js';
import { ErrorCodes, StargzError, toStargzError } from '../errors.js';

export interface RetryOptions {
  /** Retries after the first attempt (so retries + 1 attempts at most). */
  retries: number;
  /** Delay before the first retry; doubles each time. */
  baseDelayMs: number;
  /** Cap of one backoff delay. */
  maxDelayMs?: number;
  /** Cap of a server's Retry-After; a longer wait than this is not worth it and fails at once. */
  maxRetryAfterMs?: number;
  /** No retry starts after this much time since the first attempt. */
  maxTotalMs?: number;
  signal?: AbortSignal;
  /** Called before each wait (logging, tests). */
  onRetry?: (err: StargzError, attempt: number, delayMs: number) => void;
}

export function abortError(signal?: AbortSignal): StargzError {
  return new StargzError(ErrorCodes.ABORTED, 'operation aborted', { cause: signal?.reason });
}

/** Resolves after ms, or rejects with ABORTED as soon as the signal fires. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(abortError(signal));
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(abortError(signal));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** The wait before retry number `attempt` (1-based): base·2^(attempt-1), "equal jitter" in [d/2, d]. */
export function backoffDelay(attempt: number, baseDelayMs: number, maxDelayMs: number, random = Math.random): number {
  const d = Math.min(maxDelayMs, baseDelayMs * 2 ** (attempt - 1));
  return Math.round(d / 2 + (random() * d) / 2);
}

/** Runs fn until it succeeds, fails with a non-retryable error, or the budget runs out. */
export async function withRetry<T>(fn: (attempt: number) => Promise<T>, opts: RetryOptions): Promise<T> {
  const maxDelayMs = opts.maxDelayMs ?? RETRY_DEFAULTS.maxDelayMs;
  const maxRetryAfterMs = opts.maxRetryAfterMs ?? RETRY_DEFAULTS.maxRetryAfterMs;
  const maxTotalMs = opts.maxTotalMs ?? RETRY_DEFAULTS.maxTotalMs;
  const start = Date.now();
  for (let attempt = 0; ; attempt++) {
    if (opts.signal?.aborted) throw abortError(opts.signal);
    try {
      return await fn(attempt);
    } catch (e) {
      const err = toStargzError(e);
      if (opts.signal?.aborted) throw abortError(opts.signal);
      if (!err.retryable || attempt >= opts.retries) throw err;
      let delay = backoffDelay(attempt + 1, opts.baseDelayMs, maxDelayMs);
      if (err.retryAfterSeconds !== undefined) {
        const asked = err.retryAfterSeconds * 1000;
        if (asked > maxRetryAfterMs) throw err;
        delay = Math.max(delay, asked);
      }
      if (Date.now() - start + delay > maxTotalMs) throw err;
      opts.onRetry?.(err, attempt + 1, delay);
      await sleep(delay, opts.signal);
    }
  }
}
