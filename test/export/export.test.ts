// `stargz-get export` run as a user runs it, against a real registry: the archives are read
// back by skopeo and umoci (independent readers) and unpacked trees compared entry by entry
// with the oracle (skopeo + umoci of the same image straight from the registry); --rootfs
// tars are extracted by GNU tar and compared the same way.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, readFile, readdir, writeFile, lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startRegistry, pushLayout, layoutPath, type TestRegistry } from '../helpers/registry.js';
import { oracleUnpack, formatDiffs } from '../helpers/oracle.js';
import { diffFromOracle as diff, fixtureLayout, umociUnpack, type FixtureLayout } from './export-helpers.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';
import { runCli } from '../helpers/cli.js';

const run = promisify(execFile);
const IMAGES = ['edge', 'mixed'] as const;

async function skopeoInspect(transport: string): Promise<{ Digest: string; Layers: string[] }> {
  const { stdout } = await run('skopeo', ['--insecure-policy', 'inspect', transport], { maxBuffer: 16 << 20 });
  return JSON.parse(stdout) as { Digest: string; Layers: string[] };
}

async function untar(file: string, dest: string): Promise<void> {
  await mkdir(dest, { recursive: true });
  await run('tar', ['--xattrs', '--xattrs-include=*', '--numeric-owner', '-xpf', file, '-C', dest]);
}

/** Names in `dir` a failed export could have left: its final name or a temporary. */
async function leftovers(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((n) => n.includes('out'));
}

