// `export --rootfs` of one-layer images made from tars that real tools wrote (GNU tar, Python
// tarfile, git archive: long names and links, binary xattr values, sparse files, old formats):
// GNU tar's extraction of our tar equals GNU tar's extraction of the original, entry by entry
// (so PAX records — binary SCHILY.xattr values included — say exactly what the layer said).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { compareTrees, formatDiffs } from '../helpers/oracle.js';
import { pushCraftedImage, writeLayout } from '../helpers/craft-image.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';
import { runCli } from '../helpers/cli.js';
import { fixturesDir } from '../helpers/paths.js';

const FIXTURES = ['gnu', 'posix', 'sparse-1.0', 'python-pax', 'python-gnu', 'python-ustar', 'python-v7', 'git'];
const exec = promisify(execFile);
const suiteStart = Math.floor(Date.now() / 1000) - 5;

async function gnuTarExtract(file: string, dir: string, gzip: boolean): Promise<string> {
  await mkdir(dir, { recursive: true });
  await exec('tar', ['--numeric-owner', '--same-owner', '--xattrs', '--xattrs-include=*', gzip ? '-xpzf' : '-xpf', file, '-C', dir]);
  return dir;
}

describe('export --rootfs of layers written by other tools equals their own extraction', () => {
  let reg: TestRegistry;
  let work: string;

  before(async () => {
    reg = await startRegistry({ mode: 'plain' });
    work = await makeTempDir('export-tars-');
    for (const name of FIXTURES) {
      const layout = await writeLayout(join(work, 'layout-' + name), { layers: [{ blob: await readFile(join(fixturesDir, 'tars', `${name}.tar.gz`)) }] });
      await pushCraftedImage(reg, layout, `tars/${name}:v1`);
    }
  });
  after(async () => {
    await reg?.stop();
    if (work) await removeDir(work);
  });

  for (const name of FIXTURES) {
    test(name, async () => {
      const file = join(work, `${name}.tar`);
      const r = await runCli(['export', '--rootfs', '--plain-http', '--cache-dir', join(work, 'cache-' + name), `${reg.host}/tars/${name}:v1`, file]);
      assert.equal(r.code, 0, r.stderr);
      const expected = await gnuTarExtract(join(fixturesDir, 'tars', `${name}.tar.gz`), join(work, 'expected-' + name), true);
      const actual = await gnuTarExtract(file, join(work, 'actual-' + name), false);
      // The original has no entry for its root, nor for some parents: GNU tar gives those its clock.
      const diffs = (await compareTrees(expected, actual, {})).filter(
        (d) => d.path !== '' && d.path !== '.' && !(d.field === 'mtime' && typeof d.expected === 'number' && d.expected >= suiteStart),
      );
      assert.deepEqual(diffs, [], formatDiffs(diffs));
    });
  }
});
