// Which chunks a sync fetches before the merge (image/head-start.ts): the top layer's regular
// files at or below PATH, only where PATH is the layer's own directories, only cacheable chunks,
// within the byte bound.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { headStartChunks } from '../../src/image/head-start.js';
import type { ChunkRef, IndexEntry } from '../../src/file-index/index.js';
import type { Layer } from '../../src/layer/layer.js';

const chunk = (name: string, size: number, digest = true): ChunkRef => ({ fileOffset: 0, size, ...(digest ? { digest: `sha256:${name}` } : {}), offset: 0, end: 1, innerOffset: 0 });

function topLayer(entries: Array<[string, IndexEntry['type'], number?, boolean?]>): Layer {
  const map = new Map<string, IndexEntry>();
  for (const [path, type, size = 0, digest = true] of entries) {
    map.set(path, { path, type, size, chunks: type === 'reg' && size > 0 ? [chunk(path, size, digest)] : [] } as unknown as IndexEntry);
  }
  return { index: { entries: map } } as unknown as Layer;
}

const names = (refs: ChunkRef[]): string[] => refs.map((r) => r.digest!.slice('sha256:'.length));

const layer = topLayer([
  ['', 'dir'],
  ['etc', 'dir'],
  ['etc/a', 'reg', 10],
  ['etc/nodigest', 'reg', 10, false],
  ['etc/empty', 'reg', 0],
  ['etc/link', 'symlink'],
  ['etc/hard', 'hardlink', 10],
  ['etc/sub', 'dir'],
  ['etc/sub/c', 'reg', 20],
  ['etcetera', 'reg', 5],
  ['lib', 'symlink'],
  ['lib/x', 'reg', 7], // below a non-directory of its own layer: the merge drops it
  ['usr', 'dir'],
  ['usr/big', 'reg', 1000],
]);

test('files at or below PATH, cacheable chunks only, nothing of a neighbour with the same prefix', () => {
  assert.deepEqual(names(headStartChunks(layer, { path: '/etc', maxBytes: 1 << 20 })), ['etc/a', 'etc/sub/c']);
  assert.deepEqual(names(headStartChunks(layer, { path: '/etc/sub/c', maxBytes: 1 << 20 })), ['etc/sub/c']);
  assert.deepEqual(names(headStartChunks(layer, { path: '/', maxBytes: 1 << 20 })), ['etc/a', 'etc/sub/c', 'etcetera', 'usr/big']);
});

test('nothing where a component of PATH is not a directory of the layer: the merge may resolve it elsewhere', () => {
  assert.deepEqual(headStartChunks(layer, { path: '/lib', maxBytes: 1 << 20 }), []);
  assert.deepEqual(headStartChunks(layer, { path: '/lib/x', maxBytes: 1 << 20 }), []);
  assert.deepEqual(headStartChunks(layer, { path: '/opt/x', maxBytes: 1 << 20 }), []);
});

test('whole files within maxBytes, the ones that do not fit left to the walk', () => {
  assert.deepEqual(names(headStartChunks(layer, { path: '/', maxBytes: 40 })), ['etc/a', 'etc/sub/c', 'etcetera']);
  assert.deepEqual(names(headStartChunks(layer, { path: '/usr', maxBytes: 999 })), []);
});
