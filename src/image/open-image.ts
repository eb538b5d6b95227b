// Opens an image for reading: resolves the reference (or, offline, the cached resolution),
// opens every layer's index at once (TOCs fetched in parallel), and merges them into the
// one VFS that `sync`, `ls` and `mount` all use.
import { ErrorCodes, StargzError } from '../errors.js';
import { resolveOptions, type Options } from '../config.js';
import { formatReference, type ImageReference } from '../reference/reference.js';
import { RegistryClient, type RegistryClientOptions } from '../registry/client.js';
import { defaultPlatform, formatPlatform, parseManifest, parsePlatform, type Descriptor, type ImageManifest } from '../registry/manifest.js';
import { MemoryChunkCache } from '../cache/memory-cache.js';
import { DiskCache, defaultCacheDir } from '../cache/disk-cache.js';
import { ChunkCache } from '../cache/chunk-cache.js';
import { RegistryBlobSource } from '../blob/blob-source.js';
import { Limiter } from '../util/limiter.js';
import { ByteBudget } from '../util/byte-budget.js';
import { DEFAULT_FETCH_TUNING, type Layer, type LayerContext } from '../layer/layer.js';
import { FetchMetrics } from '../metrics/fetch-metrics.js';
import { openLayer } from '../layer/open-layer.js';
import { EstargzLayer } from '../layer/estargz-layer.js';
import { InflatePool } from '../layer/inflate-pool.js';
import { MergedFs } from '../vfs/merged-fs.js';
import { INDEX_CODEC_VERSION } from '../layer/index-codec.js';
import type { Logger } from '../util/log.js';
import { startHeadStart, type HeadStart } from './head-start.js';

export interface OpenImageOptions extends Partial<Options> {
  registry?: RegistryClientOptions;
  notice?: (message: string) => void;
  /** Per-chunk cache lookups at debug (registry requests log through `registry.log`). */
  log?: Logger;
  /** Do not download layers that are not eStargz (they get an empty index): for `info`. */
  probePlainLayers?: boolean;
  /** Start the inflate workers while the manifest and TOCs are fetched (sync, mount). */
  warmInflater?: boolean;
  /** false: chunks fetched by range are not written to the disk cache (sync --no-cache; see LayerContext). */
  cacheFetchedChunks?: boolean;
  /** sync into a new DEST: PATH's chunks of the top layer fetched as soon as its index is in (head-start.ts). */
  headStart?: HeadStart;
}

export interface OpenedImage {
  ref: ImageReference;
  manifestDigest: string;
  manifest: ImageManifest;
  platform: string;
  layers: Layer[];
  fs: MergedFs;
  client: RegistryClient;
  ctx: LayerContext;
  /** Everything the fetch path did, per layer: the client, the cache, the layers and the scheduler count here. */
  metrics: FetchMetrics;
  disk: DiskCache;
  /** Stores the indexes of layers opened on a TOC just read, for the next open (close does it too). */
  storeIndexes(): void;
  close(): Promise<void>;
}

/** The registry client an image is read through (also `export`'s, which needs no layer opened). */
export function registryClientFor(ref: ImageReference, options: OpenImageOptions, metrics: FetchMetrics): RegistryClient {
  const opts = resolveOptions(options);
  return new RegistryClient(ref.registry, {
    requestTimeoutMs: opts.requestTimeoutMs,
    minTransferRate: opts.minTransferRate,
    rateWindowMs: opts.rateWindowMs,
    ...options.registry,
    maxConnectionsPerHost: Math.max(opts.concurrency, options.registry?.maxConnectionsPerHost ?? 0),
    metrics,
  });
}

