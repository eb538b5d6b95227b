// The digest chain: the one place that says what vouches for the bytes a layer serves.
//
//   manifest        verified against REF@sha256 when pinned, an index's child against the
//                   index's descriptor (registry/client.ts getManifest)
//   -> layer descriptor digest
//   -> (a) 'toc':   the layer carries the TOC-digest annotation: TOC JSON verified against it,
//                   then every chunk against its `chunkDigest`; a file with chunks lacking
//                   one but a file `digest` is fetched whole and verified before any of its
//                   bytes are served (estargz-layer.ts).
//      (b) 'blob':  no annotation, or a chunk that (a) does not cover: the whole blob is
//                   streamed and verified against the layer digest, and everything is served
//                   from that verified copy (plain-layer.ts). For an eStargz blob the TOC in
//                   it must agree with the tar it describes (checkTocAgainstTar).
//      'unverified-toc': (a) without the annotation, only with --insecure-skip-toc-verify.
//
// Cache keys follow what verified the data: TOCs by TOC digest, whole-blob indexes by layer
// digest (written only after the blob matched it), chunks by their content digest.
import { ErrorCodes, StargzError } from '../errors.js';
import { hasDigest, tocDigest, type ChunkRef, type IndexEntry, type LayerIndex } from '../estargz/index.js';
import type { Descriptor } from '../registry/manifest.js';

export const TOC_DIGEST_ANNOTATION = 'containerd.io/snapshot/stargz/toc.digest';

export type LayerRule = { kind: 'toc'; tocDigest: string } | { kind: 'blob' } | { kind: 'unverified-toc' };

/** Which link of the chain verifies this layer's bytes. */
export function layerRule(desc: Descriptor, insecureSkipTocVerify: boolean): LayerRule {
  const annotated = desc.annotations?.[TOC_DIGEST_ANNOTATION];
  if (annotated) return { kind: 'toc', tocDigest: annotated };
  return insecureSkipTocVerify ? { kind: 'unverified-toc' } : { kind: 'blob' };
}

/** Throws DIGEST_MISMATCH unless the TOC JSON hashes to the digest that names it. */
export function verifyToc(json: Buffer, expected: string, layerDigest: string): void {
  const actual = tocDigest(json);
  if (actual !== expected) {
    throw new StargzError(ErrorCodes.DIGEST_MISMATCH, `TOC of layer ${layerDigest} has digest ${actual}, but the manifest says ${expected}`);
  }
}

/** A regular file whose digest-less chunks are vouched for by its whole-file digest only. */
export function needsWholeFile(entry: IndexEntry): boolean {
  return entry.type === 'reg' && hasDigest(entry) && entry.chunks.some((c) => !hasDigest(c));
}

/** The first file with a chunk that neither its chunkDigest nor a file digest covers. */
export function uncoveredFile(index: LayerIndex): string | undefined {
  for (const e of index.entries.values()) {
    if (e.type === 'reg' && !hasDigest(e) && e.chunks.some((c) => !hasDigest(c))) return e.path;
  }
  return undefined;
}

/** What a whole-blob stream of an eStargz blob saw: its TOC JSON and, per file, the hashes at the TOC's chunk boundaries. */
export interface StreamedTocEvidence {
  json: Buffer | undefined;
  chunkDigests: Map<string, string[]>;
}

/**
 * Rule (b) for an eStargz blob: the TOC the stream carried must be the one the boundaries
 * came from, and every digest it declares must match the streamed bytes (`tar`: the index
 * built from the tar headers and contents).
 */
export function checkTocAgainstTar(layerDigest: string, toc: { json: Buffer; index: LayerIndex }, tar: LayerIndex, seen: StreamedTocEvidence): void {
  const mismatch = (why: string): StargzError => new StargzError(ErrorCodes.DIGEST_MISMATCH, `layer ${layerDigest}: ${why}`);
  if (!seen.json || tocDigest(seen.json) !== tocDigest(toc.json)) throw mismatch('the TOC inside the blob is not the TOC its footer points to');
  for (const [path, e] of toc.index.entries) {
    if (e.type !== 'reg') continue;
    const t = tar.entries.get(path);
    if (!t || t.type !== 'reg' || t.size !== e.size) throw mismatch(`the TOC describes ${JSON.stringify(path)} unlike the tar stream`);
    if (e.digest !== undefined && e.digest !== t.digest) throw mismatch(`${JSON.stringify(path)} has digest ${t.digest}, the TOC says ${e.digest}`);
    const got = seen.chunkDigests.get(path) ?? [];
    e.chunks.forEach((c: ChunkRef, i) => {
      if (c.digest !== undefined && c.digest !== got[i]) {
        throw mismatch(`${JSON.stringify(path)} chunk at file offset ${c.fileOffset} has digest ${got[i]}, the TOC says ${c.digest}`);
      }
    });
  }
  for (const [path, t] of tar.entries) {
    if (t.type === 'reg' && toc.index.entries.get(path)?.type !== 'reg') throw mismatch(`${JSON.stringify(path)} is in the tar stream but not in the TOC`);
  }
}