describe('export', () => {
  let reg: TestRegistry;
  let proxy: FaultProxy;
  let work: string;
  const oracle: Record<string, string> = {};
  const layout: Record<string, FixtureLayout> = {};
  let n = 0;

  before(async () => {
    reg = await startRegistry({ mode: 'plain' });
    proxy = await startFaultProxy(reg);
    work = await makeTempDir('export-');
    for (const name of IMAGES) {
      await pushLayout(reg, name, `fixtures/${name}:v1`);
      oracle[name] = await oracleUnpack(reg, `fixtures/${name}:v1`, join(work, 'oracle-' + name));
      layout[name] = await fixtureLayout(name);
    }
  });
  after(async () => {
    await proxy?.close();
    await reg?.stop();
    if (work) await removeDir(work);
  });

  /** The CLI through the byte-counting proxy, each run with a cache of its own (cold). */
  const exportCli = (args: string[]) => runCli(['export', '--plain-http', '--cache-dir', join(work, `cache-${n++}`), ...args]);
  const ref = (name: string, path = '') => `${proxy.host}/fixtures/${name}:v1${path}`;

  for (const name of IMAGES) {
    test(`${name}: docker-archive is read by skopeo, and copied to an OCI layout it unpacks to the oracle tree`, async () => {
      const file = join(work, `${name}-docker.tar`);
      const r = await exportCli(['--json', ref(name), file]);
      assert.equal(r.code, 0, r.stderr);
      const summary = JSON.parse(r.stdout) as { format: string; manifestDigest: string; blobs: number };
      assert.equal(summary.format, 'docker-archive');
      assert.equal(summary.manifestDigest, layout[name]!.manifestDigest);
      // skopeo names a docker-archive's layers by their uncompressed digests (the config's diff_ids).
      const inspected = await skopeoInspect(`docker-archive:${file}`);
      assert.deepEqual(inspected.Layers, layout[name]!.diffIds);
      const manifestJson = JSON.parse((await run('tar', ['-xOf', file, 'manifest.json'])).stdout) as Array<{ RepoTags: string[] }>;
      assert.deepEqual(manifestJson[0]!.RepoTags, [`${proxy.host}/fixtures/${name}:v1`]);
      const oci = join(work, `${name}-from-docker`);
      await run('skopeo', ['--insecure-policy', 'copy', '--quiet', `docker-archive:${file}`, `oci:${oci}:t`]);
      const diffs = await diff(oracle[name]!, await umociUnpack(`${oci}:t`, join(work, `${name}-from-docker-unpacked`)));
      assert.deepEqual(diffs, [], formatDiffs(diffs));
    });

    test(`${name}: OCI layout directory keeps the manifest digest, and umoci unpacks it to the oracle tree`, async () => {
      const dir = join(work, `${name}-oci`);
      const r = await exportCli([ref(name), dir]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /as oci/);
      const inspected = await skopeoInspect(`oci:${dir}:v1`);
      assert.equal(inspected.Digest, layout[name]!.manifestDigest);
      assert.deepEqual(inspected.Layers, layout[name]!.layers.map((l) => l.digest));
      const diffs = await diff(oracle[name]!, await umociUnpack(`${dir}:v1`, join(work, `${name}-oci-unpacked`)));
      assert.deepEqual(diffs, [], formatDiffs(diffs));
    });

    test(`${name}: --rootfs of / extracts to the oracle tree`, async () => {
      const file = join(work, `${name}-rootfs.tar`);
      const r = await exportCli(['--rootfs', ref(name), file]);
      assert.equal(r.code, 0, r.stderr);
      const dest = join(work, `${name}-rootfs`);
      await untar(file, dest);
      const diffs = await diff(oracle[name]!, dest);
      assert.deepEqual(diffs, [], formatDiffs(diffs));
    });
  }

  test('an OCI layout as a tar (FILE.tar with --format oci) is an OCI layout once extracted', async () => {
    const file = join(work, 'edge-oci.tar');
    const r = await exportCli(['--format', 'oci', ref('edge'), file]);
    assert.equal(r.code, 0, r.stderr);
    const dir = join(work, 'edge-oci-extracted');
    await untar(file, dir);
    assert.equal((await skopeoInspect(`oci:${dir}:v1`)).Digest, layout.edge!.manifestDigest);
  });

  test('--rootfs of one directory equals that directory of the oracle and fetches only its chunks', async () => {
    proxy.resetStats();
    const syncDest = join(work, 'etc-sync');
    const s = await runCli(['sync', '--plain-http', '--cache-dir', join(work, `cache-${n++}`), ref('edge', '/etc'), syncDest]);
    assert.equal(s.code, 0, s.stderr);
    const syncBytes = proxy.stats.blobBytesToClient;

    proxy.resetStats();
    const file = join(work, 'edge-etc.tar');
    const r = await exportCli(['--rootfs', '--json', ref('edge', '/etc'), file]);
    assert.equal(r.code, 0, r.stderr);
    const dirBytes = proxy.stats.blobBytesToClient;
    assert.equal((JSON.parse(r.stdout) as { fetched: { bytes: number } }).fetched.bytes, dirBytes);

    proxy.resetStats();
    const whole = await exportCli(['--rootfs', ref('edge'), join(work, 'edge-whole.tar')]);
    assert.equal(whole.code, 0, whole.stderr);
    const wholeBytes = proxy.stats.blobBytesToClient;

    const dest = join(work, 'edge-etc');
    await untar(file, dest);
    const diffs = await diff(join(oracle.edge!, 'etc'), dest);
    assert.deepEqual(diffs, [], formatDiffs(diffs));
    // The TOCs plus etc's chunks: what sync of the same path fetches, and less than all of it.
    assert.ok(dirBytes <= syncBytes, `export of /etc fetched ${dirBytes} bytes, sync of /etc ${syncBytes}`);
    assert.ok(dirBytes < wholeBytes / 4, `export of /etc fetched ${dirBytes} bytes, of / ${wholeBytes}`);
  });

  test('--rootfs to stdout (-) is the same tar as to a file', async () => {
    const file = join(work, 'etc-file.tar');
    const a = await exportCli(['--rootfs', ref('edge', '/etc'), file]);
    assert.equal(a.code, 0, a.stderr);
    const piped = join(work, 'etc-piped.tar');
    const cli = (await import('../helpers/paths.js')).cliPath;
    await run('sh', ['-c', `"$0" "$1" export --rootfs --plain-http --quiet --cache-dir "$2" "$3" - > "$4"`, process.execPath, cli, join(work, `cache-${n++}`), ref('edge', '/etc'), piped]);
    assert.deepEqual(await readFile(piped), await readFile(file));
  });

  test('a docker-archive to a pipe that closes early fails with ERR_IO, exit 8 (an incomplete archive is a failure)', async () => {
    const cli = (await import('../helpers/paths.js')).cliPath;
    const { stdout } = await run('bash', ['-c', `"$0" "$1" export --plain-http --quiet --cache-dir "$2" "$3" - 2>"$4" | head -c 1000 >/dev/null; echo "\${PIPESTATUS[0]}"`, process.execPath, cli, join(work, `cache-${n++}`), ref('edge'), join(work, 'pipe.err')]);
    assert.equal(stdout.trim(), '8', await readFile(join(work, 'pipe.err'), 'utf8'));
    assert.match(await readFile(join(work, 'pipe.err'), 'utf8'), /ERR_IO: cannot write to stdout/);
  });

  test('a blob whose bytes do not match its digest fails with ERR_DIGEST_MISMATCH and leaves no file', async () => {
    const victim = [...layout.edge!.layers].sort((a, b) => b.size - a.size)[0]!;
    const bytes = await readFile(join(layoutPath('edge'), 'blobs', 'sha256', victim.digest.slice(7)));
    bytes[Math.floor(bytes.length / 2)]! ^= 0xff; // one flipped byte, same size
    const bad = join(work, 'flipped.blob');
    await writeFile(bad, bytes);
    const out = join(work, 'bad');
    await mkdir(out);
    proxy.rules.push({ match: { pathIncludes: `/blobs/${victim.digest}`, hasRange: false }, action: 'serve-file', file: bad });
    try {
      for (const [target, format] of [[join(out, 'out.tar'), 'docker-archive'], [join(out, 'out-oci'), 'oci'], [join(out, 'out-oci.tar'), 'oci']] as const) {
        const r = await exportCli(['--format', format, ref('edge'), target]);
        assert.equal(r.code, 6, `${format} ${target}: ${r.stderr}`);
        assert.match(r.stderr, /ERR_DIGEST_MISMATCH/);
        assert.deepEqual(await leftovers(out), [], `${target}: nothing under the final name, no temporary`);
      }
    } finally {
      proxy.rules.length = 0;
    }
  });

  test('--platform picks the image of an index; index.json records that platform', async () => {
    await pushLayout(reg, 'multi', 'fixtures/multi:v1');
    const dir = join(work, 'multi-arm64');
    const r = await exportCli(['--platform', 'linux/arm64/v8', `${proxy.host}/fixtures/multi:v1`, dir]);
    assert.equal(r.code, 0, r.stderr);
    const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string; platform: unknown }> };
    assert.equal(index.manifests[0]!.digest, 'sha256:239f2a3aef5266788372e372b0cde1360ce2b9223baba08a6d92a26c5b6b456a');
    assert.deepEqual(index.manifests[0]!.platform, { architecture: 'arm64', os: 'linux', variant: 'v8' });
    assert.equal((await skopeoInspect(`oci:${dir}:v1`)).Digest, index.manifests[0]!.digest);
  });

  test('usage errors: a path without --rootfs, --json with stdout, a non-empty OCI directory', async () => {
    let r = await exportCli([ref('edge', '/etc'), join(work, 'x.tar')]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /ERR_USAGE.*--rootfs/);
    r = await exportCli(['--json', '--rootfs', ref('edge'), '-']);
    assert.equal(r.code, 2, r.stderr);
    const full = join(work, 'full-dir');
    await mkdir(full);
    await writeFile(join(full, 'keep'), 'mine');
    r = await exportCli([ref('edge'), full]);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(await readFile(join(full, 'keep'), 'utf8'), 'mine');
    r = await exportCli(['--rootfs', ref('edge', '/no/such'), join(work, 'nosuch-out.tar')]);
    assert.equal(r.code, 3, r.stderr);
    await assert.rejects(lstat(join(work, 'nosuch-out.tar')));
  });
});
