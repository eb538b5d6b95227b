import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  MANIFEST_ACCEPT,
  MediaTypes,
  defaultPlatform,
  formatPlatform,
  manifestMediaType,
  normalizePlatform,
  parseManifest,
  parsePlatform,
  platformRank,
  selectManifest,
  summarizePlatforms,
  type Descriptor,
  type ImageIndex,
  type Platform,
} from '../../src/registry/manifest.js';
import { ErrorCodes, isStargzError, type ErrorCode } from '../../src/errors.js';
import { layoutsDir } from '../helpers/paths.js';

const hasCode = (code: ErrorCode) => (err: unknown) => isStargzError(err, code);
const D = (c: string): string => 'sha256:' + c.repeat(64);
const json = (v: unknown): Buffer => Buffer.from(JSON.stringify(v));

describe('parseManifest', () => {
  test('the edge fixture (OCI manifest made by the reference writer)', async () => {
    const bytes = await readFile(join(layoutsDir, 'edge', 'blobs', 'sha256', 'f8db2b250d97211e124f909aae96c22e87944dddbcac6702e9b3373399c644b1'));
    const p = parseManifest(bytes);
    assert.equal(p.kind, 'manifest');
    if (p.kind !== 'manifest') return;
    assert.equal(p.manifest.layers.length, 3);
    assert.equal(p.manifest.config.size, 386);
    assert.equal(p.manifest.layers[0]!.annotations?.['io.containers.estargz.uncompressed-size'], '409088');
  });

  test('the multi fixture (OCI index)', async () => {
    const bytes = await readFile(join(layoutsDir, 'multi', 'blobs', 'sha256', 'c954d35ac72d7091298358bcc89661ea420104a0c47fb1df314d41eb50297ec0'));
    const p = parseManifest(bytes);
    assert.equal(p.kind, 'index');
    if (p.kind !== 'index') return;
    assert.deepEqual(p.index.manifests.map((m) => m.platform), [
      { os: 'linux', architecture: 'amd64' },
      { os: 'linux', architecture: 'arm64', variant: 'v8' },
    ]);
  });

  const config = { mediaType: 'application/vnd.oci.image.config.v1+json', digest: D('a'), size: 10 };
  const layer = { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: D('b'), size: 20 };

  test('Docker schema2 manifest and manifest list', () => {
    const m = parseManifest(json({ schemaVersion: 2, mediaType: MediaTypes.DOCKER_MANIFEST, config, layers: [layer] }));
    assert.equal(m.kind, 'manifest');
    const l = parseManifest(json({ schemaVersion: 2, mediaType: MediaTypes.DOCKER_MANIFEST_LIST, manifests: [] }));
    assert.equal(l.kind, 'index');
  });

  test('media type from Content-Type, then from the shape', () => {
    const noType = json({ schemaVersion: 2, config, layers: [] });
    assert.equal(parseManifest(noType, MediaTypes.DOCKER_MANIFEST).kind, 'manifest');
    assert.equal(parseManifest(noType).kind, 'manifest');
    assert.equal(parseManifest(json({ schemaVersion: 2, manifests: [] }), 'application/json; charset=utf-8').kind, 'index');
    assert.equal(manifestMediaType(noType, 'application/vnd.oci.image.manifest.v1+json; charset=utf-8'), MediaTypes.OCI_MANIFEST);
    assert.equal(manifestMediaType(json({ mediaType: MediaTypes.OCI_INDEX }), MediaTypes.OCI_MANIFEST), MediaTypes.OCI_INDEX);
  });

  test('schema1 is MANIFEST_UNSUPPORTED', () => {
    assert.throws(() => parseManifest(json({ schemaVersion: 1, name: 'x', fsLayers: [] })), hasCode(ErrorCodes.MANIFEST_UNSUPPORTED));
    assert.throws(() => parseManifest(json({ schemaVersion: 2, config, layers: [] }), MediaTypes.DOCKER_SCHEMA1_SIGNED), hasCode(ErrorCodes.MANIFEST_UNSUPPORTED));
    assert.ok(!MANIFEST_ACCEPT.includes('distribution.manifest.v1'));
  });

  const bad: Array<[string, Buffer]> = [
    ['not JSON', Buffer.from('{nope')],
    ['not an object', json([1, 2])],
    ['schemaVersion 3', json({ schemaVersion: 3, config, layers: [] })],
    ['unknown media type', json({ schemaVersion: 2, mediaType: 'application/vnd.example+json', config, layers: [] })],
    ['no layers', json({ schemaVersion: 2, mediaType: MediaTypes.OCI_MANIFEST, config })],
    ['no config', json({ schemaVersion: 2, mediaType: MediaTypes.OCI_MANIFEST, layers: [] })],
    ['sha512 layer', json({ schemaVersion: 2, mediaType: MediaTypes.OCI_MANIFEST, config, layers: [{ ...layer, digest: 'sha512:' + 'a'.repeat(128) }] })],
    ['negative size', json({ schemaVersion: 2, mediaType: MediaTypes.OCI_MANIFEST, config, layers: [{ ...layer, size: -1 }] })],
    ['fractional size', json({ schemaVersion: 2, mediaType: MediaTypes.OCI_MANIFEST, config, layers: [{ ...layer, size: 1.5 }] })],
    ['string size', json({ schemaVersion: 2, mediaType: MediaTypes.OCI_MANIFEST, config, layers: [{ ...layer, size: '20' }] })],
    ['bad annotations', json({ schemaVersion: 2, mediaType: MediaTypes.OCI_MANIFEST, config, layers: [{ ...layer, annotations: { a: 1 } }] })],
    ['index without manifests', json({ schemaVersion: 2, mediaType: MediaTypes.OCI_INDEX })],
    ['index with a bad platform', json({ schemaVersion: 2, mediaType: MediaTypes.OCI_INDEX, manifests: [{ ...layer, platform: { os: 1 } }] })],
  ];
  for (const [name, bytes] of bad) {
    test(`rejects: ${name}`, () => assert.throws(() => parseManifest(bytes), hasCode(ErrorCodes.MANIFEST_UNSUPPORTED)));
  }
});

