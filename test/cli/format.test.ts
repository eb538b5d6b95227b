import { test } from 'node:test';
import assert from 'node:assert/strict';
import { modeString, formatBytes, shellEscapeName } from '../../src/cli/format.js';
import { parseDuration, parseSize, resolveOptions } from '../../src/config.js';
import { escapeControl, isStargzError, redact, registerCredentials, registerSecret } from '../../src/errors.js';

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

test('names are quoted as GNU ls quotes them on a terminal (shell-escape)', () => {
  assert.equal(shellEscapeName('plain.txt'), 'plain.txt');
  assert.equal(shellEscapeName('a b'), "'a b'");
  assert.equal(shellEscapeName("it's"), '"it\'s"');
  assert.equal(shellEscapeName('a\x1b[31mb'), "'a'$'\\033''[31mb'");
  assert.equal(shellEscapeName('\x1bX'), "$'\\033''X'");
  assert.equal(shellEscapeName('nl\nx'), "'nl'$'\\n''x'");
  assert.equal(shellEscapeName('c1\u009b'), "'c1'$'\\302\\233'"); // CSI as UTF-8 bytes, as GNU ls in a UTF-8 locale
});

test('messages escape control characters', () => {
  assert.equal(escapeControl('a\x1b[2J\nb\u009b'), 'a\\x1b[2J\\nb\\x9b');
});

test('every registered secret is redacted in every form, wherever it appears', () => {
  registerCredentials('someone', 'Very-Secret-1');
  registerSecret('tok.en-ABC/123');
  const text = `denied for someone:Very-Secret-1 (Very-Secret-1, ${Buffer.from('someone:Very-Secret-1').toString('base64')}, ` +
    `${encodeURIComponent('tok.en-ABC/123')}, tok.en-ABC/123)`;
  const out = redact(text);
  for (const s of ['Very-Secret-1', 'tok.en-ABC', Buffer.from('someone:Very-Secret-1').toString('base64'), 'tok.en-ABC%2F123']) {
    assert.ok(!out.includes(s), `${s} in ${out}`);
  }
  assert.match(out, /^denied for <redacted>/);
  // Too short to scrub without garbling every message.
  registerSecret('abc');
  assert.equal(redact('abcdef'), 'abcdef');
});

test('durations parse; timeout options are bounded when built', () => {
  assert.equal(parseDuration('30s'), 30_000);
  assert.equal(parseDuration('500ms'), 500);
  assert.equal(parseDuration('2m'), 120_000);
  assert.equal(parseDuration('1.5'), 1500);
  assert.throws(() => parseDuration('soon'), (e) => isStargzError(e, 'ERR_USAGE'));
  assert.equal(resolveOptions().requestTimeoutMs, 30_000);
  assert.throws(() => resolveOptions({ rateWindowMs: 10 }), (e) => isStargzError(e, 'ERR_USAGE'));
  assert.throws(() => resolveOptions({ minTransferRate: 0 }), (e) => isStargzError(e, 'ERR_USAGE'));
});
