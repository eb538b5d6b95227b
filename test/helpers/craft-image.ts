// Hostile images for tests, crafted from blobs the reference writer made.
//
//   rewriteToc(blob, edit)            -> { blob, tocDigest }: the same eStargz gzip layer with its
//                                        TOC JSON replaced by `edit`'s changes (chunk data untouched)
//   writeLayout(dir, { layers, tag }) -> an OCI image layout (config with correct diff_ids unless
//                                        given; a layer's tocDigest becomes its TOC-digest annotation)
//   pushCraftedImage(reg, dir, 'repo:tag')  pushes it with skopeo (digests preserved)
//
// Typical use:
//   const [base] = fixtureLayers('edge');                       // test/estargz/fixture-layers.ts
//   const layer = rewriteToc(base.blob, (toc) => { toc.entries.push({ name: 'x\ud800', type: 'dir', mode: 0o755 }); });
//   await writeLayout(dir, { layers: [layer] });
//   await pushCraftedImage(reg, dir, 'hostile/x:v1');
//
// Only the 51-byte eStargz gzip footer is handled. The parsing here is written independently of
// src/estargz so that a bug there cannot hide in the fixtures too.
import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import zlib from 'node:zlib';
import { estargzFooter, tarOne } from '../estargz/synth.js';
import { pushLayout, type TestRegistry } from './registry.js';

const FOOTER_SIZE = 51;
export const TOC_DIGEST_ANNOTATION = 'containerd.io/snapshot/stargz/toc.digest';
export const LAYER_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';

/** The TOC as JSON.parse gives it: entries are left untyped so tests can put anything in them. */
export interface CraftToc {
  version: number;
  entries: any[];
  [key: string]: unknown;
}

export interface CraftedLayer {
  blob: Buffer;
  /** 'sha256:…' of the TOC JSON; writeLayout puts it in the TOC-digest annotation. */
  tocDigest?: string;
  mediaType?: string;
  annotations?: Record<string, string>;
}

function sha256(b: Buffer | string): string {
  return 'sha256:' + createHash('sha256').update(b).digest('hex');
}

/** Offset of the TOC gzip member, from the footer's 'SG' extra field. */
function tocOffsetOf(blob: Buffer): number {
  const f = blob.subarray(blob.length - FOOTER_SIZE);
  if (f[0] !== 0x1f || f[1] !== 0x8b || f.toString('latin1', 12, 14) !== 'SG' || f.toString('latin1', 32, 38) !== 'STARGZ') {
    throw new Error('craft-image: not an eStargz gzip blob (51-byte footer expected)');
  }
  return parseInt(f.toString('latin1', 16, 32), 16);
}

/** The TOC of an eStargz gzip blob: the first tar file of its last gzip member before the footer. */
export function readToc(blob: Buffer): CraftToc {
  const tar = zlib.gunzipSync(blob.subarray(tocOffsetOf(blob), blob.length - FOOTER_SIZE));
  const size = parseInt(tar.toString('latin1', 124, 136).replace(/\0.*$/, '').trim(), 8);
  return JSON.parse(tar.toString('utf8', 512, 512 + size)) as CraftToc;
}

/**
 * Replaces the TOC of an eStargz gzip blob. `edit` changes the parsed TOC in place (or returns
 * a new one); `opts.serialize` turns it into the JSON text (default JSON.stringify, which writes
 * lone surrogates as \ud800 escapes).
 */
export function rewriteToc(
  blob: Buffer,
  edit: (toc: CraftToc) => CraftToc | void,
  opts: { serialize?: (toc: CraftToc) => string } = {},
): { blob: Buffer; tocDigest: string } {
  const offset = tocOffsetOf(blob);
  const toc = readToc(blob);
  const edited = edit(toc) ?? toc;
  const json = Buffer.from((opts.serialize ?? JSON.stringify)(edited), 'utf8');
  const region = zlib.gzipSync(tarOne('stargz.index.json', json));
  return { blob: Buffer.concat([blob.subarray(0, offset), region, estargzFooter(offset)]), tocDigest: sha256(json) };
}

/** Writes one blob under dir/blobs/sha256 and returns its descriptor fields. */
async function putBlob(dir: string, data: Buffer | string): Promise<{ digest: string; size: number }> {
  const buf = Buffer.from(data);
  const digest = sha256(buf);
  await writeFile(join(dir, 'blobs', 'sha256', digest.slice(7)), buf);
  return { digest, size: buf.length };
}

/**
 * An OCI image layout with one linux/amd64 image tagged `tag` (default 'v1'). Without `config`,
 * one is written whose rootfs.diff_ids match the layers (umoci checks them).
 */
export async function writeLayout(
  dir: string,
  spec: { layers: CraftedLayer[]; config?: object; tag?: string },
): Promise<string> {
  await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
  const layers = [];
  for (const l of spec.layers) {
    const annotations = { ...(l.tocDigest ? { [TOC_DIGEST_ANNOTATION]: l.tocDigest } : {}), ...l.annotations };
    layers.push({ mediaType: l.mediaType ?? LAYER_GZIP, ...(await putBlob(dir, l.blob)), ...(Object.keys(annotations).length ? { annotations } : {}) });
  }
  const config = spec.config ?? {
    architecture: 'amd64',
    os: 'linux',
    rootfs: { type: 'layers', diff_ids: spec.layers.map((l) => sha256(zlib.gunzipSync(l.blob))) },
  };
  const manifest = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...(await putBlob(dir, JSON.stringify(config))) },
    layers,
  };
  const m = await putBlob(dir, JSON.stringify(manifest));
  const index = {
    schemaVersion: 2,
    manifests: [{ mediaType: manifest.mediaType, ...m, annotations: { 'org.opencontainers.image.ref.name': spec.tag ?? 'v1' } }],
  };
  await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  await writeFile(join(dir, 'index.json'), JSON.stringify(index));
  return dir;
}

/** Pushes the layout writeLayout made in dir to reg as repoTag ('hostile/x:v1'). */
export async function pushCraftedImage(reg: TestRegistry, dir: string, repoTag: string): Promise<void> {
  const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as { manifests: Array<{ annotations?: Record<string, string> }> };
  const tag = index.manifests[0]?.annotations?.['org.opencontainers.image.ref.name'] ?? 'v1';
  await pushLayout(reg, dir, repoTag, { tag, all: false });
}
