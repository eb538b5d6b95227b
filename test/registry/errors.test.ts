import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import {
  MAX_ERROR_BODY_BYTES,
  describeErrorBody,
  httpStatusError,
  networkError,
  parseRetryAfter,
  readBoundedText,
} from '../../src/registry/errors.js';
import { ErrorCodes, StargzError, type ErrorCode } from '../../src/errors.js';

describe('httpStatusError', () => {
  const cases: Array<[number, ErrorCode, boolean]> = [
    [401, ErrorCodes.REGISTRY_AUTH, false],
    [403, ErrorCodes.REGISTRY_AUTH, false],
    [404, ErrorCodes.REGISTRY_NOT_FOUND, false],
    [408, ErrorCodes.TIMEOUT, true],
    [429, ErrorCodes.REGISTRY_RATE_LIMITED, true],
    [500, ErrorCodes.REGISTRY_SERVER, true],
    [502, ErrorCodes.REGISTRY_SERVER, true],
    [503, ErrorCodes.REGISTRY_SERVER, true],
    [504, ErrorCodes.REGISTRY_SERVER, true],
    [400, ErrorCodes.REGISTRY_PROTOCOL, false],
    [418, ErrorCodes.REGISTRY_PROTOCOL, false],
  ];
  for (const [status, code, retryable] of cases) {
    test(`${status} -> ${code}${retryable ? ' (retryable)' : ''}`, () => {
      const err = httpStatusError(status, 'manifest a/b:c');
      assert.equal(err.code, code);
      assert.equal(err.retryable, retryable);
      assert.equal(err.status, status);
      assert.match(err.message, /^manifest a\/b:c: /);
    });
  }

  test('Retry-After is carried', () => {
    assert.equal(httpStatusError(429, 'x', '', '7').retryAfterSeconds, 7);
    assert.equal(httpStatusError(503, 'x', '', undefined).retryAfterSeconds, undefined);
  });

  test("the spec's error body is in the message, redacted", () => {
    const body = JSON.stringify({
      errors: [
        { code: 'MANIFEST_UNKNOWN', message: 'manifest unknown', detail: { Tag: 'nope' } },
        { code: 'DENIED', message: 'token=abcdef1234567890 rejected', detail: 'Authorization: Bearer eyJhbGciOiJSUzI1NiJ9.x.y' },
      ],
    });
    const err = httpStatusError(404, 'manifest a:b', body);
    assert.match(err.message, /MANIFEST_UNKNOWN: manifest unknown \(\{"Tag":"nope"\}\)/);
    assert.match(err.message, /DENIED/);
    assert.doesNotMatch(err.message, /abcdef1234567890/);
    assert.doesNotMatch(err.message, /eyJhbGciOiJSUzI1NiJ9/);
  });
});

describe('describeErrorBody', () => {
  test('plain text: first line, bounded', () => {
    assert.equal(describeErrorBody('bad gateway\nmore'), 'bad gateway');
    assert.equal(describeErrorBody(''), '');
    assert.ok(describeErrorBody('x'.repeat(10_000)).length < 300);
  });
  test('JSON without errors is treated as text', () => {
    assert.equal(describeErrorBody('{"message":"hi"}'), '{"message":"hi"}');
  });
  test('odd error entries do not throw', () => {
    assert.equal(describeErrorBody('{"errors":[{}]}'), 'UNKNOWN');
    assert.equal(describeErrorBody('{"errors":[{"code":5,"message":null}]}'), 'UNKNOWN');
  });
});

describe('parseRetryAfter', () => {
  test('seconds and dates', () => {
    assert.equal(parseRetryAfter('120'), 120);
    assert.equal(parseRetryAfter(' 0 '), 0);
    const now = Date.parse('2024-01-01T00:00:00Z');
    assert.equal(parseRetryAfter('Mon, 01 Jan 2024 00:00:30 GMT', now), 30);
    assert.equal(parseRetryAfter('Sun, 31 Dec 2023 00:00:00 GMT', now), 0);
    assert.equal(parseRetryAfter('soon'), undefined);
    assert.equal(parseRetryAfter(undefined), undefined);
    assert.equal(parseRetryAfter('-5'), undefined);
  });
});

