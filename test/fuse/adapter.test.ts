// The FUSE operations called directly (no kernel): errno mapping, handles, read deadlines,
// read-ahead and the read-only refusals.
import type { LazyChunkRef } from '../../src/file-index/index.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { MergedFs } from '../../src/vfs/merged-fs.js';
import { createFuseAdapter, type AdapterOptions } from '../../src/fuse/adapter.js';
import type { EncodedDir, FuseOps } from '../../src/fuse/fuse-native.js';
import { ErrorCodes, StargzError } from '../../src/errors.js';
import { FakeLayer } from './fake-layer.js';

const ENOENT = -2;
const EIO = -5;
const EINVAL = -22;
const EROFS = -30;
const ENODATA = -61;
const EISDIR = -21;

const big = Buffer.alloc(2 * 1024 * 1024, 0);
for (let i = 0; i < big.length; i++) big[i] = (i * 7 + (i >> 12)) & 0xff;

function setup(over: Partial<AdapterOptions> = {}) {
  const layer = new FakeLayer([
    { path: 'etc', type: 'dir' },
    { path: 'etc/hostname', content: Buffer.from('stargz-edge\n') },
    { path: 'etc/link', type: 'symlink', linkName: '../etc/hostname', mode: 0o644 },
    { path: 'etc/attrs', content: Buffer.from('x'), xattrs: { 'user.comment': Buffer.from('hello') } },
    { path: 'big', content: big, chunkSize: 64 * 1024 },
    { path: 'big-link', type: 'hardlink', linkName: 'big' },
  ]);
  const fs = new MergedFs([layer]);
  const logs: string[] = [];
  const adapter = createFuseAdapter(fs, { readDeadlineMs: 2000, log: (l) => logs.push(l), ...over });
  return { layer, fs, ops: adapter.ops, adapter, logs };
}

const call = <T extends unknown[]>(fn: (cb: (...a: T) => void) => void): Promise<T> => new Promise((r) => fn((...a: T) => r(a)));

/** Reads as the kernel does without open/release ops: by path, with no file handle (0). */
async function readAll(ops: FuseOps, path: string, size: number, step = 128 * 1024): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (let pos = 0; pos < size; pos += step) {
    const buf = Buffer.alloc(step);
    const [n] = await call<[number]>((cb) => ops.read!(path, 0, buf, step, pos, cb));
    assert.ok(n >= 0, `read at ${pos} answered ${n}`);
    parts.push(buf.subarray(0, n));
  }
  return Buffer.concat(parts);
}

/** The fields of a stat in fuse-native's wire layout that these tests look at (values below 2^32). */
function decodeStat(res: number | Uint32Array): { mode: number; nlink: number; ino: number; size: number; mtime: number } {
  assert.ok(res instanceof Uint32Array, `an errno (${String(res)}), not a stat`);
  return { mode: res[0]!, size: res[3]!, nlink: res[6]!, ino: res[7]!, mtime: res[14]! + res[15]! * 2 ** 32 };
}

test('getattr: the image metadata, ENOENT for what is not there, symlinks 0777, hardlinks one inode', () => {
  const { ops } = setup();
  assert.equal(decodeStat(ops.getattr!('/')).mode & 0o170000, 0o040000);
  assert.equal(ops.getattr!('/nope'), ENOENT);
  const host = decodeStat(ops.getattr!('/etc/hostname'));
  assert.equal(host.size, 12);
  assert.equal(host.mtime, 1_600_000_000_000);
  assert.equal(decodeStat(ops.getattr!('/etc/link')).mode, 0o120777);
  const a = decodeStat(ops.getattr!('/big'));
  const b = decodeStat(ops.getattr!('/big-link'));
  assert.equal(a.ino, b.ino);
  assert.equal(a.nlink, 2);
});

