// An image as a docker-archive or an OCI image layout: the manifest as the registry serves it,
// the config and the layer blobs exactly as stored (compressed), each streamed from the
// registry to the output one at a time and verified as it passes — hashed and counted, and a
// blob that does not hash to its digest (or is not its size) fails the export before the
// output gets its final name (output.ts). Nothing is held in memory but a stream's buffers.
//
// The chunk cache cannot stand in for a blob: it holds inflated chunks, and an eStargz blob's
// compressed bytes (gzip or zstd, as its builder's compressor wrote them) cannot be rebuilt
// byte for byte from them, so every layer is fetched.
import type { Readable } from 'node:stream';
import { ErrorCodes, StargzError } from '../errors.js';
import type { ImageReference } from '../reference/reference.js';
import type { RegistryClient, ResolvedImage } from '../registry/client.js';
import type { Descriptor, Platform } from '../registry/manifest.js';
import type { FetchMetrics } from '../metrics/fetch-metrics.js';
import type { ArchiveWriter } from './output.js';
import { verifyingStream } from '../blob/verifying-stream.js';

import type { ExportFormat } from './formats.js';

/** OCI annotation that names a manifest in an index.json (skopeo's and umoci's `DIR:TAG`). */
const REF_NAME = 'org.opencontainers.image.ref.name';
/** What containerd (ctr import, nerdctl load) reads as the image's full name. */
const CONTAINERD_NAME = 'io.containerd.image.name';

export interface ImageArchiveSummary {
  format: ExportFormat;
  manifestDigest: string;
  /** Distinct blobs written (config and layers). */
  blobs: number;
  /** Their bytes (what was fetched of blobs, and what the archive holds beside its JSON). */
  blobBytes: number;
}

export interface ImageArchiveOptions {
  client: RegistryClient;
  ref: ImageReference;
  image: ResolvedImage;
  format: ExportFormat;
  out: ArchiveWriter;
  metrics: FetchMetrics;
  signal?: AbortSignal;
}

/** `blobs/sha256/<hex>`: where both formats keep a blob (docker save since 25 does the same). */
export function blobPath(digest: string): string {
  const [algorithm, hex] = digest.split(':');
  return `blobs/${algorithm}/${hex}`;
}

/** A layer blob from the registry, verified as it streams; counted per layer for the progress bars. */
async function streamLayer(o: ImageArchiveOptions, desc: Descriptor): Promise<void> {
  const what = `blob ${o.ref.repository}@${desc.digest}`;
  const read = o.metrics.readStarted(desc.digest, desc.size);
  try {
    const body = (await o.client.openBlobStream(o.ref.repository, desc.digest, o.signal, desc.size)) as Readable;
    const verified = verifyingStream(desc, what, (n) => read.delivered(n));
    body.on('error', (err) => verified.destroy(err));
    await o.out.addStream(blobPath(desc.digest), desc.size, body.pipe(verified));
    read.done();
  } catch (err) {
    read.done(err instanceof StargzError ? err : { code: ErrorCodes.IO });
    throw err;
  }
}

/** The name `docker load` tags the image with: the reference without its digest (none for a digest alone). */
function repoTags(ref: ImageReference): string[] {
  return ref.tag === undefined ? [] : [`${ref.registry}/${ref.repository}:${ref.tag}`];
}

/** The platform for index.json: the one chosen from the registry's index, else the config's own. */
function platformOf(image: ResolvedImage, config: Buffer): { platform?: Platform } {
  if (image.platform) return { platform: image.platform };
  try {
    const c = JSON.parse(config.toString('utf8')) as { os?: unknown; architecture?: unknown; variant?: unknown };
    if (typeof c.os !== 'string' || typeof c.architecture !== 'string') return {};
    return { platform: { os: c.os, architecture: c.architecture, ...(typeof c.variant === 'string' && c.variant ? { variant: c.variant } : {}) } };
  } catch {
    return {}; // a config that is not JSON is the registry's business: it is copied as it is
  }
}

export async function writeImageArchive(o: ImageArchiveOptions): Promise<ImageArchiveSummary> {
  const { manifest, manifestDigest, manifestBytes } = o.image;
  const config = await o.client.getBlob(o.ref.repository, manifest.config.digest, undefined, o.signal);
  if (o.format === 'oci') await o.out.addBytes('oci-layout', Buffer.from(JSON.stringify({ imageLayoutVersion: '1.0.0' })));
  await o.out.addBytes(blobPath(manifest.config.digest), config);
  let blobs = 1;
  let blobBytes = config.length;
  // A layer listed twice (the same empty layer) is one blob.
  const written = new Set<string>([manifest.config.digest]);
  for (const layer of manifest.layers) {
    if (written.has(layer.digest)) continue;
    written.add(layer.digest);
    await streamLayer(o, layer);
    blobs++;
    blobBytes += layer.size;
  }
  if (o.format === 'oci') {
    // The manifest exactly as the registry has it, so its digest (and the eStargz annotations) stay.
    await o.out.addBytes(blobPath(manifestDigest), manifestBytes);
    const annotations: Record<string, string> = { [CONTAINERD_NAME]: `${o.ref.registry}/${o.ref.repository}${o.ref.tag ? `:${o.ref.tag}` : `@${manifestDigest}`}` };
    if (o.ref.tag !== undefined) annotations[REF_NAME] = o.ref.tag;
    const index = {
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [{ mediaType: manifest.mediaType, digest: manifestDigest, size: manifestBytes.length, ...platformOf(o.image, config), annotations }],
    };
    await o.out.addBytes('index.json', Buffer.from(JSON.stringify(index)));
  } else {
    const doc = [{ Config: blobPath(manifest.config.digest), RepoTags: repoTags(o.ref), Layers: manifest.layers.map((l) => blobPath(l.digest)) }];
    await o.out.addBytes('manifest.json', Buffer.from(JSON.stringify(doc)));
  }
  return { format: o.format, manifestDigest, blobs, blobBytes };
}
