// The images and swapped blobs the integrity tests (issue 7: every byte served is covered by
// a digest) share: crafted from the edge and mixed fixtures, pushed to a real registry, and
// tampered blobs written to files that a fault proxy's 'serve-file' rule serves in place of
// the real ones. Every tampered blob inflates cleanly and keeps its size: only a digest tells.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import zlib from 'node:zlib';
import { createHash } from 'node:crypto';
import { fixtureLayers, openFixtureLayer, type FixtureLayer } from '../estargz/fixture-layers.js';
import { pushCraftedImage, rewriteToc, writeLayout, type CraftToc, type CraftedLayer } from './craft-image.js';
import { sameSizeToc, tamperChunk, tamperedPlainGzip } from './hostile-blobs.js';
import { layoutsDir } from './paths.js';
import { pushLayout, type TestRegistry } from './registry.js';
import type { FaultRule } from './fault-proxy.js';

/** edge's layer 0 holds bin/tool: 300000 bytes in 5 chunks. */
export const MULTI_CHUNK_FILE = 'bin/tool';

export interface IntegrityImages {
  edge: FixtureLayer[];
  mixed: FixtureLayer[];
  /** Manifest digests by repo:tag. */
  manifests: Record<string, string>;
  /** Layer digests of the crafted images, by repo:tag. */
  layers: Record<string, string[]>;
  /** Tampered blobs, by what they are. */
  files: {
    /** edge layer 0 with bin/tool's last chunk overwritten (TOC intact). */
    lateChunk: string;
    /** edge layer 0 with bin/tool's last chunk overwritten and the TOC's digests updated to match: self-consistent. */
    consistent: string;
    /** edge layer 0 with a TOC that drops every chunkDigest and changes etc/passwd's mode. */
    wrongToc: string;
    /** mixed's plain layer with a file's bytes overwritten. */
    plain: string;
    /** 'crafted/no-chunk-digest' layer 0 with bin/tool's last chunk overwritten. */
    noChunkDigestLateChunk: string;
  };
  /** The original bin/tool. */
  tool: Buffer;
}

