// The libfuse 3 backend (native/fuse_ll.c + src/fuse/lowlevel.ts) on a real kernel mount of
// an in-memory image, served by this test process; everything that touches the mount runs in
// a child process (a FUSE server must never touch its own mount synchronously). The request
// counts come from the session itself: they show what the kernel asked and where it was answered.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCodes, StargzError } from '../../src/errors.js';
import { BACKEND_ENV } from '../../src/fuse/backend.js';
import type { SessionStats } from '../../src/fuse/lowlevel.js';
import { serveImage, type ServingMount } from '../../src/mount/serve.js';
import { MergedFs } from '../../src/vfs/merged-fs.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';
import { FakeLayer } from './fake-layer.js';
import { isMounted, run } from './mount-helpers.js';

const LONG_VALUE = Buffer.from('v'.repeat(300)); // longer than the 128 bytes Python asks for first
const DEEP = 'wide/a/b/c'; // below a directory too big to come along with its parent's listing

const layer = new FakeLayer([
  { path: 'etc', type: 'dir' },
  { path: 'etc/hostname', content: Buffer.from('stargz-edge\n') },
  { path: 'etc/link', type: 'symlink', linkName: '../etc/hostname' },
  { path: 'etc/attrs', content: Buffer.from('x'), xattrs: { 'user.comment': Buffer.from('hello'), 'user.long': LONG_VALUE } },
  { path: 'etc/tool', content: Buffer.from('#!/bin/sh\n'), mode: 0o4755 },
  { path: `${DEEP}/file`, content: Buffer.from('deep\n') },
  { path: 'slow', content: Buffer.alloc(4096, 1) },
  // More entries than one answer to C carries (LISTING_BUDGET): the root's listing leaves it
  // out, so it and DEEP below it are not in the table until something asks for them.
  ...Array.from({ length: 4200 }, (_, i) => ({ path: `wide/f${i}`, content: Buffer.alloc(0) })),
]);
const fs = new MergedFs([layer]);
let dir: string;
let mnt: string;
let serving: ServingMount;
const logs: string[] = [];

before(async () => {
  process.env[BACKEND_ENV] = 'libfuse3';
  dir = await makeTempDir('fuse3-');
  mnt = join(dir, 'mnt');
  await mkdir(mnt);
  serving = await serveImage({ fs }, { mountpoint: mnt, fsName: 'test/fuse3:v1', readDeadlineMs: 1500, listAhead: false, log: (l) => logs.push(l) });
  assert.equal(serving.backend, 'libfuse3');
});

after(async () => {
  await serving?.stop();
  delete process.env[BACKEND_ENV];
  assert.equal(isMounted(mnt), false, 'unmounted at the end');
  await removeDir(dir);
});

function stats(): SessionStats {
  const s = serving.stats();
  assert.ok(s, 'the libfuse 3 session counts its requests');
  return s;
}

const count = (before: SessionStats, kind: keyof SessionStats): number => stats()[kind].count - before[kind].count;

test('readdirplus: ls -l of a directory gets names and attributes in its listing, with no LOOKUP per entry', async () => {
  const before = stats();
  const r = await run('ls', ['-ln', '--time-style=+', join(mnt, 'etc')]);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n').slice(1); // after "total N"
  assert.deepEqual(lines.map((l) => l.split(/\s+/).at(-1 - (l.includes(' -> ') ? 2 : 0))), ['attrs', 'hostname', 'link', 'tool']);
  assert.match(r.stdout, /^-rw-r--r-- 1 0 0 12 +hostname$/m);
  assert.match(r.stdout, /^-rwsr-xr-x 1 0 0 10 +tool$/m);
  assert.match(r.stdout, /^lrwxrwxrwx 1 0 0 15 +link -> \.\.\/etc\/hostname$/m);
  assert.ok(count(before, 'readdirplus') >= 1, 'the listing came as READDIRPLUS');
  // The one LOOKUP is of "etc" in the root; the four entries came with the listing.
  assert.equal(count(before, 'lookup'), 1, JSON.stringify(stats()));
  assert.equal(count(before, 'readdir'), 0);
});

