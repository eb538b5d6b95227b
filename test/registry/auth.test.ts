// Pure parts of auth: token responses and Basic headers. The flows are in client-auth.test.ts.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_TOKEN_TTL_SECONDS, basicAuthorization, parseTokenResponse, pullScope } from '../../src/registry/auth.js';
import { ErrorCodes, isStargzError } from '../../src/errors.js';

describe('parseTokenResponse', () => {
  const now = 1_000_000;
  test('token, or access_token', () => {
    assert.equal(parseTokenResponse('{"token":"abc","expires_in":300}', now).header, 'Bearer abc');
    assert.equal(parseTokenResponse('{"access_token":"xyz"}', now).header, 'Bearer xyz');
    assert.equal(parseTokenResponse('{"token":"","access_token":"xyz"}', now).header, 'Bearer xyz');
  });
  test('expiry: expires_in, default 60 s, renewed a little early', () => {
    const t = parseTokenResponse('{"token":"a","expires_in":300}', now);
    assert.ok(t.expiresAt > now + 280_000 && t.expiresAt < now + 300_000);
    const d = parseTokenResponse('{"token":"a"}', now);
    assert.ok(d.expiresAt > now + (DEFAULT_TOKEN_TTL_SECONDS - 10) * 1000 - 1 && d.expiresAt < now + DEFAULT_TOKEN_TTL_SECONDS * 1000);
    const bad = parseTokenResponse('{"token":"a","expires_in":"soon"}', now);
    assert.ok(bad.expiresAt > now);
  });
  test('no token or no JSON is REGISTRY_PROTOCOL', () => {
    for (const text of ['{}', '{"token":5}', 'not json', '']) {
      assert.throws(() => parseTokenResponse(text, now), (err: unknown) => isStargzError(err, ErrorCodes.REGISTRY_PROTOCOL));
    }
  });
});

test('basicAuthorization and pullScope', () => {
  assert.equal(basicAuthorization({ username: 'Aladdin', password: 'open sesame' }), 'Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==');
  assert.equal(basicAuthorization({ username: 'ü', password: 'p:w' }), 'Basic ' + Buffer.from('ü:p:w').toString('base64'));
  assert.equal(pullScope('library/alpine'), 'repository:library/alpine:pull');
});