export async function openImage(ref: ImageReference, options: OpenImageOptions = {}): Promise<OpenedImage> {
  const opts = resolveOptions(options);
  const notice = options.notice ?? (() => undefined);
  const platform = opts.platform ? parsePlatform(opts.platform) : defaultPlatform();
  const metrics = new FetchMetrics();
  const client = registryClientFor(ref, options, metrics);
  // The manifest request goes out first: opening the disk cache (SQLite) and starting the
  // inflate workers take tens of milliseconds, spent while it is on the wire.
  const resolving = opts.offline ? undefined : client.resolveImage(ref, platform);
  resolving?.catch(() => undefined); // awaited below: a failure meanwhile is not unhandled
  // The request is written once its chain of promises has run: let it, before SQLite's synchronous open.
  if (resolving) await new Promise((resolve) => setImmediate(resolve));
  let disk: DiskCache;
  try {
    disk = DiskCache.open({ dir: opts.cacheDir ?? defaultCacheDir(), maxBytes: opts.cacheMaxBytes });
  } catch (err) {
    await client.close().catch(() => undefined);
    throw err;
  }
  const inflater = new InflatePool();
  if (options.warmInflater) inflater.warm();
  try {
    const resolutionKey = `${formatReference(ref)}|${formatPlatform(platform)}`;
    let manifestDigest: string;
    let manifest: ImageManifest;
    if (opts.offline) {
      const known = ref.digest ?? disk.getTagResolution(resolutionKey)?.digest;
      const bytes = known ? disk.getManifest(known) : undefined;
      if (!known || !bytes) {
        throw new StargzError(ErrorCodes.OFFLINE_MISS, `${formatReference(ref)} has not been resolved before; run once without --offline`);
      }
      const parsed = parseManifest(bytes);
      if (parsed.kind !== 'manifest') {
        throw new StargzError(ErrorCodes.OFFLINE_MISS, `${formatReference(ref)}: the cached manifest is an index; run once without --offline`);
      }
      manifestDigest = known;
      manifest = parsed.manifest;
    } else {
      const resolved = await resolving!;
      manifestDigest = resolved.manifestDigest;
      manifest = resolved.manifest;
      disk.putManifest(manifestDigest, resolved.manifestBytes);
      disk.putTagResolution(resolutionKey, manifestDigest);
    }

    const ctx: LayerContext = {
      cache: new ChunkCache(new MemoryChunkCache(opts.memoryCacheBytes), disk, { metrics, ...(options.log ? { log: options.log } : {}) }),
      disk,
      limiter: new Limiter(opts.concurrency),
      memory: new ByteBudget(opts.memoryBudgetBytes),
      tuning: { maxGap: opts.maxGapBytes, maxRangeBytes: opts.maxRangeBytes, tocTailGuess: DEFAULT_FETCH_TUNING.tocTailGuess },
      metrics,
      inflater,
      offline: opts.offline,
      insecureSkipTocVerify: opts.insecureSkipTocVerify,
      cacheFetchedChunks: options.cacheFetchedChunks ?? true,
      notice,
    };
    const opening = manifest.layers.map((desc: Descriptor) =>
      openLayer(desc, opts.offline ? undefined : new RegistryBlobSource(client, ref.repository, desc.digest, desc.size), ctx, {
        probePlainLayers: options.probePlainLayers,
      }),
    );
    const { headStart } = options;
    if (headStart && !opts.offline) opening.at(-1)?.then((top) => startHeadStart(top, headStart), () => undefined);
    const layers = await Promise.all(opening);
    // The merged tree is stored only where the layers are what they were the last time: each
    // verified by digest (not probed, not on an unverified TOC) and read the same way.
    const treeKey = options.probePlainLayers || opts.insecureSkipTocVerify ? undefined : mergedTreeKey(manifestDigest, layers);
    const storedTree = treeKey === undefined ? undefined : disk.getMergedTree(treeKey);
    const fs = new MergedFs(layers, { connections: opts.concurrency, metrics, ...(storedTree ? { storedTree } : {}) });
    if (storedTree) options.log?.debug(fs.treeFromStore ? `merged tree of ${manifestDigest} from the cache` : `the cached merged tree of ${manifestDigest} does not fit its layers: merged again`);
    let treeUnstored = treeKey !== undefined && !fs.treeFromStore;
    const storeIndexes = (): void => {
      for (const layer of layers) if (layer instanceof EstargzLayer) layer.storeIndex();
      if (!treeUnstored || disk.readOnly) return;
      treeUnstored = false;
      try {
        disk.putMergedTree(treeKey!, fs.encodeTree());
      } catch (err) {
        notice(`cannot store the merged tree of ${manifestDigest} in the cache: ${(err as Error).message}`);
      }
    };
    for (const w of fs.warnings) notice(w);
    return {
      ref,
      manifestDigest,
      manifest,
      platform: formatPlatform(platform),
      layers,
      fs,
      client,
      ctx,
      metrics,
      disk,
      storeIndexes,
      async close() {
        storeIndexes();
        await ctx.inflater?.close();
        await client.close();
        disk.close();
      },
    };
  } catch (err) {
    await inflater.close();
    await client.close().catch(() => undefined);
    disk.close();
    throw err;
  }
}

/** What a stored merged tree is filed under: the manifest, how each layer was read, and the layer-index codec it was merged from. */
function mergedTreeKey(manifestDigest: string, layers: readonly Layer[]): string {
  return `${manifestDigest}|${layers.map((l) => `${l.lazy ? 'lazy' : 'whole'}:${l.format}`).join(',')}|index-v${INDEX_CODEC_VERSION}`;
}