test('lookup of a name in a directory never listed: the directory is asked of JS once, then answered in C', async () => {
  const before = stats();
  const r = await run('cat', [join(mnt, DEEP, 'file')]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'deep\n');
  const loads = count(before, 'dirLoads');
  assert.ok(loads >= 1 && loads <= 4, `directory loads: ${loads}`);
  const missing = await run('stat', [join(mnt, DEEP, 'nope')]);
  assert.notEqual(missing.code, 0);
  assert.match(missing.stderr, /No such file or directory/);
  const again = stats();
  // A failed lookup is kept by the kernel (negative entry): asking again sends nothing.
  assert.notEqual((await run('stat', [join(mnt, DEEP, 'nope')])).code, 0);
  assert.equal(count(again, 'lookup'), 0);
  assert.equal(count(before, 'dirLoads'), loads, 'no further directory load');
  // The big directory: many pages of READDIRPLUS.
  const wide = await run('sh', ['-c', `ls -f ${join(mnt, 'wide')} | wc -l`]);
  assert.equal(wide.stdout.trim(), '4203', wide.stderr); // with a, . and ..
});

test('xattrs: size queries, ERANGE for a short buffer, a value longer than a first guess, the list', async () => {
  const py = `
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
p = sys.argv[1].encode()
size = libc.getxattr(p, b"user.comment", None, 0)
buf = ctypes.create_string_buffer(2)
short = libc.getxattr(p, b"user.comment", buf, 2)
err = ctypes.get_errno()
missing = libc.getxattr(p, b"user.none", None, 0)
err2 = ctypes.get_errno()
lbuf = ctypes.create_string_buffer(4)
lshort = libc.listxattr(p, lbuf, 4)
err3 = ctypes.get_errno()
print(size, short, os.strerror(err), missing, os.strerror(err2), lshort, os.strerror(err3))
print(len(os.getxattr(sys.argv[1], "user.long")), sorted(os.listxattr(sys.argv[1])))
`;
  const r = await run('python3', ['-c', py, join(mnt, 'etc', 'attrs')]);
  assert.equal(r.code, 0, r.stderr);
  const [first, second] = r.stdout.trim().split('\n');
  assert.equal(first, '5 -1 Numerical result out of range -1 No data available -1 Numerical result out of range');
  assert.equal(second, "300 ['user.comment', 'user.long']");
});

test('writes fail with EROFS, the mount says ro, statfs answers', async () => {
  for (const args of [['touch', join(mnt, 'new')], ['mkdir', join(mnt, 'etc', 'd')], ['rm', join(mnt, 'etc', 'hostname')], ['sh', '-c', `echo x >> ${join(mnt, 'etc', 'hostname')}`]]) {
    const r = await run(args[0]!, args.slice(1));
    assert.notEqual(r.code, 0, args.join(' '));
    assert.match(r.stderr, /Read-only file system/, args.join(' '));
  }
  const line = readFileSync('/proc/self/mounts', 'utf8').split('\n').find((l) => l.split(' ')[1] === mnt);
  assert.match(line ?? '', /^test\/fuse3:v1 \S+ fuse\.stargz-get ro[, ]/);
  const df = await run('stat', ['-f', '-c', '%l %c', mnt]);
  assert.equal(df.code, 0, df.stderr);
  assert.equal(df.stdout.trim(), `255 ${fs.totals.inodes}`);
  assert.equal((await run('cat', [join(mnt, 'etc', 'hostname')])).stdout, 'stargz-edge\n');
});

test('a read that cannot get its bytes answers EIO at its deadline, and the mount stays usable', async () => {
  layer.behaviour = 'hang';
  try {
    const r = await run('cat', [join(mnt, 'slow')], 30_000);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /Input\/output error/);
    assert.ok(logs.some((l) => l.includes('EIO') && l.includes(ErrorCodes.TIMEOUT)), logs.join('\n'));
  } finally {
    layer.behaviour = 'ok';
  }
  layer.behaviour = { fail: new StargzError(ErrorCodes.REGISTRY_UNREACHABLE, 'connect ECONNREFUSED') };
  try {
    await new Promise((r) => setTimeout(r, 2100)); // past the memo of the failure just answered
    const r = await run('cat', [join(mnt, 'slow')]);
    assert.match(r.stderr, /Input\/output error/);
  } finally {
    layer.behaviour = 'ok';
  }
  await new Promise((r) => setTimeout(r, 2100));
  const ok = await run('sh', ['-c', `wc -c < ${join(mnt, 'slow')}`]);
  assert.equal(ok.stdout.trim(), '4096', ok.stderr);
});
