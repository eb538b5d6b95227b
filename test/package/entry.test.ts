// package.json's `main` and `types` must name files the build writes, and what `main` exports
// must open a real image and answer paths, as a library user would (the installed tarball is
// tested in pack.test.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { projectRoot } from '../helpers/paths.js';
import { startRegistry, pushLayout } from '../helpers/registry.js';
import { tempDirFor } from '../helpers/tmp.js';
import { runCli } from '../helpers/cli.js';

const pkg = JSON.parse(readFileSync(join(projectRoot, 'package.json'), 'utf8')) as { main: string; types: string };

test('package.json main and types exist after the build', () => {
  assert.ok(existsSync(join(projectRoot, pkg.main)), `main ${pkg.main} is missing`);
  assert.ok(existsSync(join(projectRoot, pkg.types)), `types ${pkg.types} is missing`);
});

test('the public types name no VFS internals', () => {
  const dts = readFileSync(join(projectRoot, pkg.types), 'utf8');
  const api = readFileSync(join(projectRoot, 'dist/src/api/image.d.ts'), 'utf8');
  for (const word of ['VNode', 'Inode', 'MergedFs', 'OpenedImage']) assert.ok(!dts.includes(word) && !api.includes(word), `the types expose ${word}`);
});

test('the package entry opens an image and answers stat, readdir, readFile, streams and sync', async (t) => {
  const lib = (await import(pathToFileURL(join(projectRoot, pkg.main)).href)) as typeof import('../../src/index.js');
  const reg = await startRegistry({ mode: 'plain' });
  t.after(() => reg.stop());
  await pushLayout(reg, 'edge', 'fixtures/edge:v1');
  const image = await lib.openImage(`${reg.host}/fixtures/edge:v1`, { cacheDir: await tempDirFor(t, 'entry-cache-'), plainHttp: true });
  try {
    const info = image.info();
    assert.equal(info.layers.length, 3);
    assert.match(info.manifestDigest, /^sha256:[0-9a-f]{64}$/);

    assert.equal((await image.readFile('/etc/hostname')).toString(), 'stargz-edge\n');
    // A symlink is followed, an absolute one from the image root.
    assert.equal((await image.readFile('/bin/abs-link')).toString(), 'stargz-edge\n');
    const st = image.stat('/bin/sh');
    assert.equal(st.type, 'file');
    assert.equal(st.size, 300_000);
    assert.equal(st.mode, 0o100755);
    const lst = image.lstat('/bin/sh');
    assert.equal(lst.type, 'symlink');
    assert.equal(lst.linkTarget, 'tool');
    assert.equal(image.readlink('/bin/sh'), 'tool');
    assert.equal(image.stat('/usr/share/data/xattr').xattrs['user.comment']?.toString(), 'hello');

    const names = image.readdir('/etc').map((e) => e.name);
    assert.deepEqual(names, ['empty', 'hostname', 'overwritten', 'passwd']);
    assert.deepEqual(image.readdir('/').find((e) => e.name === 'fifo'), { name: 'fifo', type: 'fifo' });

    // A multi-chunk file, streamed in small windows, equals readFile; a range is inclusive.
    const whole = await image.readFile('/bin/big2');
    assert.equal(whole.length, 1_000_000);
    assert.equal(createHash('sha256').update(whole).digest('hex'), image.stat('/bin/big2').digest!.replace('sha256:', ''));
    const parts: Buffer[] = [];
    for await (const c of image.createReadStream('/bin/big2', { windowBytes: 100_000 })) parts.push(c as Buffer);
    assert.ok(parts.length >= 10, `${parts.length} pieces`);
    assert.ok(Buffer.concat(parts).equals(whole));
    const range: Buffer[] = [];
    for await (const c of image.createReadStream('/bin/big2', { start: 65_000, end: 400_000 })) range.push(c as Buffer);
    assert.ok(Buffer.concat(range).equals(whole.subarray(65_000, 400_001)));

    await assert.rejects(image.readFile('/etc'), (e: unknown) => lib.isStargzError(e, lib.ErrorCodes.IS_DIRECTORY));
    await assert.rejects(image.readFile('/fifo'), (e: unknown) => lib.isStargzError(e, lib.ErrorCodes.NOT_REGULAR_FILE));
    await assert.rejects(image.readFile('/no/such'), (e: unknown) => lib.isStargzError(e, lib.ErrorCodes.PATH_NOT_FOUND));
    await assert.rejects(image.readFile('/bin/dangling'), (e: unknown) => lib.isStargzError(e, lib.ErrorCodes.PATH_NOT_FOUND));
    assert.throws(() => image.stat('/gone/file'), (e: unknown) => lib.isStargzError(e, lib.ErrorCodes.PATH_NOT_FOUND));
    assert.throws(() => image.createReadStream('/etc'), (e: unknown) => lib.isStargzError(e, lib.ErrorCodes.IS_DIRECTORY));

    const dest = join(await tempDirFor(t, 'entry-dest-'), 'etc');
    const summary = await image.sync('/etc', dest);
    assert.ok(summary.files > 0);
    assert.equal(readFileSync(join(dest, 'hostname'), 'utf8'), 'stargz-edge\n');
    await assert.rejects(image.sync('/no/such', dest), (err: unknown) => lib.isStargzError(err, lib.ErrorCodes.PATH_NOT_FOUND));
  } finally {
    await image.close();
  }
  await image.close(); // idempotent
  assert.throws(() => image.stat('/etc'), (e: unknown) => lib.isStargzError(e, lib.ErrorCodes.USAGE));
});

