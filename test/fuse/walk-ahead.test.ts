// The directory-walk read-ahead: when it starts (never for one file), what it plans (files
// in readdir order, within the walked directory, by a growing byte window), and the merged
// tree's walk order it runs on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WalkAhead, type PlannedFile, type WalkAheadOptions } from '../../src/fuse/walk-ahead.js';
import { VfsWalkTree } from '../../src/fuse/vfs-walk.js';
import { MergedFs } from '../../src/vfs/merged-fs.js';
import type { VNode } from '../../src/vfs/node.js';
import { FakeLayer, type FakeFile } from './fake-layer.js';

const KiB = 1024;
const opts: WalkAheadOptions = { initialWindow: 64 * KiB, maxWindow: 256 * KiB, maxSkip: 2, maxStreams: 2 };

/** A merged tree of files of `size` bytes at the given paths (directories implied). */
function tree(paths: string[], size = 16 * KiB): { fs: MergedFs; walk: VfsWalkTree; node: (p: string) => VNode } {
  const files: FakeFile[] = paths.map((path) => ({ path, content: Buffer.alloc(size, 1) }));
  const fs = new MergedFs([new FakeLayer(files)]);
  return { fs, walk: new VfsWalkTree(fs), node: (p) => fs.get(p)! };
}

const names = (plan: PlannedFile<VNode>[]): string[] => plan.map((p) => p.node.path);

test('one file read starts nothing; the next file in readdir order starts the walk', () => {
  const t = tree(['d/a', 'd/b', 'd/c', 'd/d', 'd/e', 'd/f']);
  const wa = new WalkAhead(t.walk, opts);
  assert.deepEqual(wa.onFileRead(t.node('/d/a')), [], 'a single cat fetches nothing ahead');
  assert.deepEqual(wa.onFileRead(t.node('/d/a')), [], 'reading on in the same file neither');
  assert.equal(wa.activeWalks, 0);
  // b follows a: the next 64 KiB of files (4 of 16 KiB) are planned, whole.
  const plan = wa.onFileRead(t.node('/d/b'));
  assert.deepEqual(names(plan), ['/d/c', '/d/d', '/d/e', '/d/f']);
  assert.ok(plan.every((p) => p.length === 16 * KiB));
  assert.equal(wa.activeWalks, 1);
});

test('the window refills once half of it is read, doubling up to its bound', () => {
  const paths = Array.from({ length: 60 }, (_, i) => `d/f${String(i).padStart(2, '0')}`);
  const t = tree(paths);
  const wa = new WalkAhead(t.walk, opts);
  wa.onFileRead(t.node('/d/f00'));
  const planned: string[] = [];
  const sizes: number[] = [];
  for (let i = 1; i < 60; i++) {
    const plan = wa.onFileRead(t.node(`/d/f${String(i).padStart(2, '0')}`));
    if (plan.length > 0) sizes.push(plan.length);
    planned.push(...names(plan));
  }
  assert.deepEqual(planned, paths.slice(2).map((p) => '/' + p), 'every later file once, in order');
  assert.ok(sizes[0]! <= 4 && Math.max(...sizes) <= 256 / 16, `batches ${sizes.join(',')}`);
  assert.ok(sizes.length < 20, 'few, growing batches');
});

test('a walk never fetches outside the directory it was seen in, until the reader leaves it', () => {
  const t = tree(['a/x/1', 'a/x/2', 'a/x/3', 'a/y/1', 'a/y/2', 'b/1', 'b/2']);
  const wa = new WalkAhead(t.walk, opts);
  wa.onFileRead(t.node('/a/x/1'));
  assert.deepEqual(names(wa.onFileRead(t.node('/a/x/2'))), ['/a/x/3'], 'tar a/x fetches nothing of a/y');
  assert.deepEqual(wa.onFileRead(t.node('/a/x/3')), []);
  // The reader went on into a/y (tar a): the walk widens to a, keeping its window.
  assert.deepEqual(names(wa.onFileRead(t.node('/a/y/1'))), ['/a/y/2']);
  assert.deepEqual(wa.onFileRead(t.node('/a/y/2')), []);
  assert.deepEqual(names(wa.onFileRead(t.node('/b/1'))), ['/b/2'], 'and to the root');
});

