import { test } from 'node:test';
import assert from 'node:assert/strict';
import { modeString, formatBytes } from '../../src/cli/format.js';
import { parseSize, resolveOptions } from '../../src/config.js';
import { isStargzError } from '../../src/errors.js';

test('modeString renders special bits like ls', () => {
  assert.equal(modeString(0o100755), '-rwxr-xr-x');
  assert.equal(modeString(0o104755), '-rwsr-xr-x');
  assert.equal(modeString(0o041777), 'drwxrwxrwt');
  assert.equal(modeString(0o120777), 'lrwxrwxrwx');
  assert.equal(modeString(0o020666), 'crw-rw-rw-');
  assert.equal(modeString(0o102644), '-rw-r-Sr--');
});

test('sizes parse and print', () => {
  assert.equal(parseSize('2G'), 2 * 1024 ** 3);
  assert.equal(parseSize('512M'), 512 * 1024 ** 2);
  assert.equal(parseSize('10GiB'), 10 * 1024 ** 3);
  assert.equal(parseSize('1048576'), 1048576);
  assert.throws(() => parseSize('lots'), (e) => isStargzError(e, 'ERR_USAGE'));
  assert.equal(formatBytes(512), '512 B');
  assert.equal(formatBytes(1536), '1.50 KiB');
});

test('options are bounded when built', () => {
  assert.equal(resolveOptions().concurrency, 8);
  assert.throws(() => resolveOptions({ concurrency: 0 }), (e) => isStargzError(e, 'ERR_USAGE'));
  assert.throws(() => resolveOptions({ memoryCacheBytes: 1024 }), (e) => isStargzError(e, 'ERR_USAGE'));
});