test('image.diff(other) gives what `stargz-get diff --json` gives', async (t) => {
  const lib = (await import(pathToFileURL(join(projectRoot, pkg.main)).href)) as typeof import('../../src/index.js');
  const reg = await startRegistry({ mode: 'plain' });
  t.after(() => reg.stop());
  await pushLayout(reg, 'syncv1', 'f/sync:v1', { tag: 'v1' });
  await pushLayout(reg, 'syncv2', 'f/sync:v2', { tag: 'v2' });
  const cacheDir = await tempDirFor(t, 'entry-diff-cache-');
  const a = await lib.openImage(`${reg.host}/f/sync:v1`, { cacheDir, plainHttp: true });
  const b = await lib.openImage(`${reg.host}/f/sync:v2`, { cacheDir, plainHttp: true });
  try {
    const changes = await a.diff(b);
    const cli = await runCli(['diff', '--json', '--plain-http', '--cache-dir', cacheDir, `${reg.host}/f/sync:v1`, `${reg.host}/f/sync:v2`]);
    assert.equal(cli.code, 1, cli.stderr);
    assert.deepEqual(changes, JSON.parse(cli.stdout));
    assert.ok(changes.some((c) => c.change === 'A') && changes.some((c) => c.change === 'D') && changes.some((c) => c.change === 'C'), JSON.stringify(changes));
    assert.deepEqual(await a.diff(a), []);
  } finally {
    await a.close();
    await b.close();
  }
});

test('a logger given to openImage sees each registry request at info and each chunk lookup at debug', async (t) => {
  const lib = (await import(pathToFileURL(join(projectRoot, pkg.main)).href)) as typeof import('../../src/index.js');
  const reg = await startRegistry({ mode: 'plain' });
  t.after(() => reg.stop());
  await pushLayout(reg, 'edge', 'fixtures/edge:v1');
  const lines: string[] = [];
  const image = await lib.openImage(`${reg.host}/fixtures/edge:v1`, { cacheDir: await tempDirFor(t, 'entry-log-'), plainHttp: true, logger: lib.createLogger('debug', (l) => lines.push(l)) });
  try {
    assert.equal((await image.readFile('/etc/hostname')).toString(), 'stargz-edge\n');
  } finally {
    await image.close();
  }
  assert.ok(lines.some((l) => /^info: GET 127\.0\.0\.1:\d+ \/v2\/fixtures\/edge\/manifests\/v1 200 /.test(l)), lines.join('\n'));
  assert.ok(lines.some((l) => /^debug: chunk sha256:[0-9a-f]{64}: not cached$/.test(l)), lines.join('\n'));
  // The default stays silent: nothing is written anywhere without a logger.
  const quiet = await lib.openImage(`${reg.host}/fixtures/edge:v1`, { cacheDir: await tempDirFor(t, 'entry-log-'), plainHttp: true });
  await quiet.close();
});
