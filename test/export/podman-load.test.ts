// `export --format docker-archive` is loadable by `podman load` (the brief says docker load /
// podman load; no Docker daemon here, and podman needs none): podman, as root, into a storage
// of the test's own (vfs driver, nothing mounted), must load the archive under its tag with
// the config and every layer as the image has them, and what it stored, saved back as an OCI
// layout and unpacked by umoci, must equal the oracle tree.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startRegistry, pushLayout, type TestRegistry } from '../helpers/registry.js';
import { oracleUnpack, formatDiffs } from '../helpers/oracle.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';
import { runCli } from '../helpers/cli.js';
import { diffFromOracle, fixtureLayout, umociUnpack, type FixtureLayout } from './export-helpers.js';

const run = promisify(execFile);
const IMAGES = ['edge', 'mixed'] as const;

interface PodmanImage {
  Id: string;
  RepoTags: string[];
  RootFS: { Layers: string[] };
}

describe('podman load of an exported docker-archive', () => {
  let reg: TestRegistry;
  let work: string;
  const oracle: Record<string, string> = {};
  const layout: Record<string, FixtureLayout> = {};

  /**
   * podman with a storage of its own under `work` (a fresh one per test: podman reuses an image
   * it already has by its config digest): no daemon, no systemd, no journal, nothing outside.
   */
  const podman = async (storage: string, args: string[]): Promise<string> => {
    const dir = join(work, 'podman-' + storage);
    await mkdir(join(dir, 'tmp'), { recursive: true });
    const global = ['--root', join(dir, 'root'), '--runroot', join(dir, 'run'), '--tmpdir', join(dir, 'tmp')];
    global.push('--storage-driver', 'vfs', '--events-backend', 'none', '--cgroup-manager', 'cgroupfs');
    const { stdout } = await run('podman', [...global, ...args], { maxBuffer: 16 << 20, env: { ...process.env, TMPDIR: join(dir, 'tmp') } });
    return stdout;
  };

  before(async () => {
    reg = await startRegistry({ mode: 'plain' });
    work = await makeTempDir('podman-load-');
    for (const name of IMAGES) {
      await pushLayout(reg, name, `fixtures/${name}:v1`);
      oracle[name] = await oracleUnpack(reg, `fixtures/${name}:v1`, join(work, 'oracle-' + name));
      layout[name] = await fixtureLayout(name);
    }
  });
  after(async () => {
    await reg?.stop();
    if (work) await removeDir(work);
  });

  const exportArchive = async (name: string): Promise<string> => {
    const file = join(work, `${name}.tar`);
    const r = await runCli(['export', '--plain-http', '--quiet', '--cache-dir', join(work, 'cache-' + name), `${reg.host}/fixtures/${name}:v1`, file]);
    assert.equal(r.code, 0, r.stderr);
    return file;
  };

  for (const name of IMAGES) {
    test(`${name}: loads under its tag with the image's config and layers, and unpacks to the oracle tree`, async () => {
      const tag = `${reg.host}/fixtures/${name}:v1`;
      const loaded = await podman(name, ['load', '--quiet', '-i', await exportArchive(name)]);
      assert.match(loaded, new RegExp(`Loaded image: ${tag.replace(/[.]/g, '\\.')}\\n`));
      const [image] = JSON.parse(await podman(name, ['image', 'inspect', tag])) as PodmanImage[];
      assert.deepEqual(image!.RepoTags, [tag]);
      // podman's image ID is the digest of the config it loaded: ours, byte for byte.
      assert.equal(`sha256:${image!.Id}`, layout[name]!.configDigest);
      assert.deepEqual(image!.RootFS.Layers, layout[name]!.diffIds);
      // What podman stored (each layer applied to its own directory), saved back and unpacked.
      const saved = join(work, `${name}-saved`);
      await podman(name, ['save', '--quiet', '--format', 'oci-dir', '-o', saved, tag]);
      const diffs = await diffFromOracle(oracle[name]!, await umociUnpack(`${saved}:${tag}`, join(work, `${name}-unpacked`)));
      assert.deepEqual(diffs, [], formatDiffs(diffs));
    });
  }

  test('control: the same archive with its layers listed out of order is refused', async () => {
    // So that a load passing above says something: podman checks each layer against the config's diff_ids.
    const dir = join(work, 'swapped');
    await mkdir(dir);
    await run('tar', ['-xf', await exportArchive('edge'), '-C', dir]);
    const manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as Array<{ Layers: string[]; RepoTags: string[] }>;
    manifest[0]!.Layers.reverse();
    manifest[0]!.RepoTags = [`${reg.host}/fixtures/swapped:v1`];
    await writeFile(join(dir, 'manifest.json'), JSON.stringify(manifest));
    const file = join(work, 'swapped.tar');
    await run('tar', ['-cf', file, '-C', dir, '.']);
    await assert.rejects(podman('swapped', ['load', '--quiet', '-i', file]), /Digest did not match/);
  });
});
