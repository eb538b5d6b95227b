// `stargz-get sync` run as a user runs it, against a real registry, compared entry by
// entry with what skopeo + umoci unpack from the same image.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, readdir, lstat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startRegistry, pushLayout, type TestRegistry } from '../helpers/registry.js';
import { oracleUnpack, compareTrees, formatDiffs, type TreeDiff } from '../helpers/oracle.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';
import { runCli } from '../helpers/cli.js';
import { cliPath } from '../helpers/paths.js';
import { spawn } from 'node:child_process';

function runShell(script: string, args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', script, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

const CMP = {};
const suiteStart = Math.floor(Date.now() / 1000) - 5;

/**
 * Directories no layer has an entry for are created by umoci at unpack time, and creating
 * them also stamps their parent with the unpack time. Those mtimes say when the oracle
 * ran, not what the image holds, so an mtime the oracle took from its own clock is not
 * compared. Every other difference counts.
 */
async function diff(expected: string, actual: string): Promise<TreeDiff[]> {
  const all = await compareTrees(expected, actual, CMP);
  return all.filter((d) => !(d.field === 'mtime' && typeof d.expected === 'number' && d.expected >= suiteStart));
}

describe('sync equals the umoci unpack', () => {
  let reg: TestRegistry;
  let work: string;
  const oracle: Record<string, string> = {};

  before(async () => {
    reg = await startRegistry({ mode: 'plain' });
    work = await makeTempDir('sync-');
    for (const name of ['edge', 'legacy', 'mixed', 'zstd']) {
      await pushLayout(reg, name, `fixtures/${name}:v1`);
      oracle[name] = await oracleUnpack(reg, `fixtures/${name}:v1`, join(work, 'oracle-' + name));
    }
  });
  after(async () => {
    await reg?.stop();
    if (work) await removeDir(work);
  });

  const sync = (args: string[]) => runCli(['sync', '--plain-http', '--cache-dir', join(work, 'cache-' + args[0]!.replace(/\W/g, '_')), ...args]);

  for (const name of ['edge', 'legacy', 'mixed', 'zstd']) {
    test(`whole ${name} image`, async () => {
      const dest = join(work, `whole-${name}`);
      const r = await sync([`${reg.host}/fixtures/${name}:v1`, dest]);
      assert.equal(r.code, 0, r.stderr);
      const diffs = await diff(oracle[name]!, dest);
      assert.deepEqual(diffs, [], formatDiffs(diffs));
      if (name === 'mixed') assert.match(r.stderr, /not eStargz: fetching it whole/);
    });
  }

  test('whole edge image with few descriptors: directory descriptors are closed and reopened beneath DEST', async () => {
    // ulimit -n 128 gives a budget of 16 directory descriptors, fewer than edge's 18 directories.
    const dest = join(work, 'whole-edge-fewfds');
    const args = ['sync', '--plain-http', '--cache-dir', join(work, 'cache-fewfds'), `${reg.host}/fixtures/edge:v1`, dest];
    const r = await runShell(`ulimit -n 128; exec "$0" "$@"`, [process.execPath, cliPath, ...args]);
    assert.equal(r.code, 0, r.stderr);
    const diffs = await diff(oracle.edge!, dest);
    assert.deepEqual(diffs, [], formatDiffs(diffs));
  });

  test('a directory: etc/ becomes DEST', async () => {
    const dest = join(work, 'etc-out');
    const r = await sync([`${reg.host}/fixtures/edge:v1/etc`, dest]);
    assert.equal(r.code, 0, r.stderr);
    const diffs = await diff(join(oracle.edge!, 'etc'), dest);
    assert.deepEqual(diffs, [], formatDiffs(diffs));
    assert.match(r.stderr, /fetched .* saved/);
  });

  test('a file lands in an existing directory, or becomes DEST', async () => {
    const dir = join(work, 'one-file');
    await mkdir(dir);
    let r = await sync([`${reg.host}/fixtures/edge:v1/etc/passwd`, dir]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await readdir(dir), ['passwd']);
    assert.equal(await readFile(join(dir, 'passwd'), 'utf8'), await readFile(join(oracle.edge!, 'etc/passwd'), 'utf8'));
    const renamed = join(work, 'renamed-passwd');
    r = await sync([`${reg.host}/fixtures/edge:v1/etc/passwd`, renamed]);
    assert.equal(r.code, 0, r.stderr);
    const st = await lstat(renamed);
    assert.ok(st.isFile());
    assert.equal(st.mode & 0o7777, 0o644);
  });

  test('a multi-chunk file and its hardlink; a symlink stays a symlink', async () => {
    const dest = join(work, 'bin-out');
    const r = await sync([`${reg.host}/fixtures/edge:v1/bin`, dest]);
    assert.equal(r.code, 0, r.stderr);
    const diffs = await diff(join(oracle.edge!, 'bin'), dest);
    assert.deepEqual(diffs, [], formatDiffs(diffs));
    const [a, b] = await Promise.all([lstat(join(dest, 'tool')), lstat(join(dest, 'tool-hardlink'))]);
    assert.equal(a.ino, b.ino);
    assert.ok((await lstat(join(dest, 'sh'))).isSymbolicLink());
  });

  test('syncing over an earlier result replaces what changed and never follows planted symlinks', async () => {
    const dest = join(work, 'resync');
    let r = await sync([`${reg.host}/fixtures/edge:v1/etc`, dest]);
    assert.equal(r.code, 0, r.stderr);
    // A planted symlink where a file goes must be replaced, not written through.
    const outside = join(work, 'outside-target');
    await writeFile(outside, 'untouched');
    const { symlink, rm } = await import('node:fs/promises');
    await rm(join(dest, 'hostname'));
    await symlink(outside, join(dest, 'hostname'));
    r = await sync([`${reg.host}/fixtures/edge:v1/etc`, dest]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await readFile(outside, 'utf8'), 'untouched');
    const diffs = await diff(join(oracle.edge!, 'etc'), dest);
    assert.deepEqual(diffs, [], formatDiffs(diffs));
  });

  test('a path that is not in the image: ERR_PATH_NOT_FOUND, exit 3, nothing written', async () => {
    const dest = join(work, 'missing-out');
    const r = await sync([`${reg.host}/fixtures/edge:v1/etc/nope`, dest]);
    assert.equal(r.code, 3);
    assert.match(r.stderr, /ERR_PATH_NOT_FOUND/);
    await assert.rejects(lstat(dest));
  });

  test('a whited-out path is not found', async () => {
    const r = await sync([`${reg.host}/fixtures/edge:v1/gone/file`, join(work, 'wh')]);
    assert.equal(r.code, 3, r.stderr);
  });
});
