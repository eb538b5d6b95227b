// `sync --json` (issue 12 item 6): one JSON document on stdout whose fields say what the sync
// did — checked against the tree it wrote, the bytes a fault proxy counted, and `ls`/`info --json`.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { startRegistry, pushLayout, type TestRegistry } from '../helpers/registry.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';
import { runCli } from '../helpers/cli.js';
import type { SyncJson } from '../../src/cli/commands/sync.js';

/** What a tree holds, counted as sync counts: files by inode, further names of one as hardlinks. */
async function census(root: string): Promise<{ directories: number; files: number; hardlinks: number; symlinks: number; bytes: number }> {
  const c = { directories: 0, files: 0, hardlinks: 0, symlinks: 0, bytes: 0 };
  const inodes = new Set<number>();
  const visit = async (p: string): Promise<void> => {
    const st = await lstat(p);
    if (st.isDirectory()) {
      c.directories++;
      for (const name of await readdir(p)) await visit(join(p, name));
    } else if (st.isSymbolicLink()) c.symlinks++;
    else if (st.isFile()) {
      if (inodes.has(st.ino)) c.hardlinks++;
      else {
        inodes.add(st.ino);
        c.files++;
        c.bytes += st.size;
      }
    }
  };
  await visit(root);
  return c;
}

describe('sync --json', () => {
  let reg: TestRegistry;
  let proxy: FaultProxy;
  let work: string;
  before(async () => {
    reg = await startRegistry({ mode: 'plain' });
    await pushLayout(reg, 'syncv1', 'f/sync:v1', { tag: 'v1' });
    await pushLayout(reg, 'syncv2', 'f/sync:v2', { tag: 'v2' });
    proxy = await startFaultProxy(reg);
    work = await makeTempDir('cli-sync-json-');
  });
  after(async () => {
    await proxy?.close();
    await reg?.stop();
    if (work) await removeDir(work);
  });
  const cli = (args: string[]) => runCli([...args, '--plain-http', '--cache-dir', join(work, 'cache')]);

  test('the summary is one JSON document on stdout, and it says what the sync did', async () => {
    const dest = join(work, 'dest');
    proxy.resetStats();
    const r = await cli(['sync', '--json', `${proxy.host}/f/sync:v1`, dest]);
    assert.equal(r.code, 0, r.stderr);
    const s = JSON.parse(r.stdout) as SyncJson;
    assert.doesNotMatch(r.stderr, /synced|fetched/, 'no prose summary besides the document');
    const tree = await census(dest);
    assert.equal(s.reference, `${proxy.host}/f/sync:v1`);
    assert.equal(s.path, '/');
    assert.equal(s.target, dest);
    assert.deepEqual(
      [s.directories, s.files, s.hardlinks, s.symlinks, s.specials, s.bytesWritten],
      [tree.directories, tree.files, tree.hardlinks, tree.symlinks, 0, tree.bytes],
    );
    assert.equal(s.fetched.bytes, proxy.stats.blobBytesToClient);
    assert.ok(s.fetched.requests >= proxy.stats.blobRequests && s.fetched.requests <= proxy.stats.requests, JSON.stringify(s.fetched));
    assert.equal(s.dest?.unchanged, 0);
    assert.equal(typeof s.seconds, 'number');

    // ls and info say the same about the image.
    const info = await cli(['info', '--json', `${reg.host}/f/sync:v1`]);
    assert.equal(info.code, 0, info.stderr);
    assert.equal((JSON.parse(info.stdout) as { compressedSize: number }).compressedSize, s.fullLayerBytes);
    const ls = await cli(['ls', '-R', '--json', `${reg.host}/f/sync:v1`]);
    assert.equal(ls.code, 0, ls.stderr);
    const entries = JSON.parse(ls.stdout) as Array<{ type: string }>;
    assert.equal(entries.filter((e) => e.type === 'reg').length, s.files + s.hardlinks);
    assert.equal(entries.filter((e) => e.type === 'dir').length, s.directories - 1, 'the root is not listed');

    // v2 over it: the reuse counts of issue 11.
    proxy.resetStats();
    const again = await cli(['sync', '--json', '--quiet', `${proxy.host}/f/sync:v2`, dest]);
    assert.equal(again.code, 0, again.stderr);
    const s2 = JSON.parse(again.stdout) as SyncJson;
    // sync_tars.py: f03 and f07 changed, new.bin added (fetched); bin/tool's mode only (reused);
    // f11 is no longer in the image (kept without --delete); the other 15 files unchanged.
    assert.deepEqual([s2.dest?.unchanged, s2.dest?.reused, s2.dest?.extra, s2.dest?.deleted], [15, 1, 1, 0]);
    assert.equal(s2.fetched.bytes, proxy.stats.blobBytesToClient);
    assert.ok(s2.savedPercent > 0 && s2.savedPercent <= 100);
    assert.ok(s2.fetched.bytes < s2.fullLayerBytes);
  });

  test('--dry-run --json: the plan as one document, nothing written', async () => {
    const dest = join(work, 'dry');
    const r = await cli(['sync', '--json', '-n', `${reg.host}/f/sync:v1`, dest]);
    assert.equal(r.code, 0, r.stderr);
    const plan = JSON.parse(r.stdout) as { dryRun: boolean; items: Array<{ action: string }> };
    assert.equal(plan.dryRun, true);
    assert.ok(plan.items.filter((i) => i.action === 'fetch').length >= 19);
    await assert.rejects(lstat(dest));
  });

  // Issue 13: a dry run's metrics file would count only the TOCs read, as if the plan fetched nothing.
  test('--dry-run with --metrics-file is a usage error, and neither file nor DEST is made', async () => {
    const dest = join(work, 'dry-metrics');
    const metrics = join(work, 'dry.prom');
    const r = await cli(['sync', '-n', '--metrics-file', metrics, `${reg.host}/f/sync:v1`, dest]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /ERR_USAGE/);
    await assert.rejects(lstat(metrics));
    await assert.rejects(lstat(dest));
  });
});
