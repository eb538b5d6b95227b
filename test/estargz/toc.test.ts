import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import zlib from 'node:zlib';
import { ErrorCodes } from '../../src/errors.js';
import { extractTocJson, MAX_FOOTER_SIZE, parseFooter, parseToc, tocDigest } from '../../src/estargz/index.js';
import { errorCode, fixtureLayers, openFixtureLayer } from './fixture-layers.js';
import { gzipTocRegion, rawZstdFrame, tarHeader, tarPax } from './synth.js';

const TOC_DIGEST = 'containerd.io/snapshot/stargz/toc.digest';



describe('TOC of reference-made layers', () => {
  for (const name of ['edge', 'legacy', 'zstd', 'mixed']) {
    test(`${name}: the TOC digest equals the layer annotation`, () => {
      for (const l of fixtureLayers(name)) {
        if (!l.annotations[TOC_DIGEST]) continue; // the plain layer of mixed
        const json = openFixtureLayer(l).json;
        assert.equal(tocDigest(json), l.annotations[TOC_DIGEST]);
        const toc = parseToc(json);
        assert.equal(toc.version, 1);
        assert.ok(toc.entries.length > 0);
      }
    });
  }

  test('zstd: the JSON length matches the footer', () => {
    for (const l of fixtureLayers('zstd')) {
      const f = parseFooter(l.blob.subarray(l.blob.length - MAX_FOOTER_SIZE), l.blob.length);
      assert.equal(openFixtureLayer(l).json.length, f.uncompressedTocLength);
    }
  });

  test('entries carry the TOC fields: chunks, xattrs as Buffers, devices', () => {
    const toc = parseToc(openFixtureLayer(fixtureLayers('edge')[0]!).json);
    const tool = toc.entries.filter((e) => e.name === 'bin/tool');
    assert.deepEqual(
      tool.map((e) => e.type),
      ['reg', 'chunk', 'chunk', 'chunk', 'chunk'],
    );
    assert.equal(tool[0]!.size, 300000);
    assert.equal(tool[0]!.chunkSize, 65536);
    assert.deepEqual(
      tool.map((e) => e.chunkOffset),
      [0, 65536, 131072, 196608, 262144],
    );
    assert.ok(tool.every((e) => /^sha256:[0-9a-f]{64}$/.test(e.chunkDigest!)));
    const x = toc.entries.find((e) => e.name === 'usr/share/data/xattr')!;
    assert.ok(Buffer.isBuffer(x.xattrs['user.comment']));
    assert.equal(x.xattrs['user.comment']!.toString(), 'hello');
    assert.equal(x.xattrs['user.empty']!.length, 0);
    const dev = toc.entries.find((e) => e.name === 'dev-null')!;
    assert.equal(dev.type, 'char');
    assert.equal(dev.devMajor, 1);
    assert.equal(dev.devMinor, 3);
    const link = toc.entries.find((e) => e.name === 'bin/tool-hardlink')!;
    assert.equal(link.type, 'hardlink');
    assert.equal(link.linkName, 'bin/tool');
  });

  test('maxBytes bounds the TOC (gzip and zstd)', () => {
    assert.equal(errorCode(() => openFixtureLayer(fixtureLayers('edge')[0]!, 1000)), ErrorCodes.TOC_INVALID);
    assert.equal(errorCode(() => openFixtureLayer(fixtureLayers('zstd')[0]!, 1000)), ErrorCodes.TOC_INVALID);
  });
});


