// The expected filesystem of an image, made by independent tools: skopeo pulls the image
// into an OCI layout and umoci applies its layers and whiteouts as the OCI image spec says.
// (umoci 0.4 cannot read zstd layers, so those are decompressed into plain tar layers first.)
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createHash } from 'node:crypto';
import { decompress } from 'fzstd';
import { credsOf, type TestRegistry } from './registry.js';

const run = promisify(execFile);

export { compareTrees, formatDiffs, type TreeDiff, type CompareOptions } from './compare-trees.js';

export interface OracleOptions {
  /** For an image index: 'os/arch[/variant]' to unpack (default: this machine's platform). */
  platform?: string;
}

const cache = new Map<string, Promise<string>>();

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

/** Rewrites the layout's manifest so zstd layers become uncompressed tar layers (same diff_ids). */
async function dezstd(layout: string, tag: string): Promise<void> {
  const blob = (d: string): string => join(layout, 'blobs', ...d.split(':'));
  const put = async (data: Uint8Array): Promise<string> => {
    const digest = 'sha256:' + createHash('sha256').update(data).digest('hex');
    await writeFile(blob(digest), data);
    return digest;
  };
  const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as { manifests: Array<Descriptor> };
  const ref = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag);
  if (!ref) throw new Error(`oracle: tag ${tag} not in ${layout}`);
  const manifest = JSON.parse(await readFile(blob(ref.digest), 'utf8')) as { layers: Descriptor[] };
  if (!manifest.layers.some((l) => l.mediaType.endsWith('+zstd'))) return;
  for (const l of manifest.layers) {
    if (!l.mediaType.endsWith('+zstd')) continue;
    const tar = decompress(new Uint8Array(await readFile(blob(l.digest))));
    l.digest = await put(tar);
    l.size = tar.length;
    l.mediaType = 'application/vnd.oci.image.layer.v1.tar';
    delete l.annotations;
  }
  const mbytes = Buffer.from(JSON.stringify(manifest));
  ref.digest = await put(mbytes);
  ref.size = mbytes.length;
  await writeFile(join(layout, 'index.json'), JSON.stringify(index));
}

async function unpack(reg: TestRegistry, repoTag: string, destDir: string, opts: OracleOptions): Promise<string> {
  const layout = join(destDir, 'oci');
  const rootfs = join(destDir, 'rootfs');
  await mkdir(destDir, { recursive: true });
  const args = ['--insecure-policy'];
  if (opts.platform) {
    const [os, arch, variant] = opts.platform.split('/');
    if (os) args.push('--override-os', os);
    if (arch) args.push('--override-arch', arch);
    if (variant) args.push('--override-variant', variant);
  }
  args.push('copy', '--quiet', '--src-tls-verify=false');
  const creds = credsOf(reg);
  if (creds) args.push('--src-creds', creds);
  args.push(`docker://${reg.host}/${repoTag}`, `oci:${layout}:oracle`);
  try {
    await run('skopeo', args, { maxBuffer: 16 << 20 });
    await dezstd(layout, 'oracle');
    await run('umoci', ['raw', 'unpack', '--image', `${layout}:oracle`, rootfs], { maxBuffer: 16 << 20 });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`oracle unpack of ${reg.host}/${repoTag} failed: ${e.stderr || e.message}`);
  }
  return rootfs;
}

/**
 * Unpacks reg/repoTag into destDir/rootfs (owners kept: we run as root) and returns that path.
 * Cached per (registry, repoTag, platform) within the process: a second call returns the first
 * rootfs (wherever it was unpacked) as long as it still exists — treat it as read-only.
 */
export async function oracleUnpack(reg: TestRegistry, repoTag: string, destDir: string, opts: OracleOptions = {}): Promise<string> {
  const key = `${reg.dataDir}|${reg.host}|${repoTag}|${opts.platform ?? ''}`;
  const hit = cache.get(key);
  if (hit) {
    const p = await hit.catch(() => undefined);
    if (p && existsSync(p)) return p;
  }
  const p = unpack(reg, repoTag, destDir, opts);
  cache.set(key, p);
  p.catch(() => cache.delete(key));
  return p;
}