describe('platforms', () => {
  test('parsePlatform / formatPlatform', () => {
    assert.deepEqual(parsePlatform('linux/amd64'), { os: 'linux', architecture: 'amd64' });
    assert.deepEqual(parsePlatform('linux/arm64/v8'), { os: 'linux', architecture: 'arm64', variant: 'v8' });
    assert.equal(formatPlatform(parsePlatform('linux/arm/v7')), 'linux/arm/v7');
    for (const bad of ['linux', 'linux/', '/amd64', 'linux/amd64/v1/x', 'linux/amd 64', '']) {
      assert.throws(() => parsePlatform(bad), hasCode(ErrorCodes.USAGE), bad);
    }
  });

  test('defaultPlatform maps Node arch names to OCI ones', () => {
    assert.deepEqual(defaultPlatform('x64'), { os: 'linux', architecture: 'amd64' });
    assert.deepEqual(defaultPlatform('arm64'), { os: 'linux', architecture: 'arm64', variant: 'v8' });
    assert.deepEqual(defaultPlatform('arm', 7), { os: 'linux', architecture: 'arm', variant: 'v7' });
    assert.deepEqual(defaultPlatform('arm', '6'), { os: 'linux', architecture: 'arm', variant: 'v6' });
    assert.deepEqual(defaultPlatform('ia32'), { os: 'linux', architecture: '386' });
    assert.deepEqual(defaultPlatform('ppc64'), { os: 'linux', architecture: 'ppc64le' });
    assert.deepEqual(defaultPlatform('s390x'), { os: 'linux', architecture: 's390x' });
    assert.deepEqual(defaultPlatform('riscv64'), { os: 'linux', architecture: 'riscv64' });
    assert.equal(defaultPlatform().os, 'linux');
  });

  test('normalizePlatform', () => {
    assert.deepEqual(normalizePlatform({ os: 'Linux', architecture: 'x86_64' }), { os: 'linux', architecture: 'amd64' });
    assert.deepEqual(normalizePlatform({ os: 'linux', architecture: 'aarch64' }), { os: 'linux', architecture: 'arm64' });
    assert.deepEqual(normalizePlatform({ os: 'linux', architecture: 'arm64', variant: 'v8' }), { os: 'linux', architecture: 'arm64' });
    assert.deepEqual(normalizePlatform({ os: 'linux', architecture: 'arm', variant: '7' }), { os: 'linux', architecture: 'arm', variant: 'v7' });
    assert.deepEqual(normalizePlatform({ os: 'linux', architecture: 'armhf' }), { os: 'linux', architecture: 'arm', variant: 'v7' });
    assert.deepEqual(normalizePlatform({ os: 'linux', architecture: 'arm' }), { os: 'linux', architecture: 'arm', variant: 'v7' });
    assert.deepEqual(normalizePlatform({ os: 'linux', architecture: 'i386' }), { os: 'linux', architecture: '386' });
  });

  test('platformRank: exact first, compatible variants after, others never', () => {
    const p = (s: string): Platform => parsePlatform(s);
    assert.equal(platformRank(p('linux/arm64'), p('linux/arm64/v8')), 0);
    assert.equal(platformRank(p('linux/arm64/v8'), p('linux/arm64')), 0);
    assert.equal(platformRank(p('linux/arm/v7'), p('linux/arm/v7')), 0);
    assert.equal(platformRank(p('linux/arm/v7'), p('linux/arm/v6')), 1);
    assert.equal(platformRank(p('linux/arm/v6'), p('linux/arm/v7')), -1);
    assert.equal(platformRank(p('linux/amd64'), p('linux/amd64/v2')), -1);
    assert.equal(platformRank(p('linux/amd64/v3'), p('linux/amd64')), 2);
    assert.equal(platformRank(p('linux/amd64'), p('windows/amd64')), -1);
    assert.equal(platformRank(p('linux/amd64'), p('linux/arm64')), -1);
  });
});

