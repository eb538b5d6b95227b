// Issue 11: `sync --delete` makes DEST equal the path (never following a symlink DEST holds
// out of DEST), and `--dry-run` says what a sync would do and changes nothing. Through the
// CLI, against a real registry behind a byte-counting proxy, compared with the umoci oracle.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, copyFile, link, mkdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeTempDir, removeDir } from '../helpers/tmp.js';
import { runCli } from '../helpers/cli.js';
import { formatDiffs } from '../helpers/oracle.js';
import { startSyncWorld, diffFromOracle, treeState, type SyncWorld } from './sync-dest-helpers.js';

describe('sync --delete and --dry-run (issue 11)', () => {
  let w: SyncWorld;
  let work: string;
  let n = 0;
  before(async () => {
    work = await makeTempDir('sync-delete-');
    w = await startSyncWorld(work);
  });
  after(async () => {
    await w?.close();
    if (work) await removeDir(work);
  });
  const sync = (tag: string, dest: string, extra: string[] = []) =>
    runCli(['sync', '--plain-http', '--cache-dir', join(work, `cache-${n++}`), ...extra, `${w.proxy.host}/fixtures/sync:${tag}`, dest]);
  const v1Dest = async (name: string): Promise<string> => {
    const dest = join(work, name);
    const r = await sync('v1', dest);
    assert.equal(r.code, 0, r.stderr);
    return dest;
  };
  /** A directory outside DEST that planted symlinks point into: it must come out untouched. */
  const outsideDir = async (name: string): Promise<string> => {
    const dir = join(work, name);
    await mkdir(join(dir, 'sub'), { recursive: true });
    await writeFile(join(dir, 'precious'), 'keep me');
    await writeFile(join(dir, 'sub', 'cur'), 'also mine');
    return dir;
  };

  test('--delete removes what the path lacks and never follows a planted symlink out of DEST', async () => {
    const dest = await v1Dest('delete');
    const outside = await outsideDir('outside-delete');
    const outsideBefore = await treeState(outside, true);
    await symlink(outside, join(dest, 'data', 'evil')); // extra entry: a symlink to a directory outside
    await mkdir(join(dest, 'extra', 'deep'), { recursive: true }); // extra directory with a symlink inside
    await symlink(join(outside, 'precious'), join(dest, 'extra', 'deep', 'to-precious'));
    await rm(join(dest, 'link'), { recursive: true }); // an image directory that DEST has as a symlink out
    await symlink(join(outside, 'sub'), join(dest, 'link'));
    const r = await sync('v2', dest, ['--delete']);
    assert.equal(r.code, 0, r.stderr);
    const d = await diffFromOracle(w.oracle.v2, dest);
    assert.deepEqual(d, [], formatDiffs(d));
    assert.deepEqual(await treeState(outside, true), outsideBefore, 'the directory outside DEST changed');
    // data/f11.bin, data/evil, extra and the oracle-less bookkeeping of the v1 TOC are gone.
    assert.match(r.stderr, /\d+ extra entries deleted/);
  });

  test('a file of DEST hardlinked from outside DEST is replaced, not reused: the outside inode keeps its metadata', async () => {
    const dest = await v1Dest('outside-link');
    const outside = await outsideDir('outside-link-dir');
    const mine = join(outside, 'f00-copy');
    await copyFile(join(w.oracle.v2, 'data/f00.bin'), mine); // the very bytes v2 wants
    await chmod(mine, 0o600);
    await rm(join(dest, 'data/f00.bin'));
    await link(mine, join(dest, 'data/f00.bin'));
    const before = await treeState(outside, true);
    const r = await sync('v2', dest, ['--delete']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await treeState(outside, true), before, 'the inode outside DEST changed');
    const d = await diffFromOracle(w.oracle.v2, dest);
    assert.deepEqual(d, [], formatDiffs(d));
  });

  test('--dry-run prints what would be fetched, written and deleted, changes nothing and fetches no chunk', async () => {
    const dest = await v1Dest('dry');
    await writeFile(join(dest, 'extra-file'), 'extra');
    await writeFile(join(dest, 'data', '.sgtmp-00112233445566778899aabb'), 'leftover');
    const before = await treeState(dest, true, true);
    w.proxy.resetStats();
    const r = await sync('v2', dest, ['--dry-run', '--delete']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await treeState(dest, true, true), before, 'DEST changed under --dry-run');
    // The manifest, config and the TOC tail: no chunk.
    assert.ok(w.proxy.stats.blobBytesToClient <= 64 * 1024, `fetched ${w.proxy.stats.blobBytesToClient}`);
    const lines = r.stdout.split('\n');
    for (const f of ['data/f03.bin', 'data/f07.bin', 'data/new.bin']) assert.ok(lines.some((l) => l.startsWith('fetch') && l.includes(` ${f} `)), `${f} not fetched:\n${r.stdout}`);
    assert.ok(!lines.some((l) => l.startsWith('fetch') && l.includes('f00.bin')), r.stdout);
    for (const f of ['data/f11.bin', 'extra-file', 'data/.sgtmp-00112233445566778899aabb']) assert.ok(lines.includes(`delete ${f}`), `${f} not deleted:\n${r.stdout}`);
    assert.ok(lines.includes('update bin/tool'), r.stdout);
    assert.ok(lines.includes('create link/cur'), r.stdout);
    assert.match(r.stderr, /dry run, nothing changed: .* 3 files fetched/);

    // Without --delete the extras are reported as kept; a DEST that does not exist is not made.
    const keep = await sync('v2', dest, ['--dry-run']);
    assert.equal(keep.code, 0, keep.stderr);
    assert.ok(keep.stdout.split('\n').includes('extra  data/f11.bin'), keep.stdout);
    const none = join(work, 'nothing-here');
    const fresh = await sync('v2', none, ['-n']);
    assert.equal(fresh.code, 0, fresh.stderr);
    assert.equal(await stat(none).catch(() => undefined), undefined);
    assert.match(fresh.stderr, /19 files fetched/);
  });
});
