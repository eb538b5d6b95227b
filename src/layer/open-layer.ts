// Chooses how to read a layer, by the rule of the digest chain that covers it (trust.ts):
// lazily on a verified TOC, or whole, streamed and verified against the layer digest.
import { ErrorCodes, StargzError, isStargzError } from '../errors.js';
import { buildLayerIndexFromJson, MAX_FOOTER_SIZE, type Footer } from '../estargz/index.js';
import type { Descriptor } from '../registry/manifest.js';
import type { BlobSource } from '../blob/blob-source.js';
import { EstargzLayer, fetchUntrustedToc, formatOf, probeFooter, type LoadedToc } from './estargz-layer.js';
import { PlainLayer } from './plain-layer.js';
import { layerRule, uncoveredFile } from './trust.js';
import type { Layer, LayerContext } from './layer.js';

const TAR_MEDIA_TYPES = new Set([
  'application/vnd.oci.image.layer.v1.tar+gzip',
  'application/vnd.oci.image.layer.v1.tar+zstd',
  'application/vnd.oci.image.layer.v1.tar',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
  'application/vnd.docker.image.rootfs.diff.tar.gzip',
  'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
]);

export interface OpenLayerOptions {
  /** Do not download layers that would be read whole: give them an empty index (for `info`). */
  probePlainLayers?: boolean;
}

export async function openLayer(desc: Descriptor, source: BlobSource | undefined, ctx: LayerContext, options: OpenLayerOptions = {}): Promise<Layer> {
  if (!TAR_MEDIA_TYPES.has(desc.mediaType)) {
    throw new StargzError(ErrorCodes.MANIFEST_UNSUPPORTED, `layer ${desc.digest} has media type ${desc.mediaType}, which is not a tar layer`);
  }
  // A blob once verified whole against the layer digest vouches for everything in it.
  const known = PlainLayer.fromCache(desc, source, ctx);
  if (known) return known;
  if (!desc.mediaType.endsWith('.tar')) {
    try {
      const rule = layerRule(desc, ctx.insecureSkipTocVerify ?? false);
      if (rule.kind !== 'blob') {
        const known = EstargzLayer.fromIndexCache(desc, source, ctx, rule);
        if (known) return known;
        const loaded = await EstargzLayer.loadToc(desc, source, ctx, rule);
        const uncovered = uncoveredFile(loaded.index);
        if (rule.kind === 'unverified-toc') {
          ctx.notice(`layer ${desc.digest.slice(0, 19)} has no TOC-digest annotation: reading it lazily, unverified (--insecure-skip-toc-verify)`);
        }
        if (!uncovered || rule.kind === 'unverified-toc') {
          return EstargzLayer.onToc(desc, loaded, source, ctx, rule);
        }
        return await readWhole(desc, source, ctx, options, loaded.footer, loaded, `has chunks no digest covers (${JSON.stringify(uncovered)})`);
      }
      if (source && !ctx.offline) {
        // Read whole anyway; the footer (and TOC, untrusted until the stream confirms it) only
        // tell whether it is eStargz, whose bookkeeping entries are then skipped.
        if (options.probePlainLayers) return PlainLayer.probed(desc, ctx, formatOf(await probeFooter(source, ctx)));
        const { footer, json } = await fetchUntrustedToc(source, ctx, MAX_FOOTER_SIZE);
        const loaded = { footer, json, index: buildLayerIndexFromJson(json, footer) };
        return await readWhole(desc, source, ctx, options, footer, loaded, 'has no TOC-digest annotation');
      }
    } catch (err) {
      if (!isStargzError(err, ErrorCodes.NOT_ESTARGZ)) throw err;
    }
  }
  if (options.probePlainLayers) return PlainLayer.probed(desc, ctx);
  if (desc.mediaType.endsWith('+zstd')) {
    throw new StargzError(ErrorCodes.MANIFEST_UNSUPPORTED, `layer ${desc.digest} is zstd but not eStargz; only eStargz zstd layers are supported`);
  }
  return PlainLayer.open(desc, source, ctx);
}

/** Rule (b) for an eStargz blob. */
async function readWhole(desc: Descriptor, source: BlobSource | undefined, ctx: LayerContext, options: OpenLayerOptions, footer: Footer, loaded: LoadedToc, why: string): Promise<Layer> {
  if (options.probePlainLayers) return PlainLayer.probed(desc, ctx, formatOf(footer));
  if (footer.compression === 'zstd') {
    throw new StargzError(
      ErrorCodes.MANIFEST_UNSUPPORTED,
      `layer ${desc.digest} ${why}, and a zstd eStargz layer cannot be verified whole here (--insecure-skip-toc-verify reads it unverified)`,
    );
  }
  return PlainLayer.open(desc, source, ctx, { loaded, format: formatOf(footer), why });
}
