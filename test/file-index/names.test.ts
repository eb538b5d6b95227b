// Entry names: the canonical form every writer's spelling becomes, through both the fast path
// (a name already canonical is taken as written) and the lexical resolution of the rest.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ErrorCodes, StargzError } from '../../src/errors.js';
import { MAX_NAME_BYTES, MAX_PATH_DEPTH, normalizeEntryName } from '../../src/file-index/names.js';
import { packDigest, unpackDigest } from '../../src/file-index/model.js';

test('normalizeEntryName: every spelling of a path gives one canonical name', () => {
  const cases: Array<[string, string]> = [
    ['', ''],
    ['/', ''],
    ['.', ''],
    ['./', ''],
    ['..', ''],
    ['a', 'a'],
    ['a/', 'a'],
    ['a/b/c', 'a/b/c'],
    ['a/b/c/', 'a/b/c'],
    ['./a/b', 'a/b'],
    ['/a/b', 'a/b'],
    ['a//b', 'a/b'],
    ['a/b//', 'a/b'],
    ['a/./b', 'a/b'],
    ['a/.', 'a'],
    ['a/../b', 'b'],
    ['../a', 'a'],
    ['a/b/..', 'a'],
    ['a/..b/c..', 'a/..b/c..'],
    ['.a/.../b.', '.a/.../b.'],
    ['ü/ß', 'ü/ß'],
  ];
  for (const [raw, want] of cases) assert.equal(normalizeEntryName(raw), want, JSON.stringify(raw));
});

test('normalizeEntryName: too deep, too long, NUL and ill-formed names are refused', () => {
  const refused = (raw: string): boolean => {
    try {
      normalizeEntryName(raw);
      return false;
    } catch (err) {
      return err instanceof StargzError && err.code === ErrorCodes.TOC_INVALID;
    }
  };
  const deep = Array.from({ length: MAX_PATH_DEPTH + 1 }, () => 'd').join('/');
  assert.ok(refused(deep), 'one part deeper than allowed');
  assert.equal(normalizeEntryName(deep + '/..'), deep.slice(0, -2), 'as deep as allowed once .. is resolved');
  assert.ok(refused('x'.repeat(MAX_NAME_BYTES + 1)));
  assert.equal(normalizeEntryName('x'.repeat(MAX_NAME_BYTES)).length, MAX_NAME_BYTES);
  assert.ok(refused('€'.repeat(Math.floor(MAX_NAME_BYTES / 3) + 1)), 'counted in UTF-8 bytes, not characters');
  assert.ok(refused('a/\0b'));
  assert.ok(refused('a/\ud800'));
});

test('packDigest keeps only what it can give back exactly', () => {
  const hex = 'ab'.repeat(32);
  assert.equal(packDigest(`sha256:${hex}`)!.length, 32);
  assert.equal(unpackDigest(packDigest(`sha256:${hex}`)), `sha256:${hex}`);
  assert.equal(unpackDigest(packDigest(`sha512:${'0f'.repeat(64)}`)), `sha512:${'0f'.repeat(64)}`);
  for (const kept of [`sha256:${hex.toUpperCase()}`, `sha256:${hex.slice(1)}g`, `md5:${hex}`, `sha256:${hex}00`, 'sha256:']) {
    assert.equal(packDigest(kept), kept, kept);
  }
});
