// TarReader on tars made by the real tools (test/fixtures/make-tars.sh). The expected values
// are what Go's archive/tar (umoci's reader) reports for the same files.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { byName, fixtureTar, readTar, type ReadFile } from './read-tar.js';

const MiB = 1024 * 1024;
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const get = (files: ReadFile[], name: string): ReadFile => {
  const f = byName(files).get(name);
  assert.ok(f, `${name} not read; have ${files.map((x) => x.entry.name).join(', ')}`);
  return f;
};

/** The sparse fixture file: 'head' at 0, 'middle' at 1 MiB + 3, 'Z' as the last byte of 3 MiB. */
function expectedSparse(): Buffer {
  const b = Buffer.alloc(3 * MiB);
  b.write('head', 0);
  b.write('middle', MiB + 3);
  b.write('Z', 3 * MiB - 1);
  return b;
}

function checkSparse(files: ReadFile[]): void {
  const img = get(files, 'sparse.img');
  assert.equal(img.entry.type, 'file');
  assert.equal(img.entry.size, 3 * MiB);
  assert.equal(sha(img.data), sha(expectedSparse()));
  // GNU tar stores 4 KiB blocks around each data byte; the rest are holes, never data events.
  assert.deepEqual(img.entry.sparse, [
    { offset: 0, length: 4096 },
    { offset: MiB, length: 4096 },
    { offset: 3 * MiB - 4096, length: 4096 },
  ]);
  assert.deepEqual(img.written, [
    [0, 4096],
    [MiB, 4096],
    [3 * MiB - 4096, 4096],
  ]);
  const hole = get(files, 'hole-only.img');
  assert.equal(hole.entry.size, 2 * MiB);
  assert.deepEqual(hole.entry.sparse, []);
  assert.deepEqual(hole.written, []);
  assert.equal(get(files, 'dir/hello.txt').data.toString(), 'hello\n');
}

describe('TarReader: GNU tar', () => {
  test('--format=gnu: old GNU sparse (S) expanded, long name (L) and long link (K), hardlink, fifo', () => {
    const files = readTar(fixtureTar('gnu'));
    assert.deepEqual(
      files.map((f) => [f.entry.name.slice(0, 20), f.entry.type]),
      [
        ['dir/', 'dir'],
        ['dir/fifo', 'fifo'],
        ['dir/hardlink', 'file'],
        ['dir/hello.txt', 'hardlink'],
        ['dir/longlink', 'symlink'],
        ['dir/nnnnnnnnnnnnnnnn', 'file'],
        ['sparse.img', 'file'],
        ['hole-only.img', 'file'],
      ],
    );
    assert.equal(get(files, 'sparse.img').entry.typeflag, 'S');
    checkSparse(files.filter((f) => f.entry.name !== 'dir/hello.txt').concat([{ ...get(files, 'dir/hardlink'), entry: { ...get(files, 'dir/hardlink').entry, name: 'dir/hello.txt' } }]));
    assert.equal(get(files, 'dir/' + 'n'.repeat(120)).data.toString(), 'long name\n');
    assert.equal(get(files, 'dir/longlink').entry.linkName, '../' + 't'.repeat(150) + '/target');
    assert.equal(get(files, 'dir/hello.txt').entry.linkName, 'dir/hardlink');
    const d = get(files, 'dir/').entry;
    assert.deepEqual([d.mode & 0o7777, d.uid, d.gid, d.mtimeMs], [0o755, 1000, 1000, Date.UTC(2024, 4, 1, 12) ]);
  });

  test('--format=posix --xattrs: binary xattr values are the exact bytes (user.bin = 00 ff 10, security.capability)', () => {
    const files = readTar(fixtureTar('posix'));
    const x = get(files, 'dir/hardlink').entry.xattrs;
    assert.deepEqual(Object.keys(x).sort(), ['security.capability', 'user.bin', 'user.text']);
    assert.deepEqual(x['user.bin'], Buffer.from([0x00, 0xff, 0x10]));
    assert.equal(x['user.text']!.toString(), 'plain');
    // setcap cap_net_raw+ep: VFS_CAP_REVISION_2, effective, permitted bit 13
    assert.equal(x['security.capability']!.toString('hex'), '0100000200200000000000000000000000000000');
    assert.equal(get(files, 'dir/' + 'n'.repeat(120)).data.toString(), 'long name\n');
    assert.equal(get(files, 'dir/longlink').entry.linkName, '../' + 't'.repeat(150) + '/target');
  });

  for (const v of ['0.0', '0.1', '1.0']) {
    test(`--format=posix -S --sparse-version=${v}: the real name and size, data regions only`, () => {
      const files = readTar(fixtureTar(`sparse-${v}`));
      assert.deepEqual(
        files.map((f) => f.entry.name),
        ['sparse.img', 'hole-only.img', 'dir/hello.txt'],
      );
      checkSparse(files);
    });
  }

  test('every chunking gives the same result (a 1-byte step crosses every boundary)', () => {
    const tar = fixtureTar('sparse-1.0');
    const whole = readTar(tar, tar.length).map((f) => [f.entry.name, sha(f.data), f.written]);
    for (const step of [1, 511, 512, 513, 4096]) assert.deepEqual(readTar(tar, step).map((f) => [f.entry.name, sha(f.data), f.written]), whole);
  });
});

