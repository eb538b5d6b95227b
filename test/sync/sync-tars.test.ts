// Issue 8: plain tar+gzip layers as real tools write them (test/fixtures/tars, made by
// make-tars.sh with GNU tar, Python tarfile and git archive), each pushed as a one-layer
// image: `sync` equals umoci's unpack entry by entry, a sparse file's holes stay holes in
// DEST, and `ls` reports the real sizes and the exact xattr bytes.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, readFile, stat } from 'node:fs/promises';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { oracleUnpack, compareTrees, formatDiffs, type TreeDiff } from '../helpers/oracle.js';
import { pushCraftedImage, writeLayout } from '../helpers/craft-image.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';
import { runCli } from '../helpers/cli.js';
import { fixturesDir } from '../helpers/paths.js';

const FIXTURES = ['gnu', 'posix', 'sparse-0.0', 'sparse-0.1', 'sparse-1.0', 'python-pax', 'python-trailing', 'python-gnu', 'python-ustar', 'python-v7', 'git'];
/**
 * umoci 0.4.7 stops with "unknown typeflag" on old GNU sparse entries ('S', which GNU tar and
 * Go's archive/tar expand) and on PAX global headers ('g', which Go reads and skips): for
 * those images GNU tar's own extraction is the oracle.
 */
const UMOCI_REFUSES = new Set(['gnu', 'python-pax', 'git']);
const SPARSE = ['gnu', 'sparse-0.0', 'sparse-0.1', 'sparse-1.0'];
const MiB = 1024 * 1024;
const exec = promisify(execFile);
const suiteStart = Math.floor(Date.now() / 1000) - 5;

async function gnuTarExtract(file: string, dir: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  await exec('tar', ['--numeric-owner', '--same-owner', '--xattrs', '--xattrs-include=*', '-xpzf', file, '-C', dir]);
  return dir;
}

/** Directories without a tar entry get umoci's clock as mtime: not the image's, not compared. */
async function diff(expected: string, actual: string): Promise<TreeDiff[]> {
  const all = await compareTrees(expected, actual, {});
  return all.filter((d) => !(d.field === 'mtime' && typeof d.expected === 'number' && d.expected >= suiteStart));
}

describe('sync of plain layers written by GNU tar, Python tarfile and git archive equals umoci', () => {
  let reg: TestRegistry;
  let work: string;
  const oracle: Record<string, string> = {};

  before(async () => {
    reg = await startRegistry({ mode: 'plain' });
    work = await makeTempDir('sync-tars-');
    for (const name of FIXTURES) {
      const file = join(fixturesDir, 'tars', `${name}.tar.gz`);
      const layout = await writeLayout(join(work, 'layout-' + name), { layers: [{ blob: await readFile(file) }] });
      await pushCraftedImage(reg, layout, `tars/${name}:v1`);
      if (UMOCI_REFUSES.has(name)) oracle[name] = await gnuTarExtract(file, join(work, 'oracle-' + name));
      else oracle[name] = await oracleUnpack(reg, `tars/${name}:v1`, join(work, 'oracle-' + name));
    }
  });
  after(async () => {
    await reg?.stop();
    if (work) await removeDir(work);
  });

  const cli = (cmd: string, args: string[]) => runCli([cmd, '--plain-http', '--cache-dir', join(work, 'cache'), ...args]);

  for (const name of FIXTURES) {
    test(`${name}: sync equals ${UMOCI_REFUSES.has(name) ? 'GNU tar -x' : 'umoci raw unpack'}`, async () => {
      const dest = join(work, 'dest-' + name);
      const r = await cli('sync', [`${reg.host}/tars/${name}:v1`, dest]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /not eStargz: fetching it whole/);
      const diffs = await diff(oracle[name]!, dest);
      assert.deepEqual(diffs, [], formatDiffs(diffs));
    });
  }

  for (const name of SPARSE) {
    test(`${name}: a sparse file's holes stay holes in DEST`, async () => {
      const dest = join(work, 'dest-' + name);
      for (const [file, size, maxData] of [
        ['sparse.img', 3 * MiB, 3 * 4096],
        ['hole-only.img', 2 * MiB, 0],
      ] as const) {
        const st = await stat(join(dest, file));
        assert.equal(st.size, size, file);
        // Blocks actually allocated: the data regions (plus file-system slack), not the size.
        assert.ok(st.blocks * 512 <= maxData + 64 * 1024, `${file}: ${st.blocks * 512} bytes allocated for ${maxData} of data`);
      }
    });
  }

  test('ls -l shows the real size of sparse files, ls --json the exact bytes of binary xattrs', async () => {
    const l = await cli('ls', ['-l', `${reg.host}/tars/sparse-1.0:v1/`]);
    assert.equal(l.code, 0, l.stderr);
    assert.match(l.stdout, new RegExp(`\\s${3 * MiB}\\s.*sparse\\.img`));
    assert.match(l.stdout, new RegExp(`\\s${2 * MiB}\\s.*hole-only\\.img`));
    const j = await cli('ls', ['--json', `${reg.host}/tars/posix:v1/dir/hardlink`]);
    assert.equal(j.code, 0, j.stderr);
    const doc = JSON.parse(j.stdout) as Array<{ xattrs?: Record<string, string> }> | { xattrs?: Record<string, string> };
    const entry = Array.isArray(doc) ? doc[0]! : doc;
    assert.equal(Buffer.from(entry.xattrs!['user.bin']!, 'base64').toString('hex'), '00ff10');
    assert.equal(Buffer.from(entry.xattrs!['security.capability']!, 'base64').toString('hex'), '0100000200200000000000000000000000000000');
  });
});