describe('extractTocJson on hand-made regions', () => {
  const json = '{"version":1,"entries":[]}';

  test('a gzip member with the TOC tar; trailing bytes after the member are ignored', () => {
    const region = gzipTocRegion(json);
    assert.equal(extractTocJson(region, 'gzip').toString(), json);
    assert.equal(extractTocJson(Buffer.concat([region, Buffer.from('trailing garbage')]), 'gzip').toString(), json);
  });

  test('a PAX header naming the file is honoured', () => {
    const region = zlib.gzipSync(tarPax('stargz.index.json', 'something-else', json));
    assert.equal(extractTocJson(region, 'gzip').toString(), json);
  });

  test('broken gzip regions: CORRUPT_DATA or TOC_INVALID, never a crash', () => {
    const region = gzipTocRegion(json);
    const truncated = region.subarray(0, region.length - 20);
    assert.equal(errorCode(() => extractTocJson(truncated, 'gzip')), ErrorCodes.CORRUPT_DATA);
    assert.equal(errorCode(() => extractTocJson(region.subarray(0, 5), 'gzip')), ErrorCodes.CORRUPT_DATA);
    assert.equal(errorCode(() => extractTocJson(Buffer.alloc(0), 'gzip')), ErrorCodes.CORRUPT_DATA);
    assert.equal(errorCode(() => extractTocJson(Buffer.from('not gzip at all'), 'gzip')), ErrorCodes.CORRUPT_DATA);
    const badCrc = Buffer.from(region);
    badCrc[badCrc.length - 6]! ^= 0xff;
    assert.equal(errorCode(() => extractTocJson(badCrc, 'gzip')), ErrorCodes.CORRUPT_DATA);
    // gzip fine, but not the TOC tar
    assert.equal(errorCode(() => extractTocJson(gzipTocRegion(json, 'other.json'), 'gzip')), ErrorCodes.TOC_INVALID);
    assert.equal(errorCode(() => extractTocJson(zlib.gzipSync(Buffer.from(json)), 'gzip')), ErrorCodes.TOC_INVALID);
    assert.equal(errorCode(() => extractTocJson(zlib.gzipSync(Buffer.alloc(2048)), 'gzip')), ErrorCodes.TOC_INVALID);
    const badSum = tarHeader('stargz.index.json', json.length);
    badSum[0] = 0x41;
    assert.equal(errorCode(() => extractTocJson(zlib.gzipSync(Buffer.concat([badSum, Buffer.alloc(1536)])), 'gzip')), ErrorCodes.TOC_INVALID);
    // header claims more data than the tar holds
    const short = zlib.gzipSync(Buffer.concat([tarHeader('stargz.index.json', 100000), Buffer.from(json)]));
    assert.equal(errorCode(() => extractTocJson(short, 'gzip')), ErrorCodes.TOC_INVALID);
  });

  test('a gzip bomb stops at the bound', () => {
    const bomb = zlib.gzipSync(Buffer.alloc(8 * 1024 * 1024));
    assert.equal(errorCode(() => extractTocJson(bomb, 'gzip', 64 * 1024)), ErrorCodes.TOC_INVALID);
  });

  test('zstd regions: frames without a content size, truncation, garbage', () => {
    const frame = rawZstdFrame(Buffer.from(json));
    assert.equal(extractTocJson(frame, 'zstd').toString(), json);
    assert.equal(extractTocJson(Buffer.concat([frame, Buffer.from('trailing')]), 'zstd').toString(), json);
    assert.equal(errorCode(() => extractTocJson(frame.subarray(0, frame.length - 3), 'zstd')), ErrorCodes.CORRUPT_DATA);
    assert.equal(errorCode(() => extractTocJson(Buffer.alloc(64), 'zstd')), ErrorCodes.CORRUPT_DATA);
    assert.equal(errorCode(() => extractTocJson(Buffer.alloc(0), 'zstd')), ErrorCodes.CORRUPT_DATA);
    // a large frame without content size is cut at the bound
    const big = rawZstdFrame(Buffer.alloc(600_000, 0x20));
    assert.equal(errorCode(() => extractTocJson(big, 'zstd', 100_000)), ErrorCodes.TOC_INVALID);
  });

  test('zstd: a compressed frame from the zstd CLI when installed', (t) => {
    const input = Buffer.from(JSON.stringify({ version: 1, entries: Array.from({ length: 5000 }, (_, i) => ({ name: `f${i}`, type: 'dir' })) }));
    const res = spawnSync('zstd', ['-q', '-c', '-19'], { input });
    if (res.error || res.status !== 0) return t.skip('zstd CLI not available');
    assert.deepEqual(extractTocJson(res.stdout, 'zstd'), input);
  });
});

