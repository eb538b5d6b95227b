// What the libfuse 3 backend sends C ahead of requests (Listings, pure): every directory of the
// tree, each once, whatever order the budget cuts them in. A directory too big to come along
// with others must be sent later, not forgotten with everything below it (a first `find` then
// waited on JS for each of them).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Listings } from '../../src/fuse/lowlevel.js';
import { MergedFs } from '../../src/vfs/merged-fs.js';
import type { VNode } from '../../src/vfs/node.js';
import { FakeLayer } from './fake-layer.js';

const layer = new FakeLayer([
  ...Array.from({ length: 3 }, (_, i) => ({ path: `a/f${i}`, content: Buffer.alloc(0) })),
  // 20 entries: more than the budget left after the root's own listing.
  ...Array.from({ length: 19 }, (_, i) => ({ path: `big/f${i}`, content: Buffer.alloc(0) })),
  { path: 'big/sub/deep/file', content: Buffer.from('x') },
  { path: 'c/d/e/file', content: Buffer.from('y') },
]);
const fs = new MergedFs([layer]);

function directories(node: VNode): number {
  return node.children ? 1 + fs.readdir(node).reduce((n, k) => n + directories(k), 0) : 0;
}

test('listings ahead cover every directory once, a big one included, within the budget per answer', () => {
  const byIno = new Map<number, VNode>([[1, fs.root]]);
  const listings = new Listings(fs, byIno, () => undefined);
  const budget = 10;
  const answers = [listings.encodeFor(fs.root, budget)];
  for (let i = 0; i < 100; i++) {
    const next = listings.encodeFor(undefined, budget);
    if (!next) break;
    answers.push(next);
  }
  assert.ok(answers.length > 2, 'the budget cut the tree into several answers');
  assert.equal(listings.count, directories(fs.root), 'every directory was sent (big/, big/sub/ and big/sub/deep/ too)');
  assert.equal(listings.encodeFor(undefined, budget), undefined, 'then nothing is left');
});