describe('readBoundedText', () => {
  test('reads at most the limit of a huge body and destroys the rest', async () => {
    let produced = 0;
    const body = new Readable({
      read() {
        produced += 16384;
        this.push(Buffer.alloc(16384, 0x61));
      },
    });
    const text = await readBoundedText(body);
    assert.equal(text.length, MAX_ERROR_BODY_BYTES);
    assert.ok(body.destroyed);
    assert.ok(produced < 4 * MAX_ERROR_BODY_BYTES);
  });
  test('a body that fails part-way gives what was read', async () => {
    const body = new Readable({ read() {} });
    body.push('partial');
    setImmediate(() => body.destroy(new Error('reset')));
    assert.equal(await readBoundedText(body), 'partial');
  });
});

describe('networkError', () => {
  const e = (code: string, message = code): Error => Object.assign(new Error(message), { code });
  const cases: Array<[string, unknown, ErrorCode, boolean]> = [
    ['refused', e('ECONNREFUSED'), ErrorCodes.REGISTRY_UNREACHABLE, true],
    ['reset', e('ECONNRESET'), ErrorCodes.REGISTRY_UNREACHABLE, true],
    ['undici socket', e('UND_ERR_SOCKET', 'other side closed'), ErrorCodes.REGISTRY_UNREACHABLE, true],
    ['wrapped cause', Object.assign(new Error('fetch failed'), { cause: e('ECONNRESET') }), ErrorCodes.REGISTRY_UNREACHABLE, true],
    ['connect timeout', e('UND_ERR_CONNECT_TIMEOUT'), ErrorCodes.TIMEOUT, true],
    ['headers timeout', e('UND_ERR_HEADERS_TIMEOUT'), ErrorCodes.TIMEOUT, true],
    ['body timeout', e('UND_ERR_BODY_TIMEOUT'), ErrorCodes.TIMEOUT, true],
    ['ETIMEDOUT', e('ETIMEDOUT'), ErrorCodes.TIMEOUT, true],
    ['DNS', e('ENOTFOUND'), ErrorCodes.REGISTRY_UNREACHABLE, false],
    ['DNS again', e('EAI_AGAIN'), ErrorCodes.REGISTRY_UNREACHABLE, true],
    ['TLS cert', e('DEPTH_ZERO_SELF_SIGNED_CERT'), ErrorCodes.REGISTRY_UNREACHABLE, false],
    ['TLS protocol', e('ERR_SSL_WRONG_VERSION_NUMBER'), ErrorCodes.REGISTRY_UNREACHABLE, false],
    ['abort', Object.assign(new Error('aborted'), { name: 'AbortError' }), ErrorCodes.ABORTED, false],
    ['undici abort', e('UND_ERR_ABORTED'), ErrorCodes.ABORTED, false],
    ['unknown', new TypeError('bad argument'), ErrorCodes.REGISTRY_UNREACHABLE, false],
  ];
  for (const [name, err, code, retryable] of cases) {
    test(name, () => {
      const got = networkError(err, 'GET https://r/v2/');
      assert.equal(got.code, code);
      assert.equal(got.retryable, retryable);
    });
  }
  test('a StargzError passes through', () => {
    const s = new StargzError(ErrorCodes.DIGEST_MISMATCH, 'x');
    assert.equal(networkError(s, 'y'), s);
  });
  test('credentials in a URL are redacted', () => {
    const got = networkError(e('ECONNREFUSED', 'connect to https://user:hunter2pass@r/ failed'), 'GET');
    assert.doesNotMatch(got.message, /hunter2pass/);
  });
});
