// Building a LayerIndex from tar headers (plain layers), and its compact cache encoding.
import { ErrorCodes, StargzError } from '../errors.js';
import { implicitDir, normalizeEntryName, type IndexEntry, type LayerIndex } from '../estargz/index.js';

export class LayerIndexBuilder {
  private readonly entries = new Map<string, IndexEntry>();

  add(raw: IndexEntry): void {
    checkChunks(raw);
    const path = normalizeEntryName(raw.path);
    const entry: IndexEntry = { ...raw, path, linkName: raw.type === 'hardlink' ? normalizeEntryName(raw.linkName, 'hardlink target') : raw.linkName };
    this.ensureParents(path);
    this.entries.set(path, entry);
  }

  private ensureParents(path: string): void {
    if (!this.entries.has('')) this.entries.set('', implicitDir(''));
    let i = path.indexOf('/');
    while (i >= 0) {
      const dir = path.slice(0, i);
      if (!this.entries.has(dir) || this.entries.get(dir)!.type !== 'dir') this.entries.set(dir, implicitDir(dir));
      i = path.indexOf('/', i + 1);
    }
  }

  finish(): LayerIndex {
    if (!this.entries.has('')) this.entries.set('', implicitDir(''));
    const children = new Map<string, string[]>();
    for (const path of this.entries.keys()) {
      if (path === '') continue;
      const i = path.lastIndexOf('/');
      const parent = i < 0 ? '' : path.slice(0, i);
      let list = children.get(parent);
      if (!list) children.set(parent, (list = []));
      list.push(path.slice(i + 1));
    }
    for (const list of children.values()) list.sort();
    return { entries: this.entries, children, noPrefetch: true, compression: 'gzip', tocOffset: 0 };
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
      throw new StargzError(ErrorCodes.CORRUPT_DATA, `${JSON.stringify(e.path)}: chunks leave a gap or overlap at file offset ${at}`);
    }
    at = c.fileOffset + c.size;
  }
  if (e.sparse ? at > e.size : at !== e.size && e.type === 'reg') {
    throw new StargzError(ErrorCodes.CORRUPT_DATA, `${JSON.stringify(e.path)}: chunks cover ${at} bytes of ${e.size}`);
  }
}

// 2: the tar reader of issue 8 (binary xattrs, sparse files, names tar-stream mangled):
// indexes cached by version 1 are rebuilt.
const CODEC_VERSION = 2;

/** `format`: what the blob was (a plain tar+gzip, or an eStargz blob read whole). */
export function encodeLayerIndex(index: LayerIndex, format: string): Buffer {
  const entries = [...index.entries.values()].map((e) => ({
    ...e,
    xattrs: Object.fromEntries(Object.entries(e.xattrs).map(([k, v]) => [k, (v as Buffer).toString('base64')])),
  }));
  return Buffer.from(JSON.stringify({ v: CODEC_VERSION, format, entries }));
}

/** The decoded index, or undefined when the cached bytes are from another version or damaged. */
export function decodeLayerIndex(data: Buffer): { index: LayerIndex; format: string } | undefined {
  try {
    const doc = JSON.parse(data.toString('utf8')) as { v: number; format?: string; entries: Array<IndexEntry & { xattrs: Record<string, string> }> };
    if (doc.v !== CODEC_VERSION || !Array.isArray(doc.entries)) return undefined;
    const builder = new LayerIndexBuilder();
    for (const e of doc.entries) {
      const xattrs = Object.fromEntries(Object.entries(e.xattrs ?? {}).map(([k, v]) => [k, Buffer.from(v as string, 'base64')]));
      if (e.path === '') continue;
      builder.add({ ...e, xattrs });
    }
    const index = builder.finish();
    const root = doc.entries.find((e) => e.path === '');
    if (root && !root.implicit) index.entries.set('', { ...root, xattrs: {} });
    return { index, format: doc.format ?? 'tar+gzip' };
  } catch {
    return undefined;
  }
}
