// Issue 11: `sync` over a DEST that already holds a version of the path reuses what is
// there. Through the CLI, against a real registry behind a byte-counting proxy, compared
// with the umoci oracle. Fixture: syncv1/syncv2 (test/fixtures/sync_tars.py).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile, stat, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { makeTempDir, removeDir } from '../helpers/tmp.js';
import { runCli } from '../helpers/cli.js';
import { formatDiffs } from '../helpers/oracle.js';
import { startSyncWorld, diffFromOracle, treeState, temporariesIn, type SyncWorld } from './sync-dest-helpers.js';

describe('sync reuses what DEST has (issue 11)', () => {
  let w: SyncWorld;
  let work: string;
  let n = 0;
  before(async () => {
    work = await makeTempDir('sync-reuse-');
    w = await startSyncWorld(work);
  });
  after(async () => {
    await w?.close();
    if (work) await removeDir(work);
  });
  /** Every run gets an empty cache unless told otherwise: what DEST holds is all there is. */
  const sync = (tag: string, dest: string, extra: string[] = [], cache = join(work, `cache-${n++}`)) =>
    runCli(['sync', '--plain-http', '--cache-dir', cache, ...extra, `${w.proxy.host}/fixtures/sync:${tag}`, dest]);
  /** DEST as a sync of v1 left it (with its own cache, not the next run's). */
  const v1Dest = async (name: string): Promise<string> => {
    const dest = join(work, name);
    const r = await sync('v1', dest);
    assert.equal(r.code, 0, r.stderr);
    return dest;
  };

  test('v1 -> v2 over an existing DEST with an empty cache fetches the TOC and the changed files only; with --delete DEST equals the v2 oracle', async () => {
    const dest = await v1Dest('delta');
    w.proxy.resetStats();
    const r = await sync('v2', dest, ['--delete']);
    assert.equal(r.code, 0, r.stderr);
    const d = await diffFromOracle(w.oracle.v2, dest);
    assert.deepEqual(d, [], formatDiffs(d));
    // Changed: f03 (200000 B, same size and mtime as before), new.bin (50000 B) and one 64 KiB
    // chunk of f07 (the other four come from the local f07): random bytes, so ~315 KB of
    // chunks, plus the TOC tail. A full pull is ~1.5 MB.
    const fetched = w.proxy.stats.blobBytesToClient;
    assert.ok(fetched < 315_536 + 64 * 1024, `fetched ${fetched} of ${w.layerBytes.v2}`);
    assert.ok(fetched > 300_000, `fetched ${fetched}: the changed chunks must have been fetched`);
    assert.match(r.stderr, /files: 3 fetched \(1 of them completed from local chunks, 229\.0 KiB\), \d+ reused from DEST \(metadata set\), \d+ unchanged/);
    assert.match(r.stderr, /1 extra entries deleted/);
    assert.deepEqual(await temporariesIn(dest), []);
  });

  test('without --delete the extra entry stays and the summary counts it', async () => {
    const dest = await v1Dest('keep');
    const r = await sync('v2', dest);
    assert.equal(r.code, 0, r.stderr);
    assert.ok((await stat(join(dest, 'data/f11.bin'))).isFile());
    assert.match(r.stderr, /1 extra entries kept in DEST/);
    const d = (await diffFromOracle(w.oracle.v2, dest)).filter((x) => x.path !== 'data/f11.bin' && x.path !== 'data');
    assert.deepEqual(d, [], formatDiffs(d));
  });

  test('a re-sync onto an identical DEST fetches no chunk and writes nothing (inodes, mtimes and ctimes of every entry unchanged)', async () => {
    const dest = join(work, 'same');
    const first = await sync('v2', dest);
    assert.equal(first.code, 0, first.stderr);
    const before = await treeState(dest, true, true);
    await new Promise((r) => setTimeout(r, 20)); // a write now would give a later ctime
    for (const extra of [[], ['--quick']]) {
      w.proxy.resetStats();
      const r = await sync('v2', dest, extra);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(await treeState(dest, true, true), before, `after ${extra.join(' ') || 'default'} re-sync`);
      assert.match(r.stderr, /0 B written/);
      assert.match(r.stderr, /files: 0 fetched \(0 of them [^)]*\), 0 reused from DEST \(metadata set\), \d+ unchanged/);
      const tocOnly = 64 * 1024;
      assert.ok(w.proxy.stats.blobBytesToClient <= tocOnly, `fetched ${w.proxy.stats.blobBytesToClient}`);
    }
  });

  test('metadata is made exact on reused files: a wrong mode and mtime are corrected without fetching', async () => {
    const dest = join(work, 'meta');
    assert.equal((await sync('v2', dest)).code, 0);
    await import('node:fs/promises').then((f) => f.chmod(join(dest, 'data/f00.bin'), 0o600));
    await utimes(join(dest, 'data/f01.bin'), 1000, 1000);
    w.proxy.resetStats();
    const r = await sync('v2', dest);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /files: 0 fetched \(0 of them [^)]*\), 2 reused from DEST/);
    const d = await diffFromOracle(w.oracle.v2, dest);
    assert.deepEqual(d, [], formatDiffs(d));
  });

  test('the default check reads the bytes: a file changed behind the same size and mtime is fetched again; --quick trusts them', async () => {
    const dest = join(work, 'tamper');
    assert.equal((await sync('v2', dest)).code, 0);
    const p = join(dest, 'data/f00.bin');
    const st = await stat(p);
    const bytes = await readFile(p);
    bytes[1000] = bytes[1000]! ^ 0xff;
    await writeFile(p, bytes);
    await utimes(p, st.atime, st.mtime);
    const quick = await sync('v2', dest, ['--quick']);
    assert.equal(quick.code, 0, quick.stderr);
    assert.notDeepEqual(await readFile(p), await readFile(join(w.oracle.v2, 'data/f00.bin')));
    const r = await sync('v2', dest);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /files: 1 fetched \(1 of them completed from local chunks/);
    const d = await diffFromOracle(w.oracle.v2, dest);
    assert.deepEqual(d, [], formatDiffs(d));
  });
});
