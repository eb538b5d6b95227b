// The oracle (skopeo + umoci) and the tree comparator, on the edge fixture image.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { chmod, lstat, readdir, readFile, writeFile, utimes, lutimes, symlink, rm, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { startRegistry, pushLayout, type TestRegistry } from '../helpers/registry.js';
import { oracleUnpack, compareTrees, formatDiffs } from '../helpers/oracle.js';
import { readUserXattrs, parseGetfattr } from '../helpers/xattrs.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';

const run = promisify(execFile);

/** setfattr (package attr) when present, else python3. */
async function setXattr(path: string, name: string, value: string): Promise<void> {
  try {
    await run('setfattr', ['-h', '-n', name, '-v', value === '' ? '""' : value, path]);
  } catch (e) {
    if ((e as { code?: string }).code !== 'ENOENT') throw e;
    await run('python3', ['-c', 'import os,sys; os.setxattr(sys.argv[1], sys.argv[2], sys.argv[3].encode(), follow_symlinks=False)', path, name, value]);
  }
}

describe('oracle on the edge image', () => {
  let reg: TestRegistry;
  let work: string;
  let root: string;
  before(async () => {
    reg = await startRegistry({ mode: 'basic' });
    work = await makeTempDir('oracle-');
    await pushLayout(reg, 'edge', 'fixtures/edge:v1');
    root = await oracleUnpack(reg, 'fixtures/edge:v1', join(work, 'edge'));
  });
  after(async () => {
    await reg.stop();
    await removeDir(work);
  });

  test('applies layers, whiteouts and opaque dirs', async () => {
    assert.equal(await readFile(join(root, 'etc/overwritten'), 'utf8'), 'version 3 from layer 2\n');
    assert.deepEqual(await readdir(join(root, 'gone')), ['new']);
    assert.deepEqual(await readdir(join(root, 'opq')), ['new']);
    const [a, b] = await Promise.all([lstat(join(root, 'bin/tool')), lstat(join(root, 'bin/tool-hardlink'))]);
    assert.equal(a.ino, b.ino);
    const dev = await lstat(join(root, 'dev-null'));
    assert.ok(dev.isCharacterDevice());
    assert.equal(dev.rdev, 0x103); // 1:3
    const owned = await lstat(join(root, 'usr/share/data/owned'));
    assert.deepEqual([owned.uid, owned.gid], [1000, 1000]);
    const xa = await readUserXattrs(root);
    // The tar and the eStargz TOC also carry user.empty="" — umoci (Go's archive/tar) drops empty-valued
    // PAX xattrs; compareTrees' ignoreEmptyXattrs exists for that disagreement.
    assert.deepEqual(xa.get('usr/share/data/xattr'), { 'user.comment': Buffer.from('hello').toString('hex') });
  });

  test('is cached per registry and reference', async () => {
    assert.equal(await oracleUnpack(reg, 'fixtures/edge:v1', join(work, 'elsewhere')), root);
  });

  test('compareTrees: a copy is equal; one planted change gives exactly one diff', async () => {
    const copy = join(work, 'copy');
    await run('cp', ['-a', root, copy]);
    assert.deepEqual(await compareTrees(root, copy), [], 'cp -a copy must compare equal');
    await chmod(join(copy, 'etc/passwd'), 0o600);
    const d = await compareTrees(root, copy);
    assert.deepEqual(d, [{ path: 'etc/passwd', field: 'mode', expected: '0644', actual: '0600' }], formatDiffs(d));
    await rm(copy, { recursive: true });
  });

  test('compareTrees sees each kind of difference', async () => {
    const copy = join(work, 'copy2');
    await run('cp', ['-a', root, copy]);
    await writeFile(join(copy, 'etc/hostname'), 'other-host!\n'); // same size, other content (and mtime)
    await utimes(join(copy, 'etc/hostname'), new Date('2020-09-13T12:26:40Z'), new Date('2020-09-13T12:26:40Z'));
    await rm(join(copy, 'bin/sh'));
    await symlink('elsewhere', join(copy, 'bin/sh'));
    await lutimes(join(copy, 'bin/sh'), 1600000000, 1600000000);
    await rm(join(copy, 'bin/tool-hardlink'));
    await run('cp', ['-p', join(copy, 'bin/tool'), join(copy, 'bin/tool-hardlink')]); // same content, no longer linked
    await rm(join(copy, 'fifo'));
    await mkdir(join(copy, 'extra'));
    await run('chown', ['1:1', join(copy, 'etc/empty')]);
    await run('chmod', ['u-s', join(copy, 'bin/setuid')]);
    await writeFile(join(copy, 'stargz.index.json'), 'ignored'); // bookkeeping file: ignored
    const d = await compareTrees(root, copy, { ignoreDirMtime: true });
    const got = d.map((x) => `${x.path}:${x.field}`).sort();
    assert.deepEqual(
      got,
      [
        'bin/setuid:mode', 'bin/sh:target', 'bin/tool-hardlink:links', 'bin/tool:links',
        'etc/empty:gid', 'etc/empty:uid', 'etc/hostname:sha256', 'extra:exists', 'fifo:exists',
      ],
      formatDiffs(d),
    );
    assert.deepEqual(await compareTrees(root, copy, { subpath: 'usr/share' }), []);
    const owner = await compareTrees(root, copy, { ignoreOwner: true, subpath: 'etc' });
    assert.deepEqual(owner.map((x) => x.field), ['sha256']);
    await rm(copy, { recursive: true });
  });

  test('compareTrees sees xattr differences', async () => {
    const copy = join(work, 'copy3');
    await run('cp', ['-a', root, copy]);
    const f = join(copy, 'usr/share/data/xattr');
    await setXattr(f, 'user.comment', 'bye');
    await setXattr(join(copy, 'etc'), 'user.new', 'x');
    const d = await compareTrees(root, copy);
    assert.deepEqual(d.map((x) => `${x.path}:${x.field}`), ['etc:xattrs', 'usr/share/data/xattr:xattrs'], formatDiffs(d));
    await setXattr(f, 'user.comment', 'hello');
    await setXattr(join(copy, 'etc'), 'user.new', '');
    await setXattr(f, 'user.empty', '');
    assert.equal((await compareTrees(root, copy)).length, 2);
    assert.deepEqual(await compareTrees(root, copy, { ignoreEmptyXattrs: true }), []);
    await rm(copy, { recursive: true });
  });

  test('zstd image unpacks to the same tree', async () => {
    await pushLayout(reg, 'zstd', 'fixtures/zstd:v1');
    const z = await oracleUnpack(reg, 'fixtures/zstd:v1', join(work, 'zstd'));
    // directories with no tar entry of their own get the unpack time: ignore dir mtimes
    const d = await compareTrees(root, z, { ignoreDirMtime: true });
    assert.deepEqual(d, [], formatDiffs(d));
  });

  test('multi image: the platform option picks the index entry', async () => {
    await pushLayout(reg, 'multi', 'fixtures/multi:v1');
    const arm = await oracleUnpack(reg, 'fixtures/multi:v1', join(work, 'multi-arm'), { platform: 'linux/arm64/v8' });
    const d = await compareTrees(root, arm, { ignoreDirMtime: true });
    assert.deepEqual(d, [], formatDiffs(d)); // mixed has the same files as edge
  });
});

test('getfattr output parser', () => {
  const out = [
    '# file: /r/usr/share/data/xattr',
    'user.comment=0x68656c6c6f',
    'user.empty',
    '',
    '# file: /r/usr/share/\\303\\274 x',
    'user.a=0x01',
    '',
  ].join('\n');
  const m = parseGetfattr(out, '/r');
  assert.deepEqual(m.get('usr/share/data/xattr'), { 'user.comment': '68656c6c6f', 'user.empty': '' });
  assert.deepEqual(m.get('usr/share/ü x'), { 'user.a': '01' });
});
