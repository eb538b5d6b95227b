// `mount --json` (issue 12 item 6): once the mount answers, one JSON document on stdout saying
// which process serves it and where it logs — checked against the real mount, its record,
// its process and its log (where -v's request lines land, from the background process).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { pushLayout, startRegistry, type TestRegistry } from '../helpers/registry.js';
import { makeTempDir, removeDir, trackPid, untrackPid } from '../helpers/tmp.js';
import { runCli } from '../helpers/cli.js';
import { cliPath } from '../helpers/paths.js';
import { forceDown, isAlive, isMounted, run, waitFor, type Mount } from '../fuse/mount-helpers.js';
import { recordPath, type MountRecord } from '../../src/mount/mount-records.js';
import type { MountJson } from '../../src/cli/commands/mount.js';

let work: string;
let reg: TestRegistry;
const started: Mount[] = [];
before(async () => {
  work = await makeTempDir('cli-mount-json-');
  reg = await startRegistry({ mode: 'plain' });
  await pushLayout(reg, 'edge', 'fixtures/edge:v1');
});
after(async () => {
  for (const m of started.splice(0)) await forceDown(m);
  await reg?.stop();
  if (work) await removeDir(work);
});

describe('mount --json', () => {
  test('-d: {reference, mountpoint, pid, detached, logFile} once the mount serves; -v logs requests there', async () => {
    const mnt = join(work, 'mnt-d');
    const cacheDir = join(work, 'cache-d');
    await mkdir(mnt);
    const r = await runCli(['mount', '-d', '--json', '-v', '--plain-http', '--cache-dir', cacheDir, `${reg.host}/fixtures/edge:v1`, mnt]);
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(r.stdout) as MountJson;
    trackPid(doc.pid);
    started.push({ dir: mnt, cacheDir, pid: doc.pid, stderr: () => '' });
    assert.deepEqual(Object.keys(doc).sort(), ['detached', 'logFile', 'mountpoint', 'pid', 'reference']);
    assert.equal(doc.reference, `${reg.host}/fixtures/edge:v1`);
    assert.equal(doc.mountpoint, mnt);
    assert.equal(doc.detached, true);
    assert.equal(r.stderr, '', 'no prose beside the document');
    // The document is true: that process serves that mount, logging to that file.
    assert.ok(isAlive(doc.pid));
    assert.ok(doc.pid !== process.pid);
    assert.ok(isMounted(mnt));
    const rec = JSON.parse(readFileSync(recordPath(cacheDir, mnt), 'utf8')) as MountRecord;
    assert.equal(rec.pid, doc.pid);
    const cat = await run('cat', [join(mnt, 'etc/hostname')]);
    assert.equal(cat.stdout, 'stargz-edge\n');
    assert.ok(doc.logFile !== null && existsSync(doc.logFile));
    await waitFor('request lines in the log', () => /info: GET 127\.0\.0\.1:\d+ \/v2\/fixtures\/edge\/blobs\/sha256:\S+ bytes=\d+-\d+ 206 \d+ bytes/.test(readFileSync(doc.logFile!, 'utf8')));

    const down = await runCli(['umount', mnt]);
    assert.equal(down.code, 0, down.stderr);
    await waitFor('the server to exit', () => !isAlive(doc.pid));
    untrackPid(doc.pid);
  });

  test('in the foreground: the document names this process and no log file', async () => {
    const mnt = join(work, 'mnt-fg');
    const cacheDir = join(work, 'cache-fg');
    await mkdir(mnt);
    const child = spawn(process.execPath, [cliPath, 'mount', '--json', '--plain-http', '--cache-dir', cacheDir, `${reg.host}/fixtures/edge:v1`, mnt], { stdio: ['ignore', 'pipe', 'pipe'] });
    trackPid(child.pid!);
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.once('exit', (code, signal) => r({ code, signal })));
    started.push({ dir: mnt, cacheDir, pid: child.pid!, child, exited, stderr: () => '' });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.resume();
    let doc: MountJson | undefined;
    await waitFor('the document', () => {
      try {
        doc = JSON.parse(stdout) as MountJson;
        return true;
      } catch {
        return false;
      }
    }, 60_000);
    assert.deepEqual(doc, { reference: `${reg.host}/fixtures/edge:v1`, mountpoint: mnt, pid: child.pid, detached: false, logFile: null });
    assert.ok(isMounted(mnt));
    child.kill('SIGTERM');
    const end = await exited;
    assert.equal(end.code, 0);
    assert.ok(!isMounted(mnt));
    untrackPid(child.pid!);
  });
});
