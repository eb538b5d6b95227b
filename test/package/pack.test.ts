// The package as an npm user gets it (issue 12 item 1): `npm pack` of the built tree, the
// tarball installed into a scratch project with `npm install` (native addons built by their
// install scripts, dependencies from the registry or npm's cache), then an ESM script there
// imports 'stargz-get', uses every method of an Image against a real registry and must exit
// by itself after close(); a TypeScript consumer type-checks against the installed .d.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import { projectRoot } from '../helpers/paths.js';
import { startRegistry, pushLayout } from '../helpers/registry.js';
import { tempDirFor } from '../helpers/tmp.js';

function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}, timeoutMs = 600_000): Promise<{ code: number | null; stdout: string; stderr: string; ms: number }> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: Date.now() - started });
    });
  });
}

/** Puts node_modules/NAME's built binary where prebuild-install looks before downloading it. */
async function seedPrebuild(npmCache: string, name: string): Promise<void> {
  const dir = join(projectRoot, 'node_modules', name);
  const version = (JSON.parse(await readFile(join(dir, 'package.json'), 'utf8')) as { version: string }).version;
  const file = `${name}-v${version}-node-v${process.versions.modules}-${process.platform}-${process.arch}.tar.gz`;
  const url = `https://github.com/WiseLibs/${name}/releases/download/v${version}/${file}`;
  const cached = join(npmCache, '_prebuilds', createHash('sha512').update(url).digest('hex').slice(0, 6) + '-' + file);
  await mkdir(dirname(cached), { recursive: true });
  const tar = await run('tar', ['-czf', cached, '-C', dir, `build/Release/${name.replace(/-/g, '_')}.node`], dir);
  assert.equal(tar.code, 0, tar.stderr);
}

// What a user writes: no test helper, no path into the package, only its public entry.
const CONSUMER_MJS = `
import { openImage, ErrorCodes, isStargzError } from 'stargz-get';
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const [ref, cacheDir, dest] = process.argv.slice(2);
const image = await openImage(ref, { cacheDir, plainHttp: true });
const out = {};
out.info = image.info();
out.hostname = (await image.readFile('/etc/hostname')).toString();
out.viaSymlink = (await image.readFile('/bin/abs-link')).toString();
const st = image.stat('/bin/sh');
out.stat = { type: st.type, mode: st.mode, size: st.size, mtime: st.mtime instanceof Date };
out.lstat = { type: image.lstat('/bin/sh').type, linkTarget: image.lstat('/bin/sh').linkTarget };
out.etc = image.readdir('/etc').map((e) => e.name + ':' + e.type);
const whole = await image.readFile('/bin/big2');
const pieces = [];
for await (const piece of image.createReadStream('/bin/big2', { windowBytes: 128 * 1024 })) pieces.push(piece);
out.stream = { pieces: pieces.length, equal: Buffer.concat(pieces).equals(whole), size: whole.length,
  digestOk: 'sha256:' + createHash('sha256').update(whole).digest('hex') === image.stat('/bin/big2').digest };
try { await image.readFile('/etc'); out.dirError = 'none'; } catch (e) { out.dirError = isStargzError(e, ErrorCodes.IS_DIRECTORY) ? e.code : String(e); }
try { image.stat('/no/such'); out.missing = 'none'; } catch (e) { out.missing = e.code; }
const summary = await image.sync('/etc', join(dest, 'etc'));
out.sync = { files: summary.files, names: readdirSync(join(dest, 'etc')).sort(), overwritten: readFileSync(join(dest, 'etc', 'overwritten'), 'utf8') };
const totals = await image.metrics.totals();
out.metrics = { family: (await image.metrics.text()).includes('# TYPE stargz_get_blob_bytes_total counter'), fetched: totals.blobBytesReceived > 0 && totals.chunksFromNetwork > 0 };
await image.close();
console.log(JSON.stringify(out));
// No process.exit: close() must leave nothing that keeps the process alive.
`;

const CONSUMER_TS = `
import { openImage, ErrorCodes, StargzError, type Image, type ImageOptions, type Stat, type DirEntry, type ImageInfo, type SyncSummary, type ErrorCode, type FetchTotals } from 'stargz-get';
import type { Readable } from 'node:stream';

export async function use(ref: string): Promise<number> {
  const options: ImageOptions = { plainHttp: true, concurrency: 4, credentials: { username: 'u', password: 'p' }, mirrors: [] };
  const image: Image = await openImage(ref, options);
  const info: ImageInfo = image.info();
  const st: Stat = image.stat('/etc/hostname');
  const kind: 'file' | 'directory' | 'symlink' | 'char-device' | 'block-device' | 'fifo' = st.type;
  const entries: DirEntry[] = image.readdir('/');
  const bytes: Buffer = await image.readFile('/etc/hostname');
  const stream: Readable = image.createReadStream('/etc/hostname', { start: 0, end: 3 });
  const summary: SyncSummary = await image.sync('/etc', '/tmp/x');
  const totals: FetchTotals = await image.metrics.totals();
  const code: ErrorCode = ErrorCodes.PATH_NOT_FOUND;
  const err = new StargzError(code, 'x');
  await image.close();
  return info.layers.length + st.size + entries.length + bytes.length + summary.files + (stream.readable ? 1 : 0) + kind.length + err.code.length + totals.requests;
}
`;

