import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  formatReference,
  isLoopbackRegistry,
  parseReference,
  parseReferenceWithPath,
  registryApiHost,
  registryHostname,
  type ImageReference,
} from '../../src/reference/reference.js';
import { ErrorCodes, isStargzError } from '../../src/errors.js';

const D = 'sha256:' + 'ab'.repeat(32);

function isInvalid(err: unknown): boolean {
  return isStargzError(err, ErrorCodes.REFERENCE_INVALID);
}

describe('parseReference: valid', () => {
  const cases: Array<[string, ImageReference]> = [
    ['alpine', { registry: 'docker.io', repository: 'library/alpine', tag: 'latest' }],
    ['alpine:3.19', { registry: 'docker.io', repository: 'library/alpine', tag: '3.19' }],
    ['library/alpine', { registry: 'docker.io', repository: 'library/alpine', tag: 'latest' }],
    ['docker.io/alpine', { registry: 'docker.io', repository: 'library/alpine', tag: 'latest' }],
    ['docker.io/library/alpine:edge', { registry: 'docker.io', repository: 'library/alpine', tag: 'edge' }],
    ['index.docker.io/foo/bar', { registry: 'docker.io', repository: 'foo/bar', tag: 'latest' }],
    ['registry-1.docker.io/foo/bar', { registry: 'docker.io', repository: 'foo/bar', tag: 'latest' }],
    ['foo/bar/baz', { registry: 'docker.io', repository: 'foo/bar/baz', tag: 'latest' }],
    [`alpine@${D}`, { registry: 'docker.io', repository: 'library/alpine', digest: D }],
    [`alpine:3@${D}`, { registry: 'docker.io', repository: 'library/alpine', tag: '3', digest: D }],
    ['ghcr.io/owner/img:v1', { registry: 'ghcr.io', repository: 'owner/img', tag: 'v1' }],
    ['localhost/img', { registry: 'localhost', repository: 'img', tag: 'latest' }],
    ['localhost:5000/img:t', { registry: 'localhost:5000', repository: 'img', tag: 't' }],
    ['127.0.0.1:5000/a/b:c', { registry: '127.0.0.1:5000', repository: 'a/b', tag: 'c' }],
    ['[::1]:5000/repo:tag', { registry: '[::1]:5000', repository: 'repo', tag: 'tag' }],
    ['[fe80::1]/repo', { registry: '[fe80::1]', repository: 'repo', tag: 'latest' }],
    ['myhost:5000/repo', { registry: 'myhost:5000', repository: 'repo', tag: 'latest' }],
    // Docker: a first component with upper case is a registry, never a repository.
    ['Registry/repo', { registry: 'Registry', repository: 'repo', tag: 'latest' }],
    // A bare name with a port-like tag is a tag on Docker Hub (nothing follows it).
    ['localhost:5000', { registry: 'docker.io', repository: 'library/localhost', tag: '5000' }],
    ['a.b-c.d/x__y/z-w.v_u---t', { registry: 'a.b-c.d', repository: 'x__y/z-w.v_u---t', tag: 'latest' }],
    ['repo:_TAG.x-1', { registry: 'docker.io', repository: 'library/repo', tag: '_TAG.x-1' }],
    ['repo:' + 'a'.repeat(128), { registry: 'docker.io', repository: 'library/repo', tag: 'a'.repeat(128) }],
  ];
  for (const [input, want] of cases) {
    test(input, () => assert.deepEqual(parseReference(input), want));
  }
});

describe('parseReference: invalid', () => {
  const cases: string[] = [
    '',
    ' alpine',
    'Alpine',
    'docker.io/Alpine',
    'alpine:',
    'alpine:-tag',
    'alpine:.tag',
    'alpine:' + 'a'.repeat(129),
    'alpine:a:b',
    'alpine@',
    'alpine@sha256:abc',
    'alpine@sha256:' + 'AB'.repeat(32),
    'alpine@sha512:' + 'ab'.repeat(64),
    'alpine@md5:d41d8cd98f00b204e9800998ecf8427e',
    'foo//bar',
    'foo/',
    '/foo',
    'foo/-bar',
    'foo/bar-',
    'foo/bar..baz',
    'foo/b@r',
    'ghcr.io/',
    'ghcr.io/:tag',
    'ab'.repeat(32),
    'docker.io/' + 'ab'.repeat(32),
    'a.io/' + 'x'.repeat(251),
    'alpine:3.19/etc', // a path is only allowed by parseReferenceWithPath
    `alpine@${D}/etc`,
    'alpine:tag@' + D + 'x',
  ];
  for (const input of cases) {
    test(JSON.stringify(input.length > 60 ? input.slice(0, 60) + '…' : input), () => {
      assert.throws(() => parseReference(input), isInvalid);
    });
  }

  test('name of exactly 255 characters is fine', () => {
    const repo = 'x'.repeat(255 - 'a.io/'.length);
    assert.equal(parseReference('a.io/' + repo).repository, repo);
  });

  test('message names what is wrong', () => {
    assert.throws(() => parseReference('Alpine'), /lowercase/);
    assert.throws(() => parseReference('alpine@sha512:' + 'ab'.repeat(64)), /sha512/);
  });
});

