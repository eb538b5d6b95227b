// `copy`: an image (one platform's manifest, or the whole index) from one registry to another,
// digests kept byte for byte. Each blob is skipped when the target has it, mounted when it is
// on the same registry, else streamed: its GET body goes straight into upload PATCHes of
// COPY_DEFAULTS.chunkBytes each, so memory holds a piece of a body per blob in flight, not the
// blob nor a chunk, whatever the size. Manifests go last, children before their index, so the
// target never names a blob or manifest it lacks.
import { CLIENT_DEFAULTS, COPY_DEFAULTS } from '../config.js';
import { ErrorCodes, StargzError } from '../errors.js';
import { formatReference, type ImageReference } from '../reference/reference.js';
import type { RegistryClient } from '../registry/client.js';
import { defaultPlatform, parseManifest, selectManifest, type Descriptor, type ImageManifest, type Platform } from '../registry/manifest.js';
import { PushTarget, UploadLostError, type Upload } from '../registry/push.js';
import { mapConcurrent } from '../util/concurrent.js';
import { BlobReader } from './blob-reader.js';

export type BlobAction = 'copied' | 'skipped' | 'mounted';

export interface CopiedBlob {
  digest: string;
  size: number;
  mediaType: string;
  action: BlobAction;
}

/** What a copy tells as it goes (the CLI's progress display). */
export interface CopyObserver {
  /** A blob starts moving (after HEAD and mount said it must be uploaded). */
  uploadStarted?(blob: Descriptor): void;
  /** `bytes` more of the blob are acknowledged by the target. */
  uploaded?(blob: Descriptor, bytes: number): void;
  /** The blob is on the target, however it got there. */
  blobDone?(blob: CopiedBlob): void;
  /** A blob starts over from byte 0 (its upload session was lost). */
  restarted?(blob: Descriptor, reason: string): void;
}

export interface CopyOptions {
  source: RegistryClient;
  target: RegistryClient;
  from: ImageReference;
  to: ImageReference;
  /** The whole index (every manifest it names); otherwise `platform`'s manifest alone. */
  allPlatforms?: boolean;
  platform?: Platform;
  /** Upload PATCH size (default COPY_DEFAULTS.chunkBytes). */
  chunkBytes?: number;
  parallelBlobs?: number;
  /** Times a broken source body is reopened where it broke (default: the client's, CLIENT_DEFAULTS.retries). */
  sourceReopens?: number;
  signal?: AbortSignal;
  observer?: CopyObserver;
}

export interface CopySummary {
  source: string;
  destination: string;
  /** Digest and media type of what the destination reference now names. */
  digest: string;
  mediaType: string;
  manifests: number;
  blobs: Record<BlobAction, number>;
  bytes: Record<BlobAction, number>;
  items: CopiedBlob[];
}

/** Layers that registries are not allowed to serve (Windows base layers): left out, as skopeo and crane leave them. */
function nonDistributable(d: Descriptor): boolean {
  return /\.(foreign|nondistributable)\./.test(d.mediaType);
}

interface Doc {
  digest: string;
  mediaType: string;
  bytes: Buffer;
}

