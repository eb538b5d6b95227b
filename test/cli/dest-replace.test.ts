// What sync does when DEST already holds something of another type where the image has an
// entry: it replaces it, as umoci applying a layer does, so there is no "destination
// conflict" to report (ERR_DEST_CONFLICT was dropped for that reason).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { lstat, mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startRegistry, pushLayout, type TestRegistry } from '../helpers/registry.js';
import { oracleUnpack } from '../helpers/oracle.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';
import { runCli } from '../helpers/cli.js';

describe('sync over a DEST that holds other types', () => {
  let reg: TestRegistry;
  let work: string;
  let oracle: string;
  before(async () => {
    reg = await startRegistry({ mode: 'plain' });
    work = await makeTempDir('dest-replace-');
    await pushLayout(reg, 'edge', 'fixtures/edge:v1');
    oracle = await oracleUnpack(reg, 'fixtures/edge:v1', join(work, 'oracle'));
  });
  after(async () => {
    await reg?.stop();
    if (work) await removeDir(work);
  });

  test('a file where the image has a directory and a non-empty directory where it has a file are replaced (exit 0)', async () => {
    const dest = join(work, 'dest');
    await mkdir(join(dest, 'etc', 'hostname', 'sub'), { recursive: true });
    await writeFile(join(dest, 'etc', 'hostname', 'sub', 'old'), 'a non-empty directory where the image has a file');
    await writeFile(join(dest, 'bin'), 'a file where the image has a directory');
    const r = await runCli(['sync', '--plain-http', '--cache-dir', join(work, 'cache'), `${reg.host}/fixtures/edge:v1/`, dest]);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /ERR_/);
    assert.ok((await lstat(join(dest, 'etc', 'hostname'))).isFile());
    assert.equal(await readFile(join(dest, 'etc', 'hostname'), 'utf8'), await readFile(join(oracle, 'etc', 'hostname'), 'utf8'));
    assert.ok((await lstat(join(dest, 'bin'))).isDirectory());
    assert.deepEqual((await readdir(join(dest, 'bin'))).sort(), (await readdir(join(oracle, 'bin'))).sort());
  });

  test('DEST itself a file where the image has a directory: replaced by the directory', async () => {
    const dest = join(work, 'dest-file');
    await writeFile(dest, 'in the way');
    const r = await runCli(['sync', '--plain-http', '--cache-dir', join(work, 'cache'), `${reg.host}/fixtures/edge:v1/etc`, dest]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual((await readdir(dest)).sort(), (await readdir(join(oracle, 'etc'))).sort());
  });
});