describe('parseReferenceWithPath', () => {
  const cases: Array<[string, ImageReference, string]> = [
    ['alpine', { registry: 'docker.io', repository: 'library/alpine', tag: 'latest' }, '/'],
    ['alpine:3.19/etc', { registry: 'docker.io', repository: 'library/alpine', tag: '3.19' }, '/etc'],
    ['alpine:3.19/', { registry: 'docker.io', repository: 'library/alpine', tag: '3.19' }, '/'],
    ['alpine:latest/etc/hosts', { registry: 'docker.io', repository: 'library/alpine', tag: 'latest' }, '/etc/hosts'],
    [`alpine@${D}/etc`, { registry: 'docker.io', repository: 'library/alpine', digest: D }, '/etc'],
    [`alpine:t@${D}/usr/bin`, { registry: 'docker.io', repository: 'library/alpine', tag: 't', digest: D }, '/usr/bin'],
    ['host:5000/repo:tag/a/b', { registry: 'host:5000', repository: 'repo', tag: 'tag' }, '/a/b'],
    ['[::1]:5000/r/s:t/x', { registry: '[::1]:5000', repository: 'r/s', tag: 't' }, '/x'],
    // Without a tag or digest the path cannot be told from the repository.
    ['repo/etc', { registry: 'docker.io', repository: 'repo/etc', tag: 'latest' }, '/'],
    ['host:5000/repo/etc', { registry: 'host:5000', repository: 'repo/etc', tag: 'latest' }, '/'],
    // Docker's rule wins: a numeric "tag" in the first component is a port.
    ['alpine:5000/etc', { registry: 'alpine:5000', repository: 'etc', tag: 'latest' }, '/'],
    // Normalization.
    ['a:t//etc//./hosts/', { registry: 'docker.io', repository: 'library/a', tag: 't' }, '/etc/hosts'],
    ['a:t/etc/../usr', { registry: 'docker.io', repository: 'library/a', tag: 't' }, '/usr'],
    ['a:t/./.', { registry: 'docker.io', repository: 'library/a', tag: 't' }, '/'],
    ['a:t/a/b/../../c', { registry: 'docker.io', repository: 'library/a', tag: 't' }, '/c'],
    ['a:t/a b/ü', { registry: 'docker.io', repository: 'library/a', tag: 't' }, '/a b/ü'],
    ['a:t/...', { registry: 'docker.io', repository: 'library/a', tag: 't' }, '/...'],
  ];
  for (const [input, ref, path] of cases) {
    test(input, () => assert.deepEqual(parseReferenceWithPath(input), { ref, path }));
  }

  for (const bad of ['a:t/..', 'a:t/etc/../..', 'a:t/../etc', 'a:tag@sha256:xyz/etc', 'a:t\0/x', 'a:t/x\0y']) {
    test(`rejects ${JSON.stringify(bad)}`, () => assert.throws(() => parseReferenceWithPath(bad), isInvalid));
  }
});

describe('formatReference', () => {
  const cases: Array<[string, string]> = [
    ['alpine', 'docker.io/library/alpine:latest'],
    ['index.docker.io/foo/bar:1', 'docker.io/foo/bar:1'],
    [`alpine@${D}`, `docker.io/library/alpine@${D}`],
    [`localhost:5000/a:b@${D}`, `localhost:5000/a:b@${D}`],
    ['[::1]:5000/r', '[::1]:5000/r:latest'],
  ];
  for (const [input, want] of cases) {
    test(input, () => {
      assert.equal(formatReference(parseReference(input)), want);
      // Canonical form parses back to the same reference.
      assert.deepEqual(parseReference(want), parseReference(input));
    });
  }
});

describe('registry hosts', () => {
  test('registryApiHost', () => {
    assert.equal(registryApiHost('docker.io'), 'registry-1.docker.io');
    assert.equal(registryApiHost('index.docker.io'), 'registry-1.docker.io');
    assert.equal(registryApiHost('ghcr.io'), 'ghcr.io');
    assert.equal(registryApiHost('127.0.0.1:5000'), '127.0.0.1:5000');
  });

  test('registryHostname', () => {
    assert.equal(registryHostname('host:5000'), 'host');
    assert.equal(registryHostname('host'), 'host');
    assert.equal(registryHostname('[::1]:5000'), '::1');
    assert.equal(registryHostname('[::1]'), '::1');
    assert.equal(registryHostname('::1'), '::1');
  });

  const loopback: Array<[string, boolean]> = [
    ['localhost', true],
    ['localhost:5000', true],
    ['LOCALHOST:5000', true],
    ['reg.localhost:5000', true],
    ['127.0.0.1', true],
    ['127.0.0.1:5000', true],
    ['127.1.2.3:80', true],
    ['[::1]:5000', true],
    ['[::1]', true],
    ['::1', true],
    ['docker.io', false],
    ['128.0.0.1:5000', false],
    ['127.0.0.1.example.com', false],
    ['localhost.example.com', false],
    ['[::2]:5000', false],
    ['10.0.0.1:5000', false],
  ];
  for (const [host, want] of loopback) {
    test(`isLoopbackRegistry(${host}) = ${want}`, () => assert.equal(isLoopbackRegistry(host), want));
  }
});
