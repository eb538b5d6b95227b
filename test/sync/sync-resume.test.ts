// Issue 11: a sync killed half-way (SIGKILL: nothing of it runs to clean up) and run again
// completes with DEST equal to the oracle, no temporaries left, and fetches only what the
// first run had not cached; Ctrl-C cleans up itself and exits 130. The registry is slowed by
// the fault proxy (one 64 KiB range at a time, each delayed) so that there is a half-way.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeTempDir, removeDir, trackPid, untrackPid } from '../helpers/tmp.js';
import { runCli } from '../helpers/cli.js';
import { cliPath } from '../helpers/paths.js';
import { formatDiffs } from '../helpers/oracle.js';
import { startSyncWorld, diffFromOracle, temporariesIn, type SyncWorld } from './sync-dest-helpers.js';

describe('sync resumes after a crash (issue 11)', () => {
  let w: SyncWorld;
  let work: string;
  let config: string;
  let coldBytes = 0;
  before(async () => {
    work = await makeTempDir('sync-resume-');
    w = await startSyncWorld(work);
    config = join(work, 'config.toml');
    // Small ranges, one at a time: many requests, so a kill lands between them.
    await writeFile(config, 'max-range = "64K"\nmax-gap = "0"\nconcurrency = 1\n');
  });
  after(async () => {
    await w?.close();
    if (work) await removeDir(work);
  });
  const args = (dest: string, cache: string) => ['sync', '--plain-http', '--config', config, '--cache-dir', cache, `${w.proxy.host}/fixtures/sync:v1`, dest];

  /** Starts a sync, waits until it has fetched `fraction` of a cold sync's bytes, sends `signal`. */
  async function interrupted(dest: string, cache: string, signal: NodeJS.Signals, fraction: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
    w.proxy.rules.push({ match: { method: 'GET', hasRange: true }, action: 'delay', delayMs: 150 });
    const child = spawn(process.execPath, [cliPath, ...args(dest, cache)], { stdio: ['ignore', 'ignore', 'pipe'] });
    trackPid(child.pid!);
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => child.on('close', (code, sig) => res({ code, signal: sig })));
    try {
      const deadline = Date.now() + 60_000;
      while (w.proxy.stats.blobBytesToClient < coldBytes * fraction) {
        assert.ok(Date.now() < deadline, 'the sync never got half-way');
        assert.equal(child.exitCode, null, `the sync ended before it was interrupted: ${stderr}`);
        await new Promise((r) => setTimeout(r, 10));
      }
      // Past the delayed request's arrival: its chunks are being written (a file is half-done).
      await new Promise((r) => setTimeout(r, 60));
      child.kill(signal);
      return { ...(await exited), stderr };
    } finally {
      w.proxy.rules.length = 0;
      untrackPid(child.pid!);
    }
  }

  test('a cold sync, for the byte count a resumed one is held to', async () => {
    const dest = join(work, 'cold');
    w.proxy.resetStats();
    const r = await runCli(args(dest, join(work, 'cache-cold')));
    assert.equal(r.code, 0, r.stderr);
    coldBytes = w.proxy.stats.blobBytesToClient;
    assert.ok(coldBytes > 1_000_000, `cold sync fetched ${coldBytes}`);
  });

  test('killed by SIGKILL half-way, then run again: equals the oracle, no temporaries left, fetches only what the first run had not cached', async () => {
    assert.ok(coldBytes > 0, 'needs the cold sync');
    const dest = join(work, 'killed');
    const cache = join(work, 'cache-killed');
    w.proxy.resetStats();
    const killed = await interrupted(dest, cache, 'SIGKILL', 0.5);
    assert.equal(killed.signal, 'SIGKILL');
    const firstBytes = w.proxy.stats.blobBytesToClient;
    const left = await temporariesIn(dest);
    // Whatever the kill left, one more leftover for sure, planted: a temporary that is a
    // symlink out of DEST (removed, never followed); and a user's file whose name only looks
    // like ours (kept).
    const outside = join(work, 'outside');
    await mkdir(outside, { recursive: true });
    await writeFile(join(outside, 'precious'), 'keep me');
    await mkdir(join(dest, 'data'), { recursive: true });
    await symlink(outside, join(dest, 'data', '.sgtmp-0123456789abcdef01234567'));
    await writeFile(join(dest, 'data', '.sgtmp-notes'), 'mine');

    w.proxy.resetStats();
    const r = await runCli(args(dest, cache));
    assert.equal(r.code, 0, r.stderr);
    const secondBytes = w.proxy.stats.blobBytesToClient;
    const d = (await diffFromOracle(w.oracle.v1, dest)).filter((x) => x.path !== 'data/.sgtmp-notes' && x.path !== 'data');
    assert.deepEqual(d, [], formatDiffs(d));
    assert.deepEqual(await temporariesIn(dest), [], `left by the killed run: ${left.join(', ')}`);
    assert.equal(await readFile(join(outside, 'precious'), 'utf8'), 'keep me');
    assert.equal(await readFile(join(dest, 'data', '.sgtmp-notes'), 'utf8'), 'mine');
    assert.match(r.stderr, new RegExp(`${left.length + 1} temporaries of an interrupted sync removed`), `left by the kill: ${left.join(', ')}`);
    // The second run fetches what the first had not: together little more than one cold sync
    // (the first run's ranges in flight when it died, and the TOC again).
    assert.ok(secondBytes < coldBytes * 0.75, `second run fetched ${secondBytes} of ${coldBytes}`);
    console.log(`# resume: first run ${firstBytes} B (killed; left ${left.length} temporaries), second ${secondBytes} B, one cold sync ${coldBytes} B`);
    assert.ok(firstBytes + secondBytes <= coldBytes * 1.15 + 64 * 1024, `${firstBytes} + ${secondBytes} vs one cold sync ${coldBytes}`);
  });

  test('Ctrl-C half-way removes its temporaries and exits 130', async () => {
    assert.ok(coldBytes > 0, 'needs the cold sync');
    const dest = join(work, 'sigint');
    w.proxy.resetStats();
    const r = await interrupted(dest, join(work, 'cache-sigint'), 'SIGINT', 0.3);
    assert.equal(r.code, 130, r.stderr);
    assert.deepEqual(await temporariesIn(dest), []);
  });
});
