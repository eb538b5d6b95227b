// Shared by the export tests: the fixture's own manifest (what every archive must carry) and
// the oracle comparison without the mtimes umoci took from its own clock.
import { execFile } from 'node:child_process';
import { mkdir, readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { layoutPath } from '../helpers/registry.js';
import { compareTrees, type TreeDiff } from '../helpers/oracle.js';

const suiteStart = Math.floor(Date.now() / 1000) - 5;

/** As sync-oracle.test.ts: mtimes umoci took from its own clock (directories no layer lists) say nothing about the image. */
export async function diffFromOracle(expected: string, actual: string): Promise<TreeDiff[]> {
  const all = await compareTrees(expected, actual, {});
  return all.filter((d) => !(d.field === 'mtime' && typeof d.expected === 'number' && d.expected >= suiteStart));
}

export interface FixtureLayout {
  manifestDigest: string;
  configDigest: string;
  layers: Array<{ digest: string; size: number }>;
  diffIds: string[];
}

/** The fixture's own manifest: what every archive must carry, digest for digest. */
export async function fixtureLayout(name: string): Promise<FixtureLayout> {
  const dir = layoutPath(name);
  const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
  const manifestDigest = index.manifests[0]!.digest;
  const blob = async <T>(digest: string): Promise<T> => JSON.parse(await readFile(join(dir, 'blobs', 'sha256', digest.slice(7)), 'utf8')) as T;
  const manifest = await blob<{ config: { digest: string }; layers: FixtureLayout['layers'] }>(manifestDigest);
  const config = await blob<{ rootfs: { diff_ids: string[] } }>(manifest.config.digest);
  return { manifestDigest, configDigest: manifest.config.digest, layers: manifest.layers, diffIds: config.rootfs.diff_ids };
}

/** `umoci raw unpack` of an OCI layout's tag into DEST/rootfs. */
export async function umociUnpack(layoutTag: string, dest: string): Promise<string> {
  const rootfs = join(dest, 'rootfs');
  await mkdir(dest, { recursive: true });
  await promisify(execFile)('umoci', ['raw', 'unpack', '--image', layoutTag, rootfs], { maxBuffer: 16 << 20 });
  return rootfs;
}

