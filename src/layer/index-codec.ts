// A plain layer's file index from its tar headers (the one builder, file-index/builder.ts),
// and its compact cache encoding.
import { ErrorCodes, StargzError } from '../errors.js';
import { normalizeEntryName } from '../file-index/names.js';
import { Entry, entryFields, IndexBuilder, NO_CHUNKS, NO_XATTRS, Piece, type ChunkRef, type IndexEntry, type LayerIndex } from '../file-index/index.js';
import { MAX_TOC_ENTRIES } from '../estargz/toc.js';

function corrupt(message: string): StargzError {
  return new StargzError(ErrorCodes.CORRUPT_DATA, message);
}

/** As many paths as a TOC may declare (implicit parents included). */
export const MAX_TAR_INDEX_ENTRIES = 2 * MAX_TOC_ENTRIES;

export class LayerIndexBuilder {
  private readonly index = new IndexBuilder({ invalid: corrupt, maxEntries: MAX_TAR_INDEX_ENTRIES, missingLinkTarget: 'keep' });
  /** One string per user or group name, not one per header. */
  private readonly names = new Map<string, string>();

  private intern(name: string | undefined): string | undefined {
    if (!name) return undefined;
    const known = this.names.get(name);
    if (known !== undefined) return known;
    if (this.names.size < 4096) this.names.set(name, name);
    return name;
  }

  /** One tar entry, in stream order: `raw.path` as the header names it (normalized here). */
  add(raw: IndexEntry): void {
    checkChunks(raw);
    const path = normalizeEntryName(raw.path);
    const linkName = raw.type === 'hardlink' ? normalizeEntryName(raw.linkName, 'hardlink target') : raw.linkName;
    const chunks = raw.chunks.length === 0 ? NO_CHUNKS : raw.chunks.length === 1 ? [raw.chunks[0]!] : raw.chunks.slice();
    const e = new Entry(path, raw.type, raw.mode, raw.uid, raw.gid, raw.mtimeMs, raw.size, linkName, chunks);
    e.userName = this.intern(raw.userName);
    e.groupName = this.intern(raw.groupName);
    e.digest = raw.digest;
    // A one-piece file: its digest is the piece's; one string serves both.
    const only = chunks.length === 1 ? chunks[0] : undefined;
    if (only instanceof Piece && e.packedDigest !== undefined && only.packedDigest === e.packedDigest) only.packedDigest = e.packedDigest;
    if (raw.devMajor) e.devMajor = raw.devMajor;
    if (raw.devMinor) e.devMinor = raw.devMinor;
    if (Object.keys(raw.xattrs).length > 0) e.xattrs = raw.xattrs;
    if (raw.sparse) e.sparse = true;
    if (raw.implicit) e.implicit = true;
    this.index.add(e);
  }

  finish(): LayerIndex {
    return this.index.finish({ noPrefetch: true, compression: 'gzip', tocOffset: 0 });
  }
}

/**
 * Readers copy chunks into place and assume the rest is zeros only for a sparse file: the
 * chunks of any other file must tile [0, size), a sparse file's must stay within it in order.
 */
function checkChunks(e: IndexEntry): void {
  let at = 0;
  for (const c of e.chunks) {
    if (e.sparse ? c.fileOffset < at : c.fileOffset !== at) {
      throw corrupt(`${JSON.stringify(e.path)}: chunks leave a gap or overlap at file offset ${at}`);
    }
    at = c.fileOffset + c.size;
  }
  if (e.sparse ? at > e.size : at !== e.size && e.type === 'reg') {
    throw corrupt(`${JSON.stringify(e.path)}: chunks cover ${at} bytes of ${e.size}`);
  }
}

// 2: the tar reader of issue 8 (binary xattrs, sparse files, names tar-stream mangled).
// 3: the one index builder: an entry below a non-directory is refused, a hardlink carries
//    its target's size and digest, pieces have no compressed extent. Older indexes are rebuilt.
const CODEC_VERSION = 3;

type Encoded = Omit<IndexEntry, 'xattrs' | 'chunks'> & { xattrs: Record<string, string>; chunks: ChunkRef[] };

/** `format`: what the blob was (a plain tar+gzip, or an eStargz blob read whole). */
export function encodeLayerIndex(index: LayerIndex, format: string): Buffer {
  const entries: Encoded[] = [];
  for (const e of index.entries.values()) {
    const fields = entryFields(e);
    const xattrs = Object.fromEntries(Object.entries(e.xattrs).map(([k, v]) => [k, v.toString('base64')]));
    // A hardlink's chunks are its target's: rebuilt from the target when decoded.
    const chunks = e.type === 'reg' ? e.chunks.map((c) => ({ fileOffset: c.fileOffset, size: c.size, ...(c.digest ? { digest: c.digest } : {}) })) : [];
    entries.push({ ...fields, xattrs, chunks });
  }
  return Buffer.from(JSON.stringify({ v: CODEC_VERSION, format, entries }));
}

/** The decoded index, or undefined when the cached bytes are from another version or damaged. */
export function decodeLayerIndex(data: Buffer): { index: LayerIndex; format: string } | undefined {
  try {
    const doc = JSON.parse(data.toString('utf8')) as { v: number; format?: string; entries: Encoded[] };
    if (doc.v !== CODEC_VERSION || !Array.isArray(doc.entries)) return undefined;
    const builder = new LayerIndexBuilder();
    for (const e of doc.entries) {
      if (e.implicit) continue; // made again by the builder
      const keys = Object.keys(e.xattrs ?? {});
      const xattrs = keys.length === 0 ? NO_XATTRS : Object.fromEntries(keys.map((k) => [k, Buffer.from(e.xattrs[k]!, 'base64')]));
      const chunks = (e.chunks ?? []).map((c) => new Piece(c.fileOffset, c.size, c.digest!));
      builder.add({ ...e, xattrs, size: e.type === 'hardlink' ? 0 : e.size, chunks });
    }
    return { index: builder.finish(), format: doc.format ?? 'tar+gzip' };
  } catch {
    return undefined;
  }
}