test('readdir lists . and .. first, then the children with their stats, in wire layout, built once', () => {
  const { ops } = setup();
  const st = ops.getattr!('/etc/hostname') as Uint32Array;
  assert.equal(ops.getattr!('/etc/hostname'), st, 'cached');
  const dir = ops.readdir!('/etc') as EncodedDir;
  assert.deepEqual(dir.names, ['.', '..', 'attrs', 'hostname', 'link']);
  assert.equal(dir.stats.length, dir.names.length);
  assert.equal(dir.stats[3], st);
  assert.equal(decodeStat(dir.stats[0]!).ino, decodeStat(ops.getattr!('/etc')).ino, '. is the directory itself');
  assert.equal(decodeStat(dir.stats[1]!).ino, decodeStat(ops.getattr!('/')).ino, '.. is its parent');
  assert.equal(ops.readdir!('/etc'), dir, 'cached');
  assert.equal(ops.readdir!('/etc/hostname'), -20);
});

test('reads serve the bytes; writes are refused with EROFS', async () => {
  const { ops } = setup();
  // open answers ENOSYS (the kernel then opens files without asking), no release/opendir:
  // the read-only kernel mount refuses write opens itself.
  assert.deepEqual(await call((cb) => ops.open!('/etc/hostname', 0, cb)), [-38]);
  for (const name of ['release', 'opendir', 'releasedir']) assert.ok(!(name in ops), `no ${name}`);
  assert.equal((await readAll(ops, '/etc/hostname', 12)).toString(), 'stargz-edge\n');
  const got = await readAll(ops, '/big', big.length);
  assert.equal(createHash('sha256').update(got).digest('hex'), createHash('sha256').update(big).digest('hex'));
  assert.equal((await call<[number]>((cb) => ops.read!('/etc', 0, Buffer.alloc(10), 10, 0, cb)))[0], EISDIR);
  assert.equal((await call<[number]>((cb) => ops.read!('/missing', 0, Buffer.alloc(10), 10, 0, cb)))[0], ENOENT);
  assert.deepEqual(await call((cb) => ops.read!('/etc/hostname', 0, Buffer.alloc(10), 10, 12, cb)), [0], 'at end of file');
  const refusals: Array<[keyof FuseOps, unknown[]]> = [
    ['write', ['/etc/hostname', 1, Buffer.alloc(1), 1, 0]],
    ['create', ['/new', 0o644]],
    ['unlink', ['/etc/hostname']],
    ['mkdir', ['/d', 0o755]],
    ['rename', ['/etc/hostname', '/x']],
    ['chmod', ['/etc/hostname', 0o777]],
    ['setxattr', ['/etc/hostname', 'user.x', Buffer.from('y'), 0, 0]],
    ['truncate', ['/etc/hostname', 0]],
  ];
  for (const [name, args] of refusals) {
    const [res] = await call<[number]>((cb) => (ops[name] as (...a: unknown[]) => void)(...args, cb));
    assert.equal(res, EROFS, name);
  }
  assert.equal((await call<[number]>((cb) => ops.access!('/etc/hostname', 2, cb)))[0], EROFS);
  assert.equal((await call<[number]>((cb) => ops.access!('/etc/hostname', 4, cb)))[0], 0);
});

test('readlink, xattrs and statfs', async () => {
  const { ops } = setup();
  assert.deepEqual(await call((cb) => ops.readlink!('/etc/link', cb)), [0, '../etc/hostname']);
  assert.equal((await call<[number]>((cb) => ops.readlink!('/etc/hostname', cb)))[0], EINVAL);
  assert.deepEqual(await call((cb) => ops.listxattr!('/etc/attrs', cb)), [0, ['user.comment']]);
  const [e, v] = await call<[number, Buffer?]>((cb) => ops.getxattr!('/etc/attrs', 'user.comment', 0, cb));
  assert.equal(e, 0);
  assert.equal(v!.toString(), 'hello');
  assert.equal((await call<[number]>((cb) => ops.getxattr!('/etc/attrs', 'user.other', 0, cb)))[0], ENODATA);
  const [se, st] = await call<[number, { flag: number; files: number; blocks: number }?]>((cb) => ops.statfs!('/', cb));
  assert.equal(se, 0);
  assert.equal(st!.flag, 1); // ST_RDONLY
  // Six inodes (the hardlink shares one); 12 + 1 + 2 MiB of file bytes in 4 KiB blocks, the link's once.
  assert.equal(st!.files, 6);
  assert.equal(st!.blocks, Math.ceil((12 + 1 + big.length) / 4096));
});

