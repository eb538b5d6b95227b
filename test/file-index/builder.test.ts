// The one index builder, through both of its front ends: a TOC (estargz buildLayerIndex) and
// a tar stream's headers (layer/index-codec LayerIndexBuilder) must give the same tree for
// the same entries, and refuse the same impossible ones.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ErrorCodes } from '../../src/errors.js';
import { buildLayerIndex, type TocEntry } from '../../src/estargz/index.js';
import { Entry, entryFields, NO_XATTRS, type ChunkRef, type IndexEntry, type LayerIndex, type NodeType } from '../../src/file-index/index.js';
import { LayerIndexBuilder, decodeLayerIndex, encodeLayerIndex } from '../../src/layer/index-codec.js';
import { errorCode } from '../estargz/fixture-layers.js';
import { entry, fakeFooter, toc } from '../estargz/synth.js';

/** A format-neutral description of one layer entry, fed to either front end. */
interface Spec {
  name: string;
  type: NodeType;
  size?: number;
  linkName?: string;
}

const D = (i: number): string => 'sha256:' + String(i).padStart(64, '0');

/** Through the TOC front end: each file one chunk at its own offset. */
function viaToc(specs: Spec[]): LayerIndex {
  let offset = 100;
  const entries: TocEntry[] = specs.map((s) => {
    const e = entry({ name: s.name, type: s.type, linkName: s.linkName ?? '', mode: 0o644 });
    if (s.type === 'reg' && s.size) Object.assign(e, { size: s.size, offset: (offset += 100), chunkDigest: D(offset) });
    return e;
  });
  return buildLayerIndex(toc(...entries), fakeFooter(offset + 1000));
}

/** Through the tar front end: each file one piece named by digest. */
function viaTar(specs: Spec[]): LayerIndex {
  const b = new LayerIndexBuilder();
  let n = 0;
  for (const s of specs) {
    const size = s.type === 'reg' ? (s.size ?? 0) : 0;
    const chunks: ChunkRef[] = size > 0 ? [{ fileOffset: 0, size, digest: D(++n) }] : [];
    b.add({ path: s.name, type: s.type, mode: 0o644, uid: 0, gid: 0, mtimeMs: 0, size, linkName: s.linkName ?? '', devMajor: 0, devMinor: 0, xattrs: NO_XATTRS, chunks });
  }
  return b.finish();
}

const fronts: Array<[string, (s: Spec[]) => LayerIndex, string]> = [
  ['TOC', viaToc, ErrorCodes.TOC_INVALID],
  ['tar', viaTar, ErrorCodes.CORRUPT_DATA],
];

/** path -> [type, size, linkName], the part of the tree both formats share. */
function shape(index: LayerIndex): Record<string, [string, number, string, boolean]> {
  const out: Record<string, [string, number, string, boolean]> = {};
  for (const [path, e] of [...index.entries].sort(([a], [b]) => (a < b ? -1 : 1))) out[path] = [e.type, e.size, e.linkName, e.implicit === true];
  return out;
}

describe('one builder for both formats', () => {
  const replacements: Spec[] = [
    { name: 'f', type: 'reg', size: 3 },
    { name: 'f', type: 'reg', size: 4 },
    { name: 'd/', type: 'dir' },
    { name: 'd/sub/x', type: 'fifo' },
    { name: 'd', type: 'symlink', linkName: 'elsewhere' },
    { name: 'e', type: 'fifo' },
    { name: 'e', type: 'dir' },
    { name: 'e/in', type: 'reg', size: 5 },
    { name: 'k/in', type: 'fifo' },
    { name: 'k', type: 'dir' },
    { name: 'h', type: 'hardlink', linkName: 'e/in' },
  ];

  test('the same entries give the same tree through the TOC and the tar front end', () => {
    const expected = {
      '': ['dir', 0, '', true],
      d: ['symlink', 0, 'elsewhere', false],
      e: ['dir', 0, '', false],
      'e/in': ['reg', 5, '', false],
      f: ['reg', 4, '', false],
      h: ['hardlink', 5, 'e/in', false],
      k: ['dir', 0, '', false],
      'k/in': ['fifo', 0, '', false],
    };
    for (const [what, build] of fronts) assert.deepEqual(shape(build(replacements)), expected, what);
  });

  for (const [what, build, code] of fronts) {
    test(`${what}: an entry below a regular file is refused (umoci: "mkdir parent: not a directory")`, () => {
      assert.equal(errorCode(() => build([{ name: 'a', type: 'reg', size: 1 }, { name: 'a/b', type: 'reg', size: 1 }])), code);
    });
    test(`${what}: an entry below a symlink or a directory replaced by a file is refused too`, () => {
      assert.equal(errorCode(() => build([{ name: 's', type: 'symlink', linkName: 'x' }, { name: 's/b', type: 'fifo' }])), code);
      assert.equal(errorCode(() => build([{ name: 'd/', type: 'dir' }, { name: 'd', type: 'reg', size: 1 }, { name: 'd/b', type: 'fifo' }])), code);
      assert.equal(errorCode(() => build([{ name: 'a', type: 'fifo' }, { name: 'a/b/c/d', type: 'fifo' }])), code);
    });
    test(`${what}: a file replaced by a directory may have entries below it`, () => {
      assert.equal(build([{ name: 'a', type: 'reg', size: 1 }, { name: 'a', type: 'dir' }, { name: 'a/b', type: 'fifo' }]).entries.get('a/b')?.type, 'fifo');
    });
    test(`${what}: the children lists are sorted and every directory has one`, () => {
      const idx = build(replacements);
      assert.deepEqual(idx.children.get(''), ['d', 'e', 'f', 'h', 'k']);
      assert.deepEqual(idx.children.get('e'), ['in']);
      assert.ok(!idx.children.has('d') && !idx.children.has('d/sub'));
      assert.equal(idx.children, idx.children, 'built once');
    });
  }

  test('a hardlink to a missing target: refused in a TOC, kept in a tar layer (it may link into a layer below)', () => {
    const specs: Spec[] = [{ name: 'l', type: 'hardlink', linkName: 'below' }];
    assert.equal(errorCode(() => viaToc(specs)), ErrorCodes.TOC_INVALID);
    assert.equal(viaTar(specs).entries.get('l')?.linkName, 'below');
  });

  test('a hardlink to a directory is refused in both', () => {
    for (const [what, build, code] of fronts) assert.equal(errorCode(() => build([{ name: 'd', type: 'dir' }, { name: 'l', type: 'hardlink', linkName: 'd' }])), code, what);
  });
});

