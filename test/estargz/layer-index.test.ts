import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ErrorCodes } from '../../src/errors.js';
import {
  buildLayerIndex,
  type LazyLayerIndex as LayerIndex,
  type Toc,
} from '../../src/estargz/index.js';
import { errorCode, fixtureLayers, openFixtureLayer } from './fixture-layers.js';
import { entry, fakeFooter, toc } from './synth.js';

const MT = 1_600_000_000_000;



function get(index: LayerIndex, path: string) {
  const e = index.entries.get(path);
  assert.ok(e, `${path} is in the index`);
  return e;
}

describe('layer index of the edge image (reference-made)', () => {
  const layers = fixtureLayers('edge');
  const [l0, l1, l2] = layers.map((l) => openFixtureLayer(l).index) as [LayerIndex, LayerIndex, LayerIndex];

  test('layer 0: bin/tool is 300000 bytes in 5 contiguous 64 KiB chunks', () => {
    const tool = get(l0, 'bin/tool');
    assert.equal(tool.type, 'reg');
    assert.equal(tool.size, 300000);
    assert.equal(tool.mode, 0o755);
    assert.equal(tool.chunks.length, 5);
    assert.deepEqual(
      tool.chunks.map((c) => c.size),
      [65536, 65536, 65536, 65536, 300000 - 4 * 65536],
    );
    let at = 0;
    for (const [i, c] of tool.chunks.entries()) {
      assert.equal(c.fileOffset, at);
      at += c.size;
      assert.equal(c.innerOffset, 0);
      assert.ok(c.offset < c.end);
      assert.match(c.digest!, /^sha256:[0-9a-f]{64}$/);
      // each extent ends where the next chunk's member begins
      if (i < 4) assert.equal(c.end, tool.chunks[i + 1]!.offset);
    }
    assert.equal(tool.digest, 'sha256:c252e9cba1a7e93857540c38cc81c96cc33080c642f2a99b53052b4f2c3741bf');
  });

  test('layer 0: hardlink, symlinks, devices, fifo, modes, owners, xattrs', () => {
    const link = get(l0, 'bin/tool-hardlink');
    assert.equal(link.type, 'hardlink');
    assert.equal(link.linkName, 'bin/tool');
    assert.equal(link.size, 300000);
    assert.equal(link.chunks, get(l0, 'bin/tool').chunks);
    assert.equal(get(l0, 'bin/sh').linkName, 'tool');
    assert.equal(get(l0, 'bin/abs-link').linkName, '/etc/hostname');
    assert.equal(get(l0, 'bin/dangling').linkName, '../nowhere/at/all');
    assert.equal(get(l0, 'bin/sh').type, 'symlink');
    const dev = get(l0, 'dev-null');
    assert.deepEqual([dev.type, dev.devMajor, dev.devMinor, dev.mode], ['char', 1, 3, 0o666]);
    assert.equal(get(l0, 'fifo').type, 'fifo');
    assert.equal(get(l0, 'bin/setuid').mode, 0o4755);
    assert.equal(get(l0, 'tmp').mode, 0o1777);
    assert.equal(get(l0, 'usr/share/data').mode, 0o700);
    const owned = get(l0, 'usr/share/data/owned');
    assert.deepEqual([owned.uid, owned.gid, owned.mode, owned.userName, owned.groupName], [1000, 1000, 0o640, 'user1000', 'group1000']);
    // the writer names root once; later entries inherit it by id
    assert.equal(get(l0, 'usr/share/data').userName, 'root');
    const x = get(l0, 'usr/share/data/xattr');
    assert.deepEqual(Object.keys(x.xattrs).sort(), ['user.comment', 'user.empty']);
    assert.equal(x.xattrs['user.comment']!.toString(), 'hello');
    assert.equal(x.xattrs['user.empty']!.length, 0);
    assert.equal(get(l0, 'etc/hostname').mtimeMs, MT);
    assert.equal(get(l0, 'etc/empty').size, 0);
    assert.deepEqual(get(l0, 'etc/empty').chunks, []);
    assert.equal(get(l0, 'usr/share/ünïcødé файл 文件.txt').size, Buffer.byteLength('unicode name ✓\n'));
    assert.equal(get(l0, 'usr/share/space name').size, 7);
  });

  test('layer 0: root and implicit parents of the long path', () => {
    const root = get(l0, '');
    assert.equal(root.type, 'dir');
    assert.equal(root.implicit, true);
    const implicit = get(l0, 'usr/share/d00-' + 'x'.repeat(20));
    assert.deepEqual([implicit.type, implicit.mode, implicit.mtimeMs, implicit.implicit], ['dir', 0o755, 0, true]);
    const listed = get(l0, 'usr/share/' + Array.from({ length: 8 }, (_, i) => `d0${i}-` + 'x'.repeat(20)).join('/'));
    assert.equal(listed.implicit, undefined);
    assert.equal(listed.mtimeMs, MT);
    const long = [...l0.entries.keys()].find((p) => p.endsWith('/file-with-a-long-path.txt'));
    assert.ok(long);
  });

  test('layer 0: children lists are sorted and complete; every dir has one', () => {
    assert.deepEqual(l0.children.get(''), ['bin', 'dev-null', 'etc', 'fifo', 'gone', 'opq', 'replaced-by-file', 'tmp', 'usr', 'will-be-dir']);
    assert.deepEqual(l0.children.get('bin'), ['abs-link', 'dangling', 'exact', 'setuid', 'sh', 'tool', 'tool-hardlink']);
    assert.deepEqual(l0.children.get('tmp'), []);
    for (const [path, e] of l0.entries) {
      if (e.type === 'dir') assert.ok(l0.children.has(path), `children of ${path}`);
      else assert.ok(!l0.children.has(path));
      if (path !== '') {
        const i = path.lastIndexOf('/');
        assert.ok(l0.children.get(i < 0 ? '' : path.slice(0, i))!.includes(path.slice(i + 1)), `${path} listed in its parent`);
      }
    }
  });

  test('layer 0: prefetch landmark recorded and hidden; prioritized files come before it', () => {
    assert.ok(!l0.entries.has('.prefetch.landmark'));
    assert.ok(!l0.children.get('')!.includes('.prefetch.landmark'));
    assert.equal(l0.noPrefetch, false);
    const end = l0.prefetchEnd!;
    assert.ok(end > 0);
    for (const c of get(l0, 'bin/tool').chunks) assert.ok(c.offset < end);
    assert.ok(get(l0, 'etc/hostname').chunks[0]!.offset < end);
    assert.ok(get(l0, 'etc/passwd').chunks[0]!.offset > end);
    assert.equal(l0.compression, 'gzip');
  });

  test('layer 1: whiteouts are ordinary entries; file/dir replacements', () => {
    for (const p of ['.wh.gone', 'opq/.wh..wh..opq', '.wh.replaced-by-file', '.wh.will-be-dir', 'bin/.wh.dangling']) {
      assert.equal(get(l1, p).type, 'reg', p);
    }
    assert.equal(get(l1, 'replaced-by-file').type, 'reg');
    assert.equal(get(l1, 'will-be-dir').type, 'dir');
    assert.equal(get(l1, 'will-be-dir/inside').type, 'reg');
    const big = get(l1, 'bin/big2');
    assert.equal(big.size, 1_000_000);
    assert.equal(big.chunks.length, Math.ceil(1_000_000 / 65536));
    assert.equal(get(l1, 'etc/overwritten').size, 'version 2 from layer 1\n'.length);
  });

  test('layer 2', () => {
    assert.equal(get(l2, 'gone').mode, 0o750);
    assert.equal(get(l2, 'etc/.wh.one').type, 'reg');
    assert.equal(get(l2, 'etc/overwritten').mode, 0o600);
    assert.equal(get(l2, 'gone/new').size, 'recreated\n'.length);
  });

  test('legacy and zstd variants index to the same files', () => {
    for (const name of ['legacy', 'zstd']) {
      const other = fixtureLayers(name).map((l) => openFixtureLayer(l).index);
      assert.equal(other.length, 3);
      for (const [i, idx] of other.entries()) {
        const mine = [l0, l1, l2][i]!;
        assert.deepEqual([...idx.entries.keys()].sort(), [...mine.entries.keys()].sort(), `${name} layer ${i}`);
        for (const [p, e] of idx.entries) {
          const m = mine.entries.get(p)!;
          assert.deepEqual([e.type, e.size, e.mode, e.digest, e.linkName], [m.type, m.size, m.mode, m.digest, m.linkName], p);
        }
        assert.equal(idx.noPrefetch, true);
        assert.equal(idx.prefetchEnd, undefined);
        assert.equal(idx.compression, name === 'zstd' ? 'zstd' : 'gzip');
      }
    }
  });

  test('zstd: the last chunk extent stops before the TOC skippable frame', () => {
    const l = fixtureLayers('zstd')[1]!;
    const idx = openFixtureLayer(l).index;
    let maxEnd = 0;
    for (const e of idx.entries.values()) for (const c of e.chunks) maxEnd = Math.max(maxEnd, c.end);
    assert.equal(maxEnd, idx.tocOffset - 8);
  });
});