describe('selectManifest', () => {
  const entry = (c: string, platform?: Platform, mediaType: string = MediaTypes.OCI_MANIFEST): Descriptor => ({
    mediaType,
    digest: D(c),
    size: 1,
    ...(platform ? { platform } : {}),
  });
  const index: ImageIndex = {
    mediaType: MediaTypes.OCI_INDEX,
    manifests: [
      entry('1', { os: 'linux', architecture: 'amd64' }),
      entry('2', { os: 'linux', architecture: 'arm64', variant: 'v8' }),
      entry('3', { os: 'linux', architecture: 'arm', variant: 'v6' }),
      entry('4', { os: 'linux', architecture: 'arm', variant: 'v7' }),
      entry('5', { os: 'unknown', architecture: 'unknown' }), // buildx attestation
      entry('6'), // no platform
      entry('7', { os: 'linux', architecture: 's390x' }, MediaTypes.OCI_INDEX), // nested index: skipped
      entry('8', { os: 'windows', architecture: 'amd64', 'os.version': '10.0.17763.1' }),
    ],
  };
  const cases: Array<[string, string]> = [
    ['linux/amd64', '1'],
    ['linux/x86_64', '1'],
    ['linux/arm64', '2'],
    ['linux/arm64/v8', '2'],
    ['linux/aarch64', '2'],
    ['linux/arm/v7', '4'],
    ['linux/arm', '4'],
    ['linux/arm/v6', '3'],
    ['linux/arm/v8', '4'],
    ['windows/amd64', '8'],
  ];
  for (const [want, digest] of cases) {
    test(want, () => assert.equal(selectManifest(index, parsePlatform(want)).digest, D(digest)));
  }

  test('a missing platform is PLATFORM_NOT_FOUND listing the available ones', () => {
    assert.throws(
      () => selectManifest(index, parsePlatform('linux/s390x')),
      (err: unknown) => {
        assert.ok(isStargzError(err, ErrorCodes.PLATFORM_NOT_FOUND));
        assert.match(err.message, /linux\/s390x/);
        assert.match(err.message, /linux\/amd64, linux\/arm64\/v8, linux\/arm\/v6, linux\/arm\/v7/);
        assert.doesNotMatch(err.message, /unknown/);
        return true;
      },
    );
    assert.throws(() => selectManifest({ mediaType: MediaTypes.OCI_INDEX, manifests: [] }, parsePlatform('linux/amd64')), /available: none/);
  });
});

describe('summarizePlatforms', () => {
  test('a few platforms, then a count', () => {
    const many = Array.from({ length: 10_000 }, (_, i) => `linux/arch${i}`);
    const text = summarizePlatforms(many);
    assert.ok(text.length < 200, text);
    assert.match(text, /^linux\/arch0, linux\/arch1, .* and 9992 more \(10000 platforms\)$/);
    assert.equal(summarizePlatforms(['linux/amd64', 'linux/arm64']), 'linux/amd64, linux/arm64');
    assert.equal(summarizePlatforms([]), 'none');
  });
});
