// Which config keys name a registry and repository (pure).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { candidateKeys, findEntry, normalizeKey, normalizeRegistry, serverUrlFor } from '../../src/registry/keychain-keys.js';

test('keys: host, host:port, URLs and Docker Hub aliases normalize to one name', () => {
  assert.equal(normalizeKey('127.0.0.1:5000'), '127.0.0.1:5000');
  assert.equal(normalizeKey('https://127.0.0.1:5000'), '127.0.0.1:5000');
  assert.equal(normalizeKey('http://127.0.0.1:5000/'), '127.0.0.1:5000');
  assert.equal(normalizeKey('https://index.docker.io/v1/'), 'docker.io');
  assert.equal(normalizeKey('registry-1.docker.io'), 'docker.io');
  assert.equal(normalizeKey('Quay.IO/ns/repo/'), 'quay.io/ns/repo');
  assert.equal(normalizeRegistry('https://ghcr.io/'), 'ghcr.io');
});

test('candidates: namespaces most specific first, then the host', () => {
  assert.deepEqual(candidateKeys('quay.io', 'a/b/c'), ['quay.io/a/b/c', 'quay.io/a/b', 'quay.io/a', 'quay.io']);
  assert.deepEqual(candidateKeys('docker.io', 'library/alpine'), ['docker.io/library/alpine', 'docker.io/library', 'docker.io']);
  assert.deepEqual(candidateKeys('h:1', ''), ['h:1']);
});

test('findEntry: the most specific key wins; another namespace does not match', () => {
  const auths = { 'h:1': 'host', 'h:1/ns': 'ns', 'h:1/ns/repo': 'repo', 'h:1/other': 'other' };
  assert.equal(findEntry(auths, 'h:1', 'ns/repo'), 'repo');
  assert.equal(findEntry(auths, 'h:1', 'ns/x'), 'ns');
  assert.equal(findEntry(auths, 'h:1', 'nsx/y'), 'host');
  assert.equal(findEntry({ 'h:1/other': 1 }, 'h:1', 'ns/x'), undefined);
  assert.equal(findEntry({ 'https://index.docker.io/v1/': 'hub' }, 'docker.io', 'library/alpine'), 'hub');
});

test("helpers are told Docker Hub's v1 URL, other registries by host", () => {
  assert.equal(serverUrlFor('docker.io'), 'https://index.docker.io/v1/');
  assert.equal(serverUrlFor('127.0.0.1:5001'), '127.0.0.1:5001');
});