test('depth first across subdirectories, as tar and cp -r read', () => {
  const t = tree(['d/a', 'd/b', 'd/m/1', 'd/m/2', 'd/z']);
  const wa = new WalkAhead(t.walk, opts);
  wa.onFileRead(t.node('/d/a'));
  assert.deepEqual(names(wa.onFileRead(t.node('/d/b'))), ['/d/m/1', '/d/m/2', '/d/z']);
});

test('`cat d/*` (files only, subdirectories skipped) is followed in directory order', () => {
  const t = tree(['d/a', 'd/b', 'd/m/1', 'd/m/2', 'd/m/3', 'd/m/4', 'd/z1', 'd/z2']);
  const wa = new WalkAhead(t.walk, { ...opts, maxSkip: 1 });
  wa.onFileRead(t.node('/d/a'));
  assert.deepEqual(names(wa.onFileRead(t.node('/d/b'))), ['/d/m/1', '/d/m/2', '/d/m/3', '/d/m/4'], 'looks like tar so far');
  // The reader skips m/: a new walk over d's own files.
  assert.deepEqual(wa.onFileRead(t.node('/d/z1')), []);
  const t2 = tree(['d/a', 'd/m/1', 'd/m/2', 'd/m/3', 'd/m/4', 'd/z1', 'd/z2', 'd/z3']);
  const wa2 = new WalkAhead(t2.walk, { ...opts, maxSkip: 1 });
  wa2.onFileRead(t2.node('/d/a'));
  assert.deepEqual(names(wa2.onFileRead(t2.node('/d/z1'))), ['/d/z2', '/d/z3'], 'siblings only');
});

test('a jump elsewhere is not a walk; a file larger than the window is planned in part', () => {
  const t = tree(['d/a', 'd/b', 'e/a', 'e/b']);
  const wa = new WalkAhead(t.walk, opts);
  wa.onFileRead(t.node('/d/a'));
  assert.deepEqual(wa.onFileRead(t.node('/e/b')), [], 'far away: no walk');
  const big = tree(['d/a', 'd/b', 'd/c'], 100 * KiB);
  const wb = new WalkAhead(big.walk, opts);
  wb.onFileRead(big.node('/d/a'));
  assert.deepEqual(wb.onFileRead(big.node('/d/b')).map((p) => [p.node.path, p.length]), [['/d/c', 64 * KiB]]);
  assert.throws(() => new WalkAhead(t.walk, { ...opts, maxWindow: 1 }), RangeError);
});

test('VfsWalkTree: readdir order, files only, bounded by scope; scopeOf is the common directory', () => {
  const t = tree(['a/x/1', 'a/x/2', 'a/y/1', 'b/1']);
  const all = (it: Iterator<VNode>): string[] => {
    const out: string[] = [];
    for (let r = it.next(); !r.done; r = it.next()) out.push(r.value.path);
    return out;
  };
  assert.deepEqual(all(t.walk.filesAfter(t.node('/a/x/1'), 'tree')), ['/a/x/2', '/a/y/1', '/b/1']);
  assert.deepEqual(all(t.walk.filesAfter(t.node('/a/x/1'), 'tree', t.node('/a/x'))), ['/a/x/2']);
  assert.deepEqual(all(t.walk.filesAfter(t.node('/a/x/1'), 'dir')), ['/a/x/2']);
  assert.equal(t.walk.scopeOf(t.node('/a/x/1'), t.node('/a/y/1')).path, '/a');
  assert.equal(t.walk.scopeOf(t.node('/a/x/1'), t.node('/b/1')).path, '/');
  assert.equal(t.walk.scopeOf(t.node('/a/x/1'), t.node('/a/x/2')).path, '/a/x');
  assert.equal(t.walk.size(t.node('/a')), 0, 'a directory has no bytes to fetch');
});