describe('parseToc rejects hostile JSON with TOC_INVALID', () => {
  const entryJson = (e: Record<string, unknown>): Buffer => Buffer.from(JSON.stringify({ version: 1, entries: [{ name: 'f', type: 'reg', ...e }] }));
  const cases: Array<[string, Buffer]> = [
    ['invalid JSON', Buffer.from('{"version":1,')],
    ['empty input', Buffer.alloc(0)],
    ['binary garbage', Buffer.from([0xff, 0xfe, 0x00, 0x01])],
    ['an array', Buffer.from('[]')],
    ['null', Buffer.from('null')],
    ['a number', Buffer.from('1')],
    ['a string', Buffer.from('"toc"')],
    ['version 2', Buffer.from('{"version":2,"entries":[]}')],
    ['version "1"', Buffer.from('{"version":"1","entries":[]}')],
    ['no version', Buffer.from('{"entries":[]}')],
    ['entries not an array', Buffer.from('{"version":1,"entries":{}}')],
    ['entry not an object', Buffer.from('{"version":1,"entries":[1]}')],
    ['entry null', Buffer.from('{"version":1,"entries":[null]}')],
    ['unknown type', entryJson({ type: 'socket' })],
    ['missing type', Buffer.from('{"version":1,"entries":[{"name":"f"}]}')],
    ['name not a string', entryJson({ name: 5 })],
    ['negative offset', entryJson({ offset: -1 })],
    ['negative size', entryJson({ size: -100 })],
    ['fractional size', entryJson({ size: 1.5 })],
    ['huge size', entryJson({ size: 1e300 })],
    ['unsafe integer offset', entryJson({ offset: 2 ** 53 })],
    ['string number', entryJson({ size: '10' })],
    ['boolean mode', entryJson({ mode: true })],
    ['bad digest', entryJson({ digest: 'md5:abc' })],
    ['bad chunk digest', entryJson({ chunkDigest: 'sha256:XYZ' })],
    ['xattrs not an object', entryJson({ xattrs: ['a'] })],
    ['xattr not base64', entryJson({ xattrs: { 'user.a': '!!!' } })],
    ['xattr value a number', entryJson({ xattrs: { 'user.a': 5 } })],
    ['name too long', entryJson({ name: 'a/'.repeat(3000) })],
    ['deeply nested JSON', Buffer.from('['.repeat(200000) + ']'.repeat(200000))],
  ];
  for (const [what, json] of cases) {
    test(what, () => assert.equal(errorCode(() => parseToc(json)), ErrorCodes.TOC_INVALID));
  }

  test('null fields count as absent; unknown fields are ignored', () => {
    const toc = parseToc(Buffer.from('{"version":1,"entries":[{"name":"f","type":"reg","size":null,"digest":null,"xattrs":null,"extra":{"x":1}}],"other":true}'));
    assert.equal(toc.entries[0]!.size, 0);
    assert.equal(toc.entries[0]!.digest, undefined);
    assert.deepEqual(toc.entries[0]!.xattrs, {});
  });

  test('an xattr named __proto__ stays a plain own property', () => {
    const toc = parseToc(Buffer.from('{"version":1,"entries":[{"name":"f","type":"reg","xattrs":{"__proto__":"aGk=","user.x":null}}]}'));
    const x = toc.entries[0]!.xattrs;
    assert.ok(Object.prototype.hasOwnProperty.call(x, '__proto__'));
    assert.equal(Object.getPrototypeOf(x), Object.prototype);
    assert.equal(x['__proto__']!.toString(), 'hi');
    assert.equal(x['user.x']!.length, 0);
  });

  test('a missing entries list is an empty TOC', () => {
    assert.deepEqual(parseToc(Buffer.from('{"version":1}')), { version: 1, entries: [] });
  });
});
