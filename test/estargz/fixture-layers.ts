// Reads the layers of a committed OCI layout: index.json -> manifest -> layer blobs.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { layoutsDir } from '../helpers/paths.js';
import { buildLayerIndex, extractTocJson, MAX_FOOTER_SIZE, parseFooter, parseToc, type Footer, type LazyLayerIndex as LayerIndex } from '../../src/estargz/index.js';

export interface FixtureLayer {
  digest: string;
  mediaType: string;
  annotations: Record<string, string>;
  blob: Buffer;
}

function blobPath(layout: string, digest: string): string {
  return join(layoutsDir, layout, 'blobs', 'sha256', digest.replace(/^sha256:/, ''));
}

export function fixtureLayers(layout: string): FixtureLayer[] {
  const index = JSON.parse(readFileSync(join(layoutsDir, layout, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
  const manifest = JSON.parse(readFileSync(blobPath(layout, index.manifests[0]!.digest), 'utf8')) as {
    layers: Array<{ digest: string; mediaType: string; annotations?: Record<string, string> }>;
  };
  return manifest.layers.map((l) => ({
    digest: l.digest,
    mediaType: l.mediaType,
    annotations: l.annotations ?? {},
    blob: readFileSync(blobPath(layout, l.digest)),
  }));
}

/** A fixture layer opened the way a reader does: footer, TOC JSON (bounded by maxBytes), index. */
export function openFixtureLayer(l: FixtureLayer, maxBytes?: number): { footer: Footer; json: Buffer; index: LayerIndex } {
  const footer = parseFooter(l.blob.subarray(l.blob.length - MAX_FOOTER_SIZE), l.blob.length);
  const json = extractTocJson(l.blob.subarray(footer.tocOffset, footer.tocOffset + footer.tocLength), footer.compression, maxBytes);
  return { footer, json, index: buildLayerIndex(parseToc(json), footer) };
}

/** The StargzError code fn throws, or 'no error'. */
export function errorCode(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return 'no error';
}
