// SIGTERM to a foreground mount while a read hangs on a trickling registry (issue 8): the
// mount must come down at once — the hanging fetch aborted, the read answered, unmounted —
// not wait for the read deadline or the transfer.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { startRegistry, pushLayout, type TestRegistry } from '../helpers/registry.js';
import { startHostileServer, type HostileServer } from '../helpers/hostile-server.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';
import { BIG_LAYER, big2Chunks } from './hostile-fixtures.js';
import { Mounts, isMounted } from '../fuse/mount-helpers.js';

describe('mount under a hostile server', () => {
  let reg: TestRegistry;
  let server: HostileServer;
  let work: string;
  const mounts = new Mounts();

  before(async () => {
    reg = await startRegistry({ mode: 'plain' });
    await pushLayout(reg, 'edge', 'fixtures/edge:v1');
    work = await makeTempDir('hostile-mount-');
    const { offsets, tailStart } = big2Chunks();
    // Chunk reads of big2 trickle; the footer/TOC tail read (mounting) does not.
    server = await startHostileServer(reg.url, [
      {
        match: { pathIncludes: BIG_LAYER, hasRange: true, rangeStartAtLeast: offsets[0]!, rangeStartBelow: tailStart },
        action: 'trickle',
        intervalMs: 500,
      },
    ]);
  });
  after(async () => {
    await mounts.cleanup();
    await server?.close();
    await reg?.stop();
    if (work) await removeDir(work);
  });

  test('SIGTERM during a hanging read unmounts and exits within 3 s', async () => {
    const mnt = join(work, 'mnt');
    await mkdir(mnt);
    const m = await mounts.foreground(`${server.host}/fixtures/edge:v1`, mnt, join(work, 'cache'), ['--prefetch', 'none']);
    const reader = spawn('cat', [join(mnt, 'bin/big2')], { stdio: ['ignore', 'ignore', 'pipe'] });
    const readerDone = new Promise<number | null>((r) => reader.once('close', (code) => r(code)));
    await server.waitForHit(0);
    await new Promise((r) => setTimeout(r, 300));
    const t0 = Date.now();
    process.kill(m.pid, 'SIGTERM');
    const exit = await Promise.race([m.exited!, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 8000))]);
    const ms = Date.now() - t0;
    assert.notEqual(exit, 'hung', `still running 8 s after SIGTERM: ${m.stderr()}`);
    assert.ok(ms < 3000, `exited ${ms} ms after SIGTERM: ${m.stderr()}`);
    assert.equal((exit as { code: number | null }).code, 0, m.stderr());
    assert.equal(isMounted(mnt), false, 'still mounted');
    assert.match(m.stderr(), /unmounted /);
    assert.notEqual(await readerDone, 0, 'the hanging read failed rather than returning short data');
  });
});