test('npm pack, npm install of the tarball, and the API used from the installed package', { timeout: 900_000 }, async (t) => {
  const work = await tempDirFor(t, 'pack-');
  // The tree is built (npm test builds first): pack it as it is, without re-running prepare.
  const pack = await run('npm', ['pack', '--ignore-scripts', '--pack-destination', work], projectRoot);
  assert.equal(pack.code, 0, pack.stderr);
  const tgz = (await readdir(work)).find((n) => n.endsWith('.tgz'));
  assert.ok(tgz, `no tarball: ${pack.stdout}`);

  const proj = join(work, 'consumer');
  await run('mkdir', ['-p', proj], work);
  // npm 11 asks a project to list the dependencies whose install scripts it allows.
  await writeFile(
    join(proj, 'package.json'),
    JSON.stringify({ name: 'consumer', version: '1.0.0', private: true, type: 'module', allowScripts: { 'stargz-get': true, 'better-sqlite3': true, 'fuse-native': true } }, null, 2),
  );
  // better-sqlite3's install script downloads a prebuilt binary from GitHub and compiles
  // SQLite (minutes) when it cannot: this machine cannot reach GitHub. An npm user on
  // linux-x64 gets the download, so the test serves it from npm's prebuild cache, seeded
  // with the binary this project's own install built; everything else comes from the npm
  // registry into a scratch npm cache, and the other install scripts (ours: node-gyp) run.
  const npmCache = join(work, 'npm-cache');
  await seedPrebuild(npmCache, 'better-sqlite3');
  const install = await run('npm', ['install', '--no-audit', '--no-fund', '--cache', npmCache, join(work, tgz)], proj, {}, 240_000);
  assert.equal(install.code, 0, install.stderr);
  console.log(`# npm install of the tarball: ${(install.ms / 1000).toFixed(0)} s`);
  const installed = join(proj, 'node_modules', 'stargz-get');
  assert.ok(existsSync(join(installed, 'native', 'build', 'Release', 'posix_extra.node')), 'the install script built the native addon');
  // Every source the addons need is in the tarball: the libfuse 3 one too, where its headers are.
  if (spawnSync('pkg-config', ['--exists', 'fuse3']).status === 0) {
    assert.ok(existsSync(join(installed, 'native', 'build', 'Release', 'fuse_ll.node')), 'the install script built the libfuse 3 addon');
  }
  assert.ok(existsSync(join(installed, 'dist', 'src', 'index.d.ts')));
  assert.ok(!existsSync(join(installed, 'dist', 'test')), 'tests are not shipped');

  const reg = await startRegistry({ mode: 'plain' });
  t.after(() => reg.stop());
  await pushLayout(reg, 'edge', 'fixtures/edge:v1');
  await writeFile(join(proj, 'use.mjs'), CONSUMER_MJS);
  const cacheDir = join(work, 'cache');
  const dest = join(work, 'dest');
  await run('mkdir', ['-p', dest], work);
  const used = await run(process.execPath, ['use.mjs', `${reg.host}/fixtures/edge:v1`, cacheDir, dest], proj, {}, 60_000);
  assert.equal(used.code, 0, `the consumer did not exit cleanly by itself (${used.code}): ${used.stderr}`);
  const out = JSON.parse(used.stdout) as Record<string, any>;
  assert.equal(out.info.layers.length, 3);
  assert.match(out.info.manifestDigest, /^sha256:/);
  assert.equal(out.hostname, 'stargz-edge\n');
  assert.equal(out.viaSymlink, 'stargz-edge\n');
  assert.deepEqual(out.stat, { type: 'file', mode: 0o100755, size: 300_000, mtime: true });
  assert.deepEqual(out.lstat, { type: 'symlink', linkTarget: 'tool' });
  assert.deepEqual(out.etc, ['empty:file', 'hostname:file', 'overwritten:file', 'passwd:file']);
  assert.deepEqual(out.stream, { pieces: 8, equal: true, size: 1_000_000, digestOk: true });
  assert.equal(out.dirError, 'ERR_IS_DIRECTORY');
  assert.equal(out.missing, 'ERR_PATH_NOT_FOUND');
  assert.deepEqual(out.sync, { files: 4, names: ['empty', 'hostname', 'overwritten', 'passwd'], overwritten: 'version 3 from layer 2\n' });
  assert.deepEqual(out.metrics, { family: true, fetched: true });

  // The types as a TypeScript user sees them, with this project's compiler.
  await writeFile(join(proj, 'use.ts'), CONSUMER_TS);
  await writeFile(
    join(proj, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, skipLibCheck: false, typeRoots: [join(projectRoot, 'node_modules', '@types')], types: ['node'] },
      files: ['use.ts'],
    }),
  );
  const tsc = await run(join(projectRoot, 'node_modules', '.bin', 'tsc'), ['-p', 'tsconfig.json'], proj);
  assert.equal(tsc.code, 0, tsc.stdout + tsc.stderr);
});