describe('the model', () => {
  test('chunksByOffset: every extent once, by offset, without replaced files or shared hardlink chunks', () => {
    const idx = buildLayerIndex(
      toc(
        entry({ name: 'b', type: 'reg', size: 20, offset: 300, chunkSize: 10 }),
        entry({ name: 'b', type: 'chunk', offset: 200, chunkOffset: 10 }),
        entry({ name: 'p', type: 'reg', size: 5, offset: 100 }),
        entry({ name: 'q', type: 'reg', size: 5, offset: 100, innerOffset: 5 }),
        entry({ name: 'gone', type: 'reg', size: 5, offset: 400 }),
        entry({ name: 'gone', type: 'fifo' }),
        entry({ name: 'l', type: 'hardlink', linkName: 'b' }),
      ),
      fakeFooter(1000),
    );
    assert.deepEqual(idx.chunksByOffset.map((c) => [c.offset, c.end]), [[100, 200], [200, 300], [300, 400]]);
    assert.equal(idx.chunksByOffset[0], idx.entries.get('p')!.chunks[0], 'the first chunk at a shared offset');
    assert.deepEqual(viaTar([{ name: 'f', type: 'reg', size: 3 }]).chunksByOffset, [], 'plain pieces have no extent');
  });

  test("a plain layer's pieces have no invented extent", () => {
    const piece = viaTar([{ name: 'f', type: 'reg', size: 3 }]).entries.get('f')!.chunks[0]!;
    assert.equal(piece.offset, undefined);
    assert.equal(piece.end, undefined);
  });

  test('defaults on the prototype read like fields; entryFields gives them all', () => {
    const e = new Entry('x', 'char', 0o600, 1, 2, 3, 0, '', []);
    assert.deepEqual([e.devMajor, e.devMinor, e.xattrs, e.sparse, e.implicit], [0, 0, NO_XATTRS, undefined, undefined]);
    e.devMajor = 4;
    assert.equal(new Entry('y', 'fifo', 0, 0, 0, 0, 0, '', []).devMajor, 0, 'setting one entry leaves the others');
    const fields = entryFields(e);
    assert.equal(fields.devMajor, 4);
    assert.equal(fields.devMinor, 0);
  });

  test('one digest string for a one-chunk file and its chunk; user names interned', () => {
    const d = 'sha256:' + 'ab'.repeat(32);
    const idx = buildLayerIndex(
      toc(
        entry({ name: 'f', type: 'reg', size: 3, offset: 100, digest: d, chunkDigest: 'sha256:' + 'ab'.repeat(32), userName: 'root', uid: 0 }),
        entry({ name: 'g', type: 'fifo', uid: 0 }),
      ),
      fakeFooter(1000),
    );
    const f = idx.entries.get('f')!;
    assert.equal(f.chunks.length, 1);
    assert.equal(f.chunks[0]!.digest, f.digest);
    assert.equal(idx.entries.get('g')!.userName, 'root', 'given once per id, as the writer omits repeats');
  });

  test('the tar index survives its cache encoding: hardlinks, devices, sparse, xattrs, the root', () => {
    const b = new LayerIndexBuilder();
    const base: IndexEntry = { path: '', type: 'dir', mode: 0o700, uid: 0, gid: 0, mtimeMs: 5, size: 0, linkName: '', devMajor: 0, devMinor: 0, xattrs: NO_XATTRS, chunks: [] };
    b.add(base);
    b.add({ ...base, path: 'dev', type: 'char', mode: 0o600, devMajor: 1, devMinor: 3 });
    b.add({ ...base, path: 'f', type: 'reg', mode: 0o644, size: 10, sparse: true, chunks: [{ fileOffset: 8, size: 2, digest: D(1) }], xattrs: { 'user.a': Buffer.from([0, 1]) } });
    b.add({ ...base, path: 'l', type: 'hardlink', linkName: 'f' });
    const index = b.finish();
    const back = decodeLayerIndex(encodeLayerIndex(index, 'tar+gzip'))!.index;
    assert.deepEqual(shape(back), shape(index));
    for (const path of index.entries.keys()) {
      const { chunks: c1, ...a } = entryFields(index.entries.get(path)!);
      const { chunks: c2, ...b2 } = entryFields(back.entries.get(path)!);
      assert.deepEqual(b2, a, path);
      const fields = (c: ChunkRef) => [c.fileOffset, c.size, c.digest, c.offset, c.end];
      assert.deepEqual(c2.map(fields), c1.map(fields), path);
    }
    assert.equal(back.entries.get('l')!.chunks[0], back.entries.get('f')!.chunks[0], 'a hardlink shares its target\'s chunks');
  });
});
