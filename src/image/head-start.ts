// A sync into a new DEST knows which bytes it will read before the layers are merged: every
// regular file under PATH in the top layer is in the merged tree at that very path. No layer
// above can hide it, a layer's whiteouts and opaque markers hide only what lies below it, and
// each directory a layer has (implied ones too) is a directory of the merge, replacing whatever
// the layers below put there (vfs/merge.ts). So the top layer's chunks under PATH are fetched
// as soon as its index is in, while the other TOCs are parsed, the layers merged and DEST's
// directories made. Lower layers wait for the walk: an upper layer may hide their files.
import { cacheable, type Layer } from '../layer/layer.js';
import type { ChunkRef } from '../estargz/index.js';
import { parentEntryName } from '../file-index/names.js';

/** What to fetch early: an absolute, normalized image path and a bound on the inflated bytes. */
export interface HeadStart {
  path: string;
  maxBytes: number;
}

/**
 * The chunks of the top layer's regular files at or below `path`, in the layer's order, as many
 * files as fit in `maxBytes` (inflated). Only files whose every parent is a directory of the
 * layer: below a non-directory (a symlink on `path`, say) the merge resolves or drops them.
 */
export function headStartChunks(top: Layer, { path, maxBytes }: HeadStart): ChunkRef[] {
  const entries = top.index.entries;
  const rel = path.slice(1);
  const dirs = new Map<string, boolean>([['', true]]);
  const underDirs = (dir: string): boolean => {
    let known = dirs.get(dir);
    if (known === undefined) {
      known = entries.get(dir)?.type === 'dir' && underDirs(parentEntryName(dir));
      dirs.set(dir, known);
    }
    return known;
  };
  const out: ChunkRef[] = [];
  let bytes = 0;
  for (const [name, entry] of entries) {
    if (entry.type !== 'reg' || entry.size === 0) continue;
    if (rel !== '' && name !== rel && !name.startsWith(rel + '/')) continue;
    // Only cacheable chunks: the walk reads the rest itself, and would fetch them twice.
    if (!entry.chunks.every(cacheable) || bytes + entry.size > maxBytes || !underDirs(parentEntryName(name))) continue;
    bytes += entry.size;
    out.push(...entry.chunks);
  }
  return out;
}

/** Fetches them into the cache; the walk's reads join what is still in flight (Layer.readChunks). A failure is the walk's to meet again. */
export function startHeadStart(top: Layer, headStart: HeadStart): void {
  const refs = headStartChunks(top, headStart);
  if (refs.length > 0) top.readChunks(refs, () => undefined, { fetchOnly: true }).catch(() => undefined);
}
