// Issue 13, the stored merged tree, through the CLI as a user runs it: the first open of an
// image stores what merging its layers gave (by manifest digest), and the next open names its
// nodes from that record instead of merging again — with the same listing, inode numbers and
// link counts. A record that is damaged, of another version, or out of order is never served: the
// layers are merged again and the record replaced. One that names what a layer does not have is
// found out when that entry is first needed, and nothing of it is read. A tag moved to another
// manifest is listed as that manifest.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import Database from 'better-sqlite3';
import { startRegistry, pushLayout, type TestRegistry } from '../helpers/registry.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';
import { runCli } from '../helpers/cli.js';
import { withVersion } from '../helpers/cache-records.js';
import { MERGED_TREE_VERSION } from '../../src/vfs/merged-tree-codec.js';

function trees(cache: string): Map<string, Buffer> {
  const db = new Database(join(cache, 'index.sqlite'));
  try {
    const rows = db.prepare("SELECT key, data FROM records WHERE kind = 'merged-tree'").all() as Array<{ key: string; data: Buffer }>;
    return new Map(rows.map((r) => [r.key, r.data]));
  } finally {
    db.close();
  }
}

function rewriteTrees(cache: string, edit: (data: Buffer) => Buffer): void {
  const db = new Database(join(cache, 'index.sqlite'));
  try {
    for (const [key, data] of trees(cache)) db.prepare("UPDATE records SET data = ? WHERE kind = 'merged-tree' AND key = ?").run(edit(data), key);
  } finally {
    db.close();
  }
}

/** Changes one byte of the body and makes the checksum right again: only the checks on what the record names can tell. */
function reseal(d: Buffer, at: (body: Buffer) => number): Buffer {
  const out = Buffer.from(d);
  const body = out.subarray(16);
  const i = at(body);
  body[i] = body[i] === 0x5a ? 0x59 : 0x5a;
  out.writeUInt32LE(crc32(body), 12);
  return out;
}

const damages: Array<[string, (data: Buffer) => Buffer]> = [
  ['a flipped byte', (d) => Buffer.from(d.map((b, i) => (i === Math.floor(d.length / 2) ? b ^ 1 : b)))],
  ['a truncated record', (d) => Buffer.from(d.subarray(0, Math.floor(d.length / 2)))],
  [
    'another version (checksum valid)',
    (d) => withVersion(d, MERGED_TREE_VERSION + 1),
  ],
  // A plain file with no other name (/etc/hostname): only the check that each entry exists tells.
  ['a file renamed to what no layer has (checksum valid)', (d) => reseal(d, (body) => body.indexOf('\0hostname\0') + 1)],
];

describe('the stored merged tree', () => {
  let reg: TestRegistry;
  let work: string;
  let n = 0;
  const fresh = async (name: string): Promise<string> => {
    const d = join(work, `${name}-${n++}`);
    await mkdir(d);
    return d;
  };
  const ls = (image: string, cache: string, extra: string[] = []) => runCli(['ls', '-R', '--json', '--plain-http', '--cache-dir', cache, ...extra, `${reg.host}/${image}/`]);
  const fromStore = /debug: merged tree of sha256:[0-9a-f]{64} from the cache/;

  before(async () => {
    reg = await startRegistry({ mode: 'plain' });
    work = await makeTempDir('merged-tree-');
    await pushLayout(reg, 'edge', 'fixtures/edge:v1');
    await pushLayout(reg, 'mixed', 'fixtures/mixed:v1');
  });
  after(async () => {
    await reg?.stop();
    if (work) await removeDir(work);
  });

  for (const image of ['fixtures/edge:v1', 'fixtures/mixed:v1']) {
    test(`${image}: the second open names its nodes from the stored tree, with the same listing, inodes and link counts`, async () => {
      const cache = await fresh('cache');
      const first = await ls(image, cache, ['-vv']);
      assert.equal(first.code, 0, first.stderr);
      assert.doesNotMatch(first.stderr, fromStore);
      assert.equal(trees(cache).size, 1, 'one merged tree stored');
      const second = await ls(image, cache, ['-vv']);
      assert.equal(second.code, 0, second.stderr);
      assert.match(second.stderr, fromStore);
      assert.equal(second.stdout, first.stdout);
      // The edge image has whiteouts, an opaque directory and hardlinks: the listing shows each as merged.
      const listed = JSON.parse(second.stdout) as Array<{ path: string; nlink: number; ino: number }>;
      assert.ok(listed.length > 10);
    });
  }

  for (const [what, damage] of damages) {
    test(`${what} in the stored tree: merged again, the same listing, the record replaced`, async () => {
      const image = 'fixtures/edge:v1';
      const cache = await fresh('cache');
      const first = await ls(image, cache);
      assert.equal(first.code, 0, first.stderr);
      const good = trees(cache);
      rewriteTrees(cache, damage);
      const again = await ls(image, cache, ['-vv']);
      assert.equal(again.code, 0, again.stderr);
      assert.doesNotMatch(again.stderr, fromStore);
      assert.equal(again.stdout, first.stdout);
      assert.deepEqual(trees(cache), good, 'the record is rewritten from the merge');
    });
  }

  test('a tree naming a file its layer does not have, in order and checksum valid: listed from the tree, never read (ERR_CORRUPT_DATA)', async () => {
    // Whether each inode's entry is in its layer is checked when the entry is first needed:
    // a warm listing decodes no layer index. What only the layer has then fails, with a code.
    const image = 'fixtures/edge:v1';
    const cache = await fresh('cache');
    assert.equal((await ls(image, cache)).code, 0);
    // /etc/hostname becomes /etc/hostnamZ: it still sorts between its neighbours.
    rewriteTrees(cache, (d) => reseal(d, (body) => body.indexOf('\0hostname\0') + 8));
    const names = await runCli(['ls', '--plain-http', '--cache-dir', cache, `${reg.host}/${image}/etc`]);
    assert.equal(names.code, 0, names.stderr);
    assert.match(names.stdout, /^hostnamZ$/m);
    for (const args of [['cat'], ['ls', '--json']]) {
      const r = await runCli([...args, '--plain-http', '--cache-dir', cache, `${reg.host}/${image}/etc/hostnamZ`]);
      assert.equal(r.code, 6, r.stderr);
      assert.match(r.stderr, /ERR_CORRUPT_DATA.*the cached merged tree names \/etc\/hostnamZ, .*cache clear/);
      assert.equal(r.stdout, '');
    }
  });

  test('a tag moved to another manifest is listed as that manifest, not from the tree stored for the old one', async () => {
    const cache = await fresh('cache');
    const expected = await ls('fixtures/mixed:v1', await fresh('cache'));
    assert.equal(expected.code, 0, expected.stderr);
    await pushLayout(reg, 'edge', 'fixtures/moving:v1');
    const before = await ls('fixtures/moving:v1', cache);
    assert.equal(before.code, 0, before.stderr);
    assert.notEqual(before.stdout, expected.stdout);
    await pushLayout(reg, 'mixed', 'fixtures/moving:v1');
    const moved = await ls('fixtures/moving:v1', cache);
    assert.equal(moved.code, 0, moved.stderr);
    assert.equal(moved.stdout, expected.stdout);
    assert.equal(trees(cache).size, 2, 'one tree per manifest');
  });
});
