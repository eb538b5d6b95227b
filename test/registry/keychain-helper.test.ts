// Running credential helpers: answers, "not found", a missing program, a hang, junk output.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { helperGet, type HelperOptions } from '../../src/registry/keychain-helper.js';
import { ErrorCodes, isStargzError } from '../../src/errors.js';
import { tempDirFor } from '../helpers/tmp.js';
import { isolatedEnv, writeCredHelper } from '../helpers/cred-helper.js';

async function opts(t: { after(fn: () => unknown): void }, timeoutMs = 5000) {
  const bin = await tempDirFor(t, 'kc-bin-');
  const warnings: string[] = [];
  const o: HelperOptions = { timeoutMs, warn: (m) => warnings.push(m), env: isolatedEnv(bin, [bin]) };
  return { bin, warnings, o };
}

test('get: the helper is told the server on stdin and its answer is parsed', async (t) => {
  const { bin, o } = await opts(t);
  const h = await writeCredHelper(bin, 'ok', { store: { 'reg:1': { Username: 'u', Secret: 'helper-secret-1' } } });
  assert.deepEqual(await helperGet('ok', 'reg:1', o), { username: 'u', secret: 'helper-secret-1' });
  assert.deepEqual(await h.calls(), [{ action: 'get', server: 'reg:1' }]);
  assert.equal(await helperGet('ok', 'reg:2', o), undefined); // credentials not found
});

test('a missing helper: one warning per helper, then nothing', async (t) => {
  const { o, warnings } = await opts(t);
  assert.equal(await helperGet('no-such-helper-xyz', 'reg:1', o), undefined);
  assert.equal(await helperGet('no-such-helper-xyz', 'reg:1', o), undefined);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /docker-credential-no-such-helper-xyz is not installed/);
});

test('a hanging helper is killed at the deadline, grandchildren included', async (t) => {
  const { bin, o } = await opts(t, 800);
  await writeCredHelper(bin, 'hang', { store: {}, hang: true });
  const started = Date.now();
  await assert.rejects(helperGet('hang', 'reg:1', o), (err: unknown) => isStargzError(err, ErrorCodes.CREDENTIALS) && /no answer within 800 ms/.test(err.message));
  assert.ok(Date.now() - started < 3000, `took ${Date.now() - started} ms`);
});

test('a failing helper: ERR_CREDENTIALS with its stderr scrubbed and cut, never raw', async (t) => {
  const { bin, o } = await opts(t);
  await writeCredHelper(bin, 'junk', { store: {}, fail: { code: 2, stderr: '\x1b[31mboom\x1b[0m\r\nsecond line\n' + 'x'.repeat(5000) } });
  await assert.rejects(helperGet('junk', 'reg:1', o), (err: unknown) => {
    assert.ok(isStargzError(err, ErrorCodes.CREDENTIALS));
    assert.doesNotMatch(err.message, /\x1b|\r|second line/);
    assert.match(err.message, /\\x1b\[31mboom/);
    assert.ok(err.message.length < 400);
    return true;
  });
});

test('a helper name from a file cannot be a path', async (t) => {
  const { o } = await opts(t);
  await assert.rejects(helperGet('../../bin/sh', 'reg:1', o), (err: unknown) => isStargzError(err, ErrorCodes.CREDENTIALS));
});
