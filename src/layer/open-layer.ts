// Chooses how to read a layer: eStargz when it has a footer, otherwise a plain layer
// that is fetched whole.
import { ErrorCodes, StargzError, isStargzError } from '../errors.js';
import type { Descriptor } from '../registry/manifest.js';
import type { BlobSource } from '../blob/blob-source.js';
import { EstargzLayer } from './estargz-layer.js';
import { PlainLayer } from './plain-layer.js';
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
  /** Do not download plain layers: give them an empty index (for `info`). */
  probePlainLayers?: boolean;
}

export async function openLayer(desc: Descriptor, source: BlobSource | undefined, ctx: LayerContext, options: OpenLayerOptions = {}): Promise<Layer> {
  if (!TAR_MEDIA_TYPES.has(desc.mediaType)) {
    throw new StargzError(ErrorCodes.MANIFEST_UNSUPPORTED, `layer ${desc.digest} has media type ${desc.mediaType}, which is not a tar layer`);
  }
  if (!desc.mediaType.endsWith('.tar')) {
    const known = PlainLayer.fromCache(desc, source, ctx);
    if (known) return known;
    try {
      return await EstargzLayer.open(desc, source, ctx);
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