export async function copyImage(o: CopyOptions): Promise<CopySummary> {
  const chunkBytes = o.chunkBytes ?? COPY_DEFAULTS.chunkBytes;
  const parallel = o.parallelBlobs ?? COPY_DEFAULTS.parallelBlobs;
  if (!Number.isSafeInteger(chunkBytes) || chunkBytes < 1) throw new StargzError(ErrorCodes.USAGE, `chunkBytes must be a positive integer, got ${chunkBytes}`);
  const target = new PushTarget(o.target, o.to.repository);
  const sameRegistry = o.from.registry === o.to.registry;
  const items = new Map<string, Promise<CopiedBlob>>();
  const { signal, observer } = o;

  const fetchDoc = async (reference: string): Promise<Doc> => {
    const m = await o.source.getManifest(o.from.repository, reference, signal);
    return { digest: m.digest, mediaType: m.mediaType, bytes: m.bytes };
  };

  /** Streams the blob into `upload` from byte 0, one PATCH per chunk, and completes it. */
  const transfer = async (blob: Descriptor, upload: Upload): Promise<void> => {
    const reader = new BlobReader(o.source, o.from.repository, blob, o.sourceReopens ?? CLIENT_DEFAULTS.retries, signal);
    try {
      while (upload.offset < blob.size) {
        const start = upload.offset;
        await upload.append(Math.min(chunkBytes, blob.size - start), (from, n) => reader.range(from, n), signal);
        observer?.uploaded?.(blob, upload.offset - start);
      }
      reader.verify();
      await upload.complete(signal);
    } catch (err) {
      if (!(err instanceof UploadLostError)) await upload.cancel();
      throw err;
    } finally {
      reader.close();
    }
  };

  const copyBlob = async (blob: Descriptor): Promise<CopiedBlob> => {
    const done = (action: BlobAction): CopiedBlob => {
      const item = { digest: blob.digest, size: blob.size, mediaType: blob.mediaType, action };
      observer?.blobDone?.(item);
      return item;
    };
    if (await target.hasBlob(blob.digest, signal)) return done('skipped');
    let upload: Upload;
    if (sameRegistry && o.from.repository !== o.to.repository) {
      const mount = await target.mountBlob(blob.digest, o.from.repository, signal);
      if (mount.mounted) return done('mounted');
      upload = mount.upload;
    } else {
      upload = await target.startUpload(blob.digest, signal);
    }
    observer?.uploadStarted?.(blob);
    for (let restart = 0; ; restart++) {
      try {
        await transfer(blob, upload);
        return done('copied');
      } catch (err) {
        if (!(err instanceof UploadLostError) || restart >= COPY_DEFAULTS.uploadRestarts) throw err;
        observer?.restarted?.(blob, err.message);
        upload = await target.startUpload(blob.digest, signal);
      }
    }
  };

  /** Each blob once, however many manifests name it. */
  const blobOnce = (blob: Descriptor): Promise<CopiedBlob> => {
    let p = items.get(blob.digest);
    if (!p) {
      p = copyBlob(blob);
      items.set(blob.digest, p);
    }
    return p;
  };

  const copyBlobsOf = async (manifest: ImageManifest): Promise<void> => {
    const blobs = [manifest.config, ...manifest.layers].filter((d) => !nonDistributable(d));
    await mapConcurrent(blobs, parallel, async (b) => void (await blobOnce(b)));
  };

  /** An image manifest an index names, with its blobs copied: its bytes go to the target next. */
  const childManifest = async (d: Descriptor): Promise<Doc> => {
    const doc = await fetchDoc(d.digest);
    if (doc.bytes.length !== d.size) throw new StargzError(ErrorCodes.REGISTRY_PROTOCOL, `manifest ${d.digest} is ${doc.bytes.length} bytes, the index says ${d.size}`);
    const parsed = parseManifest(doc.bytes, doc.mediaType);
    if (parsed.kind !== 'manifest') throw new StargzError(ErrorCodes.MANIFEST_UNSUPPORTED, `index entry ${d.digest} is another index; nested indexes are not supported`);
    await copyBlobsOf(parsed.manifest);
    return doc;
  };

  const top = await fetchDoc(o.from.digest ?? o.from.tag ?? 'latest');
  const parsed = parseManifest(top.bytes, top.mediaType);
  let pushed: Doc;
  let manifests = 0;
  if (parsed.kind === 'index' && o.allPlatforms) {
    for (const d of parsed.index.manifests) {
      const doc = await childManifest(d);
      await target.putManifest(d.digest, doc.mediaType, doc.bytes, signal);
      manifests++;
    }
    pushed = top;
  } else if (parsed.kind === 'index') {
    pushed = await childManifest(selectManifest(parsed.index, o.platform ?? defaultPlatform()));
  } else {
    await copyBlobsOf(parsed.manifest);
    pushed = top;
  }
  if (o.to.digest !== undefined && o.to.digest !== pushed.digest) {
    throw new StargzError(ErrorCodes.USAGE, `the destination names ${o.to.digest}, but the manifest copied is ${pushed.digest}: a copy keeps digests`);
  }
  await target.putManifest(o.to.tag ?? o.to.digest ?? 'latest', pushed.mediaType, pushed.bytes, signal);
  manifests++;

  const all = await Promise.all(items.values());
  const count = (a: BlobAction): number => all.filter((b) => b.action === a).length;
  const bytes = (a: BlobAction): number => all.filter((b) => b.action === a).reduce((n, b) => n + b.size, 0);
  return {
    source: formatReference(o.from),
    destination: formatReference(o.to),
    digest: pushed.digest,
    mediaType: pushed.mediaType,
    manifests,
    blobs: { copied: count('copied'), skipped: count('skipped'), mounted: count('mounted') },
    bytes: { copied: bytes('copied'), skipped: bytes('skipped'), mounted: bytes('mounted') },
    items: all,
  };
}
