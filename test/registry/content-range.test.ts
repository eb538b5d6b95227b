import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseContentRange } from '../../src/registry/client.js';

test('parseContentRange', () => {
  assert.deepEqual(parseContentRange('bytes 0-99/1000'), { start: 0, end: 99, total: 1000 });
  assert.deepEqual(parseContentRange('bytes 5-5/*'), { start: 5, end: 5 });
  assert.deepEqual(parseContentRange('Bytes  10-20/30'), { start: 10, end: 20, total: 30 });
  for (const bad of [undefined, '', 'bytes */1000', 'bytes 9-1/10', 'bytes a-b/c', 'items 0-1/2', 'bytes 0-1']) {
    assert.equal(parseContentRange(bad), undefined, String(bad));
  }
});
