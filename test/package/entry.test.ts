// package.json's `main` and `types` must name files the build writes, and what `main` exports
// must open a real image and sync a path from it, as a library user would.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { projectRoot } from '../helpers/paths.js';
import { startRegistry, pushLayout } from '../helpers/registry.js';
import { tempDirFor } from '../helpers/tmp.js';

const pkg = JSON.parse(readFileSync(join(projectRoot, 'package.json'), 'utf8')) as { main: string; types: string };

test('package.json main and types exist after the build', () => {
  assert.ok(existsSync(join(projectRoot, pkg.main)), `main ${pkg.main} is missing`);
  assert.ok(existsSync(join(projectRoot, pkg.types)), `types ${pkg.types} is missing`);
});

test('the package entry opens an image from a real registry and syncs a path', async (t) => {
  const lib = (await import(pathToFileURL(join(projectRoot, pkg.main)).href)) as typeof import('../../src/index.js');
  const reg = await startRegistry({ mode: 'plain' });
  t.after(() => reg.stop());
  await pushLayout(reg, 'edge', 'fixtures/edge:v1');
  const image = await lib.openImage(lib.parseReference(`${reg.host}/fixtures/edge:v1`), {
    cacheDir: await tempDirFor(t, 'entry-cache-'),
    registry: { plainHttp: true },
  });
  try {
    const dest = join(await tempDirFor(t, 'entry-dest-'), 'etc');
    const summary = await lib.syncPath(image.fs, '/etc', dest);
    assert.ok(summary.files > 0);
    assert.equal(readFileSync(join(dest, 'hostname'), 'utf8'), 'stargz-edge\n');
    await assert.rejects(lib.syncPath(image.fs, '/no/such', dest), (err: unknown) => lib.isStargzError(err, lib.ErrorCodes.PATH_NOT_FOUND));
  } finally {
    await image.close();
  }
});
