import { test } from 'node:test';
import assert from 'node:assert/strict';
import { causeCodes, errnoCode } from '../../src/util/errno-code.js';

test('errnoCode: a string code, else undefined (no cast at the catch)', () => {
  assert.equal(errnoCode(Object.assign(new Error('x'), { code: 'ENOENT' })), 'ENOENT');
  assert.equal(errnoCode({ code: 42 }), undefined);
  assert.equal(errnoCode(undefined), undefined);
  assert.equal(errnoCode('ENOENT'), undefined);
});

test('causeCodes: the codes along the cause chain, outermost first, bounded in depth', () => {
  const inner = Object.assign(new Error('refused'), { code: 'ECONNREFUSED' });
  const outer = Object.assign(new Error('fetch failed', { cause: new Error('no code', { cause: inner }) }), { code: 'UND_ERR_SOCKET' });
  assert.deepEqual(causeCodes(outer), ['UND_ERR_SOCKET', 'ECONNREFUSED']);
  assert.deepEqual(causeCodes(outer, 2), ['UND_ERR_SOCKET']);
  const loop: { code: string; cause?: unknown } = { code: 'A' };
  loop.cause = loop;
  assert.deepEqual(causeCodes(loop, 3), ['A', 'A', 'A']);
});