describe('buildLayerIndex on hand-made TOCs', () => {
  const footer = fakeFooter(10_000);
  const build = (t: Toc) => buildLayerIndex(t, footer);
  const reg = (name: string, size: number, offset: number, extra = {}) => entry({ name, type: 'reg', size, offset, ...extra });

  test('names are normalized: ./ prefix, leading /, duplicate and trailing slashes, . parts', () => {
    const idx = build(toc(entry({ name: './a//b/', type: 'dir' }), entry({ name: '/abs/x', type: 'dir' }), entry({ name: 'c/./d', type: 'fifo' })));
    assert.deepEqual([...idx.entries.keys()].sort(), ['', 'a', 'a/b', 'abs', 'abs/x', 'c', 'c/d']);
    assert.equal(idx.entries.get('a')!.implicit, true);
    assert.equal(idx.entries.get('a/b')!.implicit, undefined);
  });

  test("'..' is cleaned at the root like estargz's cleanEntryName: names and hardlink targets", () => {
    const idx = build(
      toc(
        entry({ name: '../etc/passwd', type: 'fifo' }),
        entry({ name: 'a/../../b', type: 'dir' }),
        entry({ name: '/../c/./../d', type: 'fifo' }),
        entry({ name: 'l', type: 'hardlink', linkName: '../../etc/passwd' }),
        entry({ name: 'paired\ud83d\ude00', type: 'fifo' }),
      ),
    );
    assert.deepEqual([...idx.entries.keys()].sort(), ['', 'b', 'd', 'etc', 'etc/passwd', 'l', 'paired\u{1f600}']);
    assert.equal(idx.entries.get('l')!.linkName, 'etc/passwd');
  });

  test('a root entry ("./") sets the root attributes', () => {
    const idx = build(toc(entry({ name: './', type: 'dir', mode: 0o40700 }), entry({ name: 'f', type: 'fifo' })));
    assert.equal(idx.entries.get('')!.mode, 0o700);
    assert.equal(idx.entries.get('')!.implicit, undefined);
    assert.deepEqual(idx.children.get(''), ['f']);
  });

  const hostile: Array<[string, Toc]> = [
    ['a lone surrogate in a name', toc(entry({ name: 'x\ud800', type: 'dir' }))],
    ['a lone low surrogate in a name', toc(entry({ name: 'd/\udc00y', type: 'fifo' }))],
    ['a lone surrogate in a hardlink target', toc(entry({ name: 'f', type: 'fifo' }), entry({ name: 'l', type: 'hardlink', linkName: 'f\udbff' }))],
    ['a lone surrogate in a symlink target', toc(entry({ name: 's', type: 'symlink', linkName: 'x\ud800' }))],
    ['NUL in a name', toc(entry({ name: 'a\0b', type: 'dir' }))],
    ['NUL in a symlink target', toc(entry({ name: 's', type: 'symlink', linkName: 'a\0b' }))],
    ['root as a file', toc(entry({ name: '/', type: 'reg' }))],
    ['offset beyond the data region', toc(reg('f', 10, 10_000))],
    ['offset far beyond the blob', toc(reg('f', 10, 2 ** 50))],
    ['data without an offset', toc(reg('f', 10, 0))],
    ['huge size from a tiny extent', toc(reg('f', 2 ** 29, 100), reg('g', 1, 200))],
    ['absurd size', toc(reg('f', 2 ** 52, 100))],
    ['chunk larger than allowed', toc(reg('f', 2 ** 31, 100))],
    ['chunk without a file', toc(entry({ name: 'f', type: 'chunk', offset: 100, chunkOffset: 10 }))],
    ['chunk named differently', toc(reg('f', 20, 100, { chunkSize: 10 }), entry({ name: 'g', type: 'chunk', offset: 200, chunkOffset: 10 }))],
    ['chunk after another entry', toc(reg('f', 20, 100, { chunkSize: 10 }), entry({ name: 'd', type: 'dir' }), entry({ name: 'f', type: 'chunk', offset: 200, chunkOffset: 10 }))],
    ['chunks leave a gap', toc(reg('f', 30, 100, { chunkSize: 10 }), entry({ name: 'f', type: 'chunk', offset: 200, chunkOffset: 20 }))],
    ['chunks overlap in the file', toc(reg('f', 30, 100, { chunkSize: 10 }), entry({ name: 'f', type: 'chunk', offset: 200, chunkOffset: 5, chunkSize: 25 }))],
    ['chunks do not cover the file', toc(reg('f', 30, 100, { chunkSize: 10 }), entry({ name: 'f', type: 'chunk', offset: 200, chunkOffset: 10, chunkSize: 10 }))],
    ['chunk past the file size', toc(reg('f', 20, 100, { chunkSize: 10 }), entry({ name: 'f', type: 'chunk', offset: 200, chunkOffset: 30 }))],
    ['chunks of an empty file', toc(reg('f', 0, 0), entry({ name: 'f', type: 'chunk', offset: 200, chunkOffset: 0, chunkSize: 5 }))],
    ['first chunk not at file offset 0', toc(reg('f', 20, 100, { chunkOffset: 5 }))],
    ['packed chunks overlapping in one member', toc(reg('a', 100, 100), reg('b', 100, 100, { innerOffset: 50 }))],
  ];
  for (const [what, t] of hostile) {
    test(`refuses ${what}`, () => assert.equal(errorCode(() => build(t)), ErrorCodes.TOC_INVALID));
  }

  // issue 8: 16 chunks of 1 GiB out of one 1 MiB member were accepted as a 16 GiB file.
  test('refuses many chunks decoded from one member (each alone within the ratio)', () => {
    // A duplicate claim alone (a crafted second file on the same chunk) is allowed.
    build(toc(reg('a', 100, 100), reg('b', 100, 100)));
    const chunks = Array.from({ length: 15 }, (_, i) => entry({ name: 'big', type: 'chunk', offset: 100, chunkOffset: (i + 1) * 2 ** 30, chunkSize: 2 ** 30 }));
    const t = toc(reg('big', 16 * 2 ** 30, 100, { chunkSize: 2 ** 30 }), ...chunks, reg('end', 1, 100 + 2 ** 20));
    assert.equal(errorCode(() => buildLayerIndex(t, fakeFooter(2 ** 21))), ErrorCodes.TOC_INVALID);
    // One such chunk is what a writer could produce: accepted.
    buildLayerIndex(toc(reg('big', 2 ** 30, 100), reg('end', 1, 100 + 2 ** 20)), fakeFooter(2 ** 21));
  });

  test('chunk extents end at the next larger distinct offset, or the data region end', () => {
    const idx = build(
      toc(
        reg('a', 30, 100, { chunkSize: 10 }),
        entry({ name: 'a', type: 'chunk', offset: 300, chunkOffset: 10, chunkSize: 10 }),
        entry({ name: 'a', type: 'chunk', offset: 500, chunkOffset: 20 }),
        // two small files packed in one member (innerOffset)
        reg('p', 5, 700),
        reg('q', 7, 700, { innerOffset: 5 }),
        reg('last', 3, 900),
      ),
    );
    const a = idx.entries.get('a')!;
    assert.deepEqual(
      a.chunks.map((c) => [c.offset, c.end, c.fileOffset, c.size]),
      [
        [100, 300, 0, 10],
        [300, 500, 10, 10],
        [500, 700, 20, 10],
      ],
    );
    const q = idx.entries.get('q')!.chunks[0]!;
    assert.deepEqual([q.offset, q.end, q.innerOffset, q.fileOffset, q.size, q.digest], [700, 900, 5, 0, 7, undefined]);
    assert.equal(idx.entries.get('last')!.chunks[0]!.end, 10_000);
  });

  test('zstd data region ends 8 bytes before the TOC frame', () => {
    const idx = buildLayerIndex(toc(reg('f', 3, 100)), fakeFooter(1000, 'zstd'));
    assert.equal(idx.entries.get('f')!.chunks[0]!.end, 992);
    assert.equal(errorCode(() => buildLayerIndex(toc(reg('f', 3, 995)), fakeFooter(1000, 'zstd'))), ErrorCodes.TOC_INVALID);
  });

  test('a single chunk without chunkDigest takes the file digest', () => {
    const d = 'sha256:' + 'ab'.repeat(32);
    const idx = build(toc(reg('f', 3, 100, { digest: d })));
    assert.equal(idx.entries.get('f')!.chunks[0]!.digest, d);
  });

  test('later entries replace earlier ones; a directory replaced by a file loses its contents', () => {
    const idx = build(
      toc(
        reg('f', 3, 100),
        reg('f', 4, 200),
        entry({ name: 'd', type: 'dir' }),
        entry({ name: 'd/sub/x', type: 'fifo' }),
        entry({ name: 'd', type: 'symlink', linkName: 'elsewhere' }),
        entry({ name: 'e', type: 'fifo' }),
        entry({ name: 'e', type: 'dir' }),
        entry({ name: 'e/in', type: 'fifo' }),
        entry({ name: 'k', type: 'dir', mode: 0o700 }),
        entry({ name: 'k/in', type: 'fifo' }),
        entry({ name: 'k', type: 'dir', mode: 0o750 }),
      ),
    );
    assert.equal(idx.entries.get('f')!.size, 4);
    assert.equal(idx.entries.get('f')!.chunks[0]!.offset, 200);
    assert.equal(idx.entries.get('d')!.type, 'symlink');
    assert.ok(!idx.entries.has('d/sub') && !idx.entries.has('d/sub/x'));
    assert.ok(!idx.children.has('d') && !idx.children.has('d/sub'));
    assert.deepEqual(idx.children.get('e'), ['in']);
    assert.equal(idx.entries.get('k')!.mode, 0o750);
    assert.deepEqual(idx.children.get('k'), ['in']);
    assert.deepEqual(idx.children.get(''), ['d', 'e', 'f', 'k']);
  });

  test('landmarks and a stray stargz.index.json are hidden', () => {
    const idx = build(
      toc(entry({ name: '.no.prefetch.landmark', type: 'reg', size: 1, offset: 100 }), entry({ name: 'stargz.index.json', type: 'reg' }), reg('f', 1, 200)),
    );
    assert.equal(idx.noPrefetch, true);
    assert.equal(idx.prefetchEnd, undefined);
    assert.deepEqual([...idx.entries.keys()].sort(), ['', 'f']);
    // the landmark's offset still bounds the extent before it
    assert.ok(build(toc(reg('f', 1, 50), entry({ name: '.prefetch.landmark', type: 'reg', size: 1, offset: 100 }))).entries.get('f')!.chunks[0]!.end === 100);
  });

  test('modtime: RFC 3339 with offsets and fractions; missing or invalid is 0', () => {
    const idx = build(
      toc(
        entry({ name: 'a', type: 'dir', modtime: '2020-09-13T12:26:40Z' }),
        entry({ name: 'b', type: 'dir', modtime: '2020-09-13T14:26:40.5+02:00' }),
        entry({ name: 'c', type: 'dir', modtime: 'yesterday' }),
        entry({ name: 'd', type: 'dir' }),
        entry({ name: 'e', type: 'dir', modtime: '1969-12-31T23:59:59Z' }),
      ),
    );
    assert.equal(idx.entries.get('a')!.mtimeMs, MT);
    assert.equal(idx.entries.get('b')!.mtimeMs, MT + 500);
    assert.equal(idx.entries.get('c')!.mtimeMs, 0);
    assert.equal(idx.entries.get('d')!.mtimeMs, 0);
    assert.equal(idx.entries.get('e')!.mtimeMs, -1000);
  });

  test('a TOC with many entries builds in reasonable time', () => {
    const entries = [];
    for (let i = 0; i < 100_000; i++) entries.push(entry({ name: `d${i % 100}/f${i}`, type: 'reg', size: 10, offset: 100 + i * 50 }));
    const start = Date.now();
    const idx = buildLayerIndex({ version: 1, entries }, fakeFooter(100 + 100_000 * 50));
    assert.equal(idx.entries.size, 100_000 + 100 + 1);
    assert.ok(Date.now() - start < 5000);
  });
});
