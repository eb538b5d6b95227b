// Reads the layers of a committed OCI layout: index.json -> manifest -> layer blobs.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { layoutsDir } from '../helpers/paths.js';

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
