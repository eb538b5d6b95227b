// Issue 11: a later run recognizes sync's temporaries by name, and only those.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isTempName, tempName } from '../../src/sync/dest-path.js';

test('every temporary name is recognized, and differs from the last', () => {
  const seen = new Set<string>();
  for (let i = 0; i < 1000; i++) {
    const name = tempName();
    assert.ok(isTempName(name), name);
    assert.ok(!seen.has(name));
    seen.add(name);
  }
});

test("names that only look like ours are not ours: a user's file is never taken for a leftover", () => {
  for (const name of ['.sgtmp-notes', '.sgtmp-', '.sgtmp-0123456789abcdef0123456', '.sgtmp-0123456789abcdef012345678', '.sgtmp-0123456789ABCDEF01234567', 'x.sgtmp-0123456789abcdef01234567', '.sgtmp-0123456789abcdef01234567.bak', '.sgtmp-0123456789abcdef01234567/']) {
    assert.ok(!isTempName(name), name);
  }
});