describe('TarReader: Python tarfile, git archive, V7', () => {
  test('PAX: global header ignored, binary xattrs (hdrcharset=BINARY), path/linkpath/size/mtime/uid records, 100 trailing zero bytes', () => {
    const tar = fixtureTar('python-pax');
    assert.notEqual(tar.length % 512, 0, 'the fixture ends with bytes that are not a whole block');
    const files = readTar(tar);
    assert.deepEqual(
      files.map((f) => f.entry.name.slice(0, 12)),
      ['pax/', 'pax/bin.txt', 'pax/from-pax', 'pax/link', 'pax/ünïcødé-'],
    );
    const bin = get(files, 'pax/bin.txt').entry;
    assert.deepEqual(bin.xattrs['user.bin'], Buffer.from([0x00, 0xff, 0x10]));
    assert.deepEqual(bin.xattrs['security.capability'], Buffer.from('0100000200200000000000000000000000000000', 'hex'));
    const named = get(files, 'pax/from-pax-path');
    assert.equal(named.data.toString(), 'named by PAX\n');
    assert.equal(named.entry.mtimeMs, 1714564800750);
    assert.equal(get(files, 'pax/link').entry.linkName, 'from-pax-linkpath');
    const uni = files[4]!.entry;
    assert.equal(uni.name, 'pax/ünïcødé-' + 'x'.repeat(120));
    assert.deepEqual([uni.uid, uni.gid, uni.uname, uni.gname], [3000000, 3000001, 'üser', 'grøup']);
  });

  test('the estargz reference test builder\'s shape: 100 zero bytes after the end of archive are ignored', () => {
    const tar = fixtureTar('python-trailing');
    assert.equal(tar.length % 512, 100);
    const files = readTar(tar);
    assert.deepEqual(files.map((f) => f.entry.name), ['ref/', 'ref/xattr.txt']);
    assert.deepEqual(files[1]!.entry.xattrs['user.bin'], Buffer.from([0x00, 0xff, 0x10]));
  });

  test('GNU: base-256 uid/gid, ././@LongLink names and link targets, a hardlink to a long name', () => {
    const files = readTar(fixtureTar('python-gnu'));
    const long = 'gnu/' + 'l'.repeat(150);
    const f = get(files, long).entry;
    assert.deepEqual([f.uid, f.gid], [0o100000000, 0o200000000]);
    assert.equal(get(files, 'gnu/longlink').entry.linkName, '../' + 'k'.repeat(150));
    assert.equal(get(files, 'gnu/hard').entry.linkName, long);
  });

  test('ustar: the prefix field joins the name', () => {
    const files = readTar(fixtureTar('python-ustar'));
    assert.equal(files[1]!.entry.name, 'ustar/' + 'p'.repeat(90) + '/' + 'n'.repeat(50));
    assert.equal(files[1]!.data.toString(), 'prefix field\n');
  });

  test("V7: no magic; type '\\0' is a file, or a directory when the name ends in '/'", () => {
    const files = readTar(fixtureTar('python-v7'));
    assert.deepEqual(
      files.map((f) => [f.entry.name, f.entry.type, f.data.toString()]),
      [
        ['v7dir/', 'dir', ''],
        ['v7dir/file', 'file', 'old tar\n'],
        ['v7dir/file2', 'file', 'type zero\n'],
      ],
    );
  });

  test('git archive: the pax_global_header (commit id) is not an entry', () => {
    const files = readTar(fixtureTar('git'));
    assert.deepEqual(
      files.map((f) => [f.entry.name, f.entry.mode & 0o7777]),
      [
        ['proj/', 0o775],
        ['proj/run.sh', 0o775],
        ['proj/sub/', 0o775],
        ['proj/sub/file.txt', 0o664],
      ],
    );
  });
});
