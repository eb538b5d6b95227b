// diffTrees on hand-made layer indexes: the cases no fixture pair has (a directory replaced
// by a file and back, byte-order sorting of names beyond the BMP, the shared-layer skip).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { entryFields, implicitDir, type IndexEntry } from '../../src/file-index/index.js';
import type { Layer } from '../../src/layer/layer.js';
import { MergedFs } from '../../src/vfs/merged-fs.js';
import { diffTrees, sharedLayerCount } from '../../src/diff/diff.js';

function entry(path: string, type: IndexEntry['type'], extra: Partial<IndexEntry> = {}): IndexEntry {
  return { ...entryFields(implicitDir(path)), implicit: false, type, mode: 0o644, mtimeMs: 1_700_000_000_000, ...(type === 'reg' ? { digest: 'sha256:' + path.length } : {}), ...extra } as IndexEntry;
}

function layer(digest: string, entries: IndexEntry[]): Layer {
  const map = new Map<string, IndexEntry>([['', implicitDir('')]]);
  for (const e of entries) map.set(e.path, e);
  return { descriptor: { digest, size: 0, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' }, index: { entries: map, children: new Map(), noPrefetch: false } } as unknown as Layer;
}

describe('diffTrees', () => {
  test('a directory replaced by a file: C (type) and D of what it held; the reverse: A of all below', async () => {
    const a = new MergedFs([layer('sha256:a', [entry('d', 'dir', { mode: 0o755 }), entry('d/x', 'reg'), entry('f', 'reg')])]);
    const b = new MergedFs([layer('sha256:b', [entry('d', 'reg'), entry('f', 'dir', { mode: 0o755 }), entry('f/y', 'dir', { mode: 0o755 }), entry('f/y/z', 'reg')])]);
    const changes = await diffTrees(a, b);
    assert.deepEqual(
      changes.map((c) => `${c.change} ${c.path}`),
      ['C /d', 'D /d/x', 'C /f', 'A /f/y', 'A /f/y/z'],
    );
    assert.deepEqual(changes[0]!.fields, ['type', 'mode', 'size']);
  });

  test('sorted by UTF-8 bytes, not UTF-16 code units', async () => {
    const a = new MergedFs([layer('sha256:a', [entry('keep', 'reg')])]);
    const b = new MergedFs([layer('sha256:b', [entry('keep', 'reg'), entry('\u{1F600}', 'reg'), entry('\uFF21', 'reg')])]);
    // U+FF21 is EF BC A1 in UTF-8, U+1F600 F0 9F 98 80 (but D83D… in UTF-16, which sorts first).
    assert.deepEqual((await diffTrees(a, b)).map((c) => c.path), ['/\uFF21', '/\u{1F600}']);
  });

  test('a directory mtime never counts; a file mtime counts unless ignoreMtime', async () => {
    const a = new MergedFs([layer('sha256:a', [entry('d', 'dir', { mode: 0o755 }), entry('d/f', 'reg')])]);
    const b = new MergedFs([layer('sha256:b', [entry('d', 'dir', { mode: 0o755, mtimeMs: 1 }), entry('d/f', 'reg', { mtimeMs: 2 })])]);
    assert.deepEqual(await diffTrees(a, b), [{ path: '/d/f', change: 'C', fields: ['mtime'] }]);
    assert.deepEqual(await diffTrees(a, b, { ignoreMtime: true }), []);
  });

  test('entries of a shared bottom layer are not compared; equal layer lists are not walked', async () => {
    const base = [entry('same', 'reg')];
    // Two opens of "one" layer whose entries disagree: only a skipped comparison can call them equal.
    const a = new MergedFs([layer('sha256:base', base), layer('sha256:top-a', [entry('t', 'reg')])]);
    const b = new MergedFs([layer('sha256:base', [entry('same', 'reg', { mode: 0o600 })]), layer('sha256:top-b', [entry('t', 'reg', { uid: 5 })])]);
    assert.equal(sharedLayerCount(['x', 'y'], ['x', 'z']), 1);
    assert.deepEqual(await diffTrees(a, b), [{ path: '/t', change: 'C', fields: ['uid'] }]);
    const c = new MergedFs([layer('sha256:base', [entry('other', 'reg')])]);
    const d = new MergedFs([layer('sha256:base', [entry('else', 'reg')])]);
    assert.deepEqual(await diffTrees(c, d), []);
  });
});
