// `sync --no-cache` (issue 13): a one-off sync writes each chunk once, to DEST, and none to the
// disk cache; a chunk the cache already has is still read from it. Run as a user runs it, against
// a real registry, the result compared with what skopeo + umoci unpack.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { startRegistry, pushLayout, type TestRegistry } from '../helpers/registry.js';
import { oracleUnpack, compareTrees, formatDiffs } from '../helpers/oracle.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';
import { runCli } from '../helpers/cli.js';
import type { SyncJson } from '../../src/cli/commands/sync.js';

/** What the cache holds, as `cache info --json` says, and the chunk files under chunks/. */
async function cacheContents(dir: string): Promise<{ chunks: number; chunkBytes: number; chunkFiles: number }> {
  const r = await runCli(['cache', 'info', '--json', '--cache-dir', dir]);
  assert.equal(r.code, 0, r.stderr);
  const info = JSON.parse(r.stdout) as { chunks: number; chunkBytes: number };
  let chunkFiles = 0;
  for (const sub of await readdir(join(dir, 'chunks')).catch(() => [])) chunkFiles += (await readdir(join(dir, 'chunks', sub))).length;
  return { chunks: info.chunks, chunkBytes: info.chunkBytes, chunkFiles };
}

const suiteStart = Math.floor(Date.now() / 1000) - 5;

describe('sync --no-cache', () => {
  let reg: TestRegistry;
  let work: string;
  let oracle: string;
  before(async () => {
    reg = await startRegistry({ mode: 'plain' });
    work = await makeTempDir('nocache-');
    await pushLayout(reg, 'edge', 'fixtures/edge:v1');
    oracle = await oracleUnpack(reg, 'fixtures/edge:v1', join(work, 'oracle'));
  });
  after(async () => {
    await reg?.stop();
    if (work) await removeDir(work);
  });

  const sync = async (cache: string, dest: string, extra: string[]): Promise<SyncJson> => {
    const r = await runCli(['sync', '--json', '--plain-http', '--cache-dir', cache, ...extra, `${reg.host}/fixtures/edge:v1`, dest]);
    assert.equal(r.code, 0, r.stderr);
    // Directories no layer has are made by umoci, stamped with its clock (as sync-oracle.test.ts).
    const diffs = (await compareTrees(oracle, dest, {})).filter((d) => !(d.field === 'mtime' && typeof d.expected === 'number' && d.expected >= suiteStart));
    assert.deepEqual(diffs, [], formatDiffs(diffs));
    return JSON.parse(r.stdout) as SyncJson;
  };

  test('leaves the cache without chunk data, and DEST equal to the unpacked image', async () => {
    const cache = join(work, 'cache-none');
    const doc = await sync(cache, join(work, 'dest-none'), ['--no-cache']);
    assert.ok(doc.fetched.bytes > 0 && doc.bytesWritten > 0, 'the chunks were fetched and written to DEST');
    assert.deepEqual(await cacheContents(cache), { chunks: 0, chunkBytes: 0, chunkFiles: 0 });
  });

  test('still reads what a cached sync left, and without the flag chunks are cached', async () => {
    const cache = join(work, 'cache-warm');
    await sync(cache, join(work, 'dest-cached'), []);
    const before = await cacheContents(cache);
    assert.ok(before.chunks > 0 && before.chunkBytes > 0, 'a default sync fills the cache');
    const doc = await sync(cache, join(work, 'dest-warm'), ['--no-cache']);
    assert.ok(doc.fetched.chunksFromCache > 0, 'chunks came from the cache');
    assert.equal(doc.fetched.bytes, 0, 'no blob byte fetched: every chunk came from the cache');
    assert.deepEqual(await cacheContents(cache), before, 'nothing added or removed');
  });
});