test('a failing fetch answers EIO and logs why; the kernel retry right after is answered at once', async () => {
  const { ops, layer, logs } = setup();
  layer.behaviour = { fail: new StargzError(ErrorCodes.REGISTRY_UNREACHABLE, 'connect ECONNREFUSED 127.0.0.1:5000') };
  const buf = Buffer.alloc(4096);
  assert.deepEqual(await call((cb) => ops.read!('/etc/hostname', 0, buf, 4096, 0, cb)), [EIO]);
  assert.match(logs.join('\n'), /read \/etc\/hostname @0\+4096: EIO \(ERR_REGISTRY_UNREACHABLE: connect ECONNREFUSED/);
  const calls = layer.calls.length;
  assert.deepEqual(await call((cb) => ops.read!('/etc/hostname', 0, buf, 4096, 0, cb)), [EIO]);
  assert.equal(layer.calls.length, calls, 'no second fetch for the immediate retry');
});

test('a read that hangs answers EIO at its deadline and cancels the fetch', async () => {
  const { ops, layer, logs } = setup({ readDeadlineMs: 150 });
  layer.behaviour = 'hang';
  const started = Date.now();
  const [res] = await call<[number]>((cb) => ops.read!('/etc/hostname', 0, Buffer.alloc(4096), 4096, 0, cb));
  assert.equal(res, EIO);
  assert.ok(Date.now() - started < 1000);
  assert.equal(layer.calls[0]!.options.signal?.aborted, true);
  assert.match(logs.join('\n'), /ERR_TIMEOUT/);
});

test('sequential reads of a big file fetch ahead at low priority, skipping cached chunks', async () => {
  const { ops, layer, fs } = setup({ readAhead: { initialWindow: 256 * 1024, maxWindow: 1024 * 1024, slack: 128 * 1024, eagerLength: 128 * 1024 } });
  const chunk3 = fs.chunksFor(fs.get('/big')!)[3] as LazyChunkRef;
  layer.memory.set(chunk3.digest!, layer.bytesOf(chunk3));
  await readAll(ops, '/big', 256 * 1024);
  const low = layer.calls.filter((c) => c.options.priority === 'low');
  const high = layer.calls.filter((c) => c.options.priority === 'high');
  assert.ok(low.length >= 1, 'read-ahead happened');
  assert.equal(high.length, 2);
  const aheadOffsets = low.flatMap((c) => c.refs.map((r) => r.fileOffset));
  assert.ok(Math.min(...aheadOffsets) >= 128 * 1024, 'ahead of the reads');
  assert.ok(!aheadOffsets.includes(3 * 64 * 1024), 'a cached chunk is not fetched ahead');

  // Read-ahead off: only the reads themselves.
  const off = setup({ readAhead: false });
  await readAll(off.ops, '/big', 512 * 1024);
  assert.ok(off.layer.calls.every((c) => c.options.priority === 'high'));
});

test('reading a directory file after file fetches the next files ahead in one low-priority call; one file alone does not', async () => {
  const files = Array.from({ length: 12 }, (_, i) => ({ path: `d/f${String(i).padStart(2, '0')}`, content: Buffer.alloc(10_000, i) }));
  const layer = new FakeLayer(files);
  const fs = new MergedFs([layer]);
  const { ops, activeWalks } = createFuseAdapter(fs, { readDeadlineMs: 2000, log: () => undefined });
  const low = (): number => layer.calls.filter((c) => c.options.priority === 'low').length;
  assert.equal((await readAll(ops, '/d/f00', 10_000))[0], 0);
  assert.equal(low(), 0, 'a single cat fetches nothing ahead');
  assert.equal((await readAll(ops, '/d/f01', 10_000))[0], 1);
  assert.equal(activeWalks(), 1);
  const ahead = layer.calls.filter((c) => c.options.priority === 'low');
  assert.equal(ahead.length, 1, 'the rest of the directory in one request');
  assert.deepEqual(
    ahead[0]!.refs.map((r) => r.offset),
    files.slice(2).map((f) => fs.get('/' + f.path)!.inode.entry.chunks[0]!.offset),
  );
  for (let i = 2; i < 12; i++) assert.equal((await readAll(ops, `/d/f${String(i).padStart(2, '0')}`, 10_000))[0], i);
  assert.equal(low(), 1, 'nothing fetched ahead twice');
});