const stripToolChunkDigests = (keepFileDigest: boolean) => (toc: CraftToc) => {
  for (const e of toc.entries) {
    if (e.name.replace(/^\.?\//, '') !== MULTI_CHUNK_FILE) continue;
    delete e.chunkDigest;
    if (!keepFileDigest) delete e.digest;
  }
};

/** Pushes fixtures/edge:v1, fixtures/mixed:v1 and the crafted images; writes the tampered blobs under dir. */
export async function prepareIntegrityImages(reg: TestRegistry, dir: string): Promise<IntegrityImages> {
  await mkdir(dir, { recursive: true });
  const edge = fixtureLayers('edge');
  const mixed = fixtureLayers('mixed');
  await pushLayout(reg, 'edge', 'fixtures/edge:v1');
  await pushLayout(reg, 'mixed', 'fixtures/mixed:v1');
  const manifests: Record<string, string> = {};
  const layerDigests: Record<string, string[]> = {};
  const index = JSON.parse(await readFile(join(layoutsDir, 'edge', 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
  manifests['fixtures/edge:v1'] = index.manifests[0]!.digest;

  const annotated = (l: FixtureLayer): CraftedLayer => ({ blob: l.blob, annotations: l.annotations });
  const push = async (name: string, layers: CraftedLayer[]): Promise<void> => {
    const layout = await writeLayout(join(dir, name.replace(/\W/g, '_')), { layers });
    const idx = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
    manifests[name] = idx.manifests[0]!.digest;
    const m = JSON.parse(await readFile(join(layout, 'blobs', 'sha256', idx.manifests[0]!.digest.slice(7)), 'utf8')) as { layers: Array<{ digest: string }> };
    layerDigests[name] = m.layers.map((l) => l.digest);
    await pushCraftedImage(reg, layout, name);
  };
  // edge, its layers without the TOC-digest annotation (rule (b): read whole).
  await push('crafted/bare:v1', edge.map((l) => ({ blob: l.blob })));
  await push('crafted/bare-legacy:v1', fixtureLayers('legacy').map((l) => ({ blob: l.blob })));
  // edge with bin/tool's chunks lacking chunkDigest: covered by its file digest ...
  const noChunk = rewriteToc(edge[0]!.blob, stripToolChunkDigests(true));
  await push('crafted/no-chunk-digest:v1', [noChunk, ...edge.slice(1).map(annotated)]);
  // ... or by nothing at all (rule (b) for that layer).
  await push('crafted/uncovered:v1', [rewriteToc(edge[0]!.blob, stripToolChunkDigests(false)), ...edge.slice(1).map(annotated)]);

  // Unannotated, with TOCs that contradict the (correctly digested) data they describe.
  const lie = (field: 'chunkDigest' | 'digest') => (toc: CraftToc) => {
    const entries = toc.entries.filter((e) => e.name.replace(/^\.?\//, '') === MULTI_CHUNK_FILE);
    if (field === 'chunkDigest') entries[0].chunkDigest = entries[1].chunkDigest;
    else entries[0].digest = 'sha256:' + '0'.repeat(64);
  };
  await push('crafted/lying-chunk-digest:v1', [{ blob: rewriteToc(edge[0]!.blob, lie('chunkDigest')).blob }, ...edge.slice(1).map(annotated)]);
  await push('crafted/lying-file-digest:v1', [{ blob: rewriteToc(edge[0]!.blob, lie('digest')).blob }, ...edge.slice(1).map(annotated)]);

  const tool = openFixtureLayer(edge[0]!).index.entries.get(MULTI_CHUNK_FILE)!;
  const last = tool.chunks[tool.chunks.length - 1]!;
  const noChunkIndex = openFixtureLayer({ ...edge[0]!, blob: noChunk.blob }).index.entries.get(MULTI_CHUNK_FILE)!;
  const wrongToc = rewriteToc(edge[0]!.blob, (toc) => {
    for (const e of toc.entries) {
      delete e.chunkDigest;
      if (e.name.replace(/^\.?\//, '') === 'etc/passwd') e.mode = 0o777;
    }
  });
  // A registry that swaps a layer for a self-consistent eStargz blob: only the layer digest can tell.
  const lateChunk = tamperChunk(edge[0]!.blob, last);
  const newTool = Buffer.from(toolBytes(edge[0]!));
  newTool.fill(0x58, last.fileOffset, last.fileOffset + last.size);
  const sha = (b: Buffer): string => 'sha256:' + createHash('sha256').update(b).digest('hex');
  const consistent = rewriteToc(lateChunk, (toc) => {
    for (const e of toc.entries) {
      if (e.name.replace(/^\.?\//, '') !== MULTI_CHUNK_FILE) continue;
      if (e.type === 'reg') e.digest = sha(newTool);
      if ((e.chunkOffset ?? 0) === last.fileOffset) e.chunkDigest = sha(newTool.subarray(last.fileOffset));
    }
  });
  const files: IntegrityImages['files'] = {
    consistent: join(dir, 'consistent.blob'),
    lateChunk: join(dir, 'late-chunk.blob'),
    wrongToc: join(dir, 'wrong-toc.blob'),
    plain: join(dir, 'plain.blob'),
    noChunkDigestLateChunk: join(dir, 'no-chunk-digest-late-chunk.blob'),
  };
  await writeFile(files.lateChunk, lateChunk);
  await writeFile(files.consistent, sameSizeToc(edge[0]!.blob, consistent.blob));
  await writeFile(files.wrongToc, sameSizeToc(edge[0]!.blob, wrongToc.blob));
  await writeFile(files.plain, tamperedPlainGzip(mixed[0]!.blob));
  await writeFile(files.noChunkDigestLateChunk, tamperChunk(noChunk.blob, noChunkIndex.chunks[noChunkIndex.chunks.length - 1]!));
  return { edge, mixed, manifests, layers: layerDigests, files, tool: toolBytes(edge[0]!) };
}

/** bin/tool's bytes as the fixture holds them (inflated straight from its chunks). */
function toolBytes(layer: FixtureLayer): Buffer {
  const { index } = openFixtureLayer(layer);
  const parts = index.entries.get(MULTI_CHUNK_FILE)!.chunks.map((c) => zlib.gunzipSync(layer.blob.subarray(c.offset, c.end)).subarray(c.innerOffset, c.innerOffset + c.size));
  return Buffer.concat(parts);
}

/**
 * A manifest of a layout (by digest) with one hex digit of its config digest changed: it
 * parses, keeps its size, and hashes to something else. Written to `file`.
 */
export async function alteredManifest(layout: string, digest: string, file: string): Promise<string> {
  const bytes = await readFile(join(layoutsDir, layout, 'blobs', 'sha256', digest.slice(7)), 'utf8');
  const at = bytes.indexOf('"digest":"sha256:') + '"digest":"sha256:'.length;
  const altered = bytes.slice(0, at) + (bytes[at] === '0' ? '1' : '0') + bytes.slice(at + 1);
  await writeFile(file, altered);
  return file;
}

/** A proxy rule answering GETs of `digest`'s blob (any repository) with the bytes of `file`. */
export function swapBlob(digest: string, file: string): FaultRule {
  return { match: { method: 'GET', pathIncludes: `/blobs/${digest}` }, action: 'serve-file', file };
}
