import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { findChallenge, parseWwwAuthenticate, type Challenge } from '../../src/registry/challenge.js';

describe('parseWwwAuthenticate', () => {
  const cases: Array<[string, string | string[] | undefined, Challenge[]]> = [
    ['absent', undefined, []],
    ['empty', '', []],
    ['basic', 'Basic realm="Registry Realm"', [{ scheme: 'basic', params: { realm: 'Registry Realm' } }]],
    [
      'Docker Hub bearer with a comma inside the scope',
      'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:samalba/my-app:pull,push"',
      [{ scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:samalba/my-app:pull,push' } }],
    ],
    [
      'insufficient_scope error param',
      'Bearer realm="https://r/token",service="svc",scope="repository:a/b:pull",error="insufficient_scope"',
      [{ scheme: 'bearer', params: { realm: 'https://r/token', service: 'svc', scope: 'repository:a/b:pull', error: 'insufficient_scope' } }],
    ],
    ['scheme and param names are case-insensitive', 'BEARER Realm="x", SERVICE=y', [{ scheme: 'bearer', params: { realm: 'x', service: 'y' } }]],
    ['unquoted values and spaces around =', 'Bearer realm = https://r/t , service=svc', [{ scheme: 'bearer', params: { realm: 'https://r/t', service: 'svc' } }]],
    ['escapes in quoted strings', 'Basic realm="a \\"quoted\\" \\\\ realm"', [{ scheme: 'basic', params: { realm: 'a "quoted" \\ realm' } }]],
    [
      'two challenges in one header',
      'Basic realm="b", Bearer realm="https://t/token",service="s"',
      [
        { scheme: 'basic', params: { realm: 'b' } },
        { scheme: 'bearer', params: { realm: 'https://t/token', service: 's' } },
      ],
    ],
    [
      'two header lines',
      ['Negotiate', 'Bearer realm="r"'],
      [
        { scheme: 'negotiate', params: {} },
        { scheme: 'bearer', params: { realm: 'r' } },
      ],
    ],
    [
      'token68 then another challenge',
      'Negotiate abc123==, Basic realm="x"',
      [
        { scheme: 'negotiate', params: {} },
        { scheme: 'basic', params: { realm: 'x' } },
      ],
    ],
    ['empty list elements', ', ,Basic realm="x",, ', [{ scheme: 'basic', params: { realm: 'x' } }]],
    ['unterminated quote runs to the end', 'Basic realm="never closed', [{ scheme: 'basic', params: { realm: 'never closed' } }]],
    ['param without scheme is dropped', 'realm="x"', []],
    ['empty quoted value', 'Bearer realm="",service=""', [{ scheme: 'bearer', params: { realm: '', service: '' } }]],
  ];
  for (const [name, header, want] of cases) {
    test(name, () => assert.deepEqual(parseWwwAuthenticate(header), want));
  }

  test('garbage never throws or hangs', () => {
    for (const s of ['"', '=', '==,==', '\\', 'Basic ="', '@@@ realm=x', 'a b c d', '\u0000\u00ff', ',,,="', 'x=' + '"'.repeat(1000)]) {
      assert.ok(Array.isArray(parseWwwAuthenticate(s)));
    }
  });

  test('findChallenge', () => {
    const cs = parseWwwAuthenticate('Basic realm="b", Bearer realm="t"');
    assert.equal(findChallenge(cs, 'Bearer')?.params.realm, 't');
    assert.equal(findChallenge(cs, 'basic')?.params.realm, 'b');
    assert.equal(findChallenge(cs, 'digest'), undefined);
  });
});
