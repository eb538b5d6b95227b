// An in-memory Layer for unit tests of the adapter, the scheduler and prefetch: files cut
// into chunks with made-up blob offsets (10 bytes each, back to back), a "memory cache" the
// test fills, and a readChunks that records its calls and can hang or fail.
import { createHash } from 'node:crypto';
import { chunksByOffset, type LazyChunkRef as ChunkRef, type LazyIndexEntry as IndexEntry, type LazyLayerIndex as LayerIndex, type NodeType } from '../../src/file-index/index.js';
import { cacheable, DEFAULT_FETCH_TUNING, type ChunkSink, type Layer, type ReadOptions } from '../../src/layer/layer.js';
import { planRanges } from '../../src/layer/range-plan.js';

export interface FakeFile {
  path: string;
  type?: NodeType;
  content?: Buffer;
  chunkSize?: number;
  linkName?: string;
  mode?: number;
  xattrs?: Record<string, Buffer>;
  /** Leave the chunk digests out (as a TOC may). */
  noDigest?: boolean;
}

export interface FakeLayerOptions {
  digest?: string;
  /** Files listed before this index are "before the landmark". */
  landmarkAfter?: number;
  noPrefetch?: boolean;
}

export type Behaviour = 'ok' | 'hang' | { fail: Error };

export class FakeLayer implements Layer {
  readonly lazy = true;
  readonly format = 'estargz' as const;
  readonly descriptor;
  readonly index: LayerIndex;
  readonly calls: Array<{ refs: ChunkRef[]; options: ReadOptions }> = [];
  behaviour: Behaviour = 'ok';
  /** Chunks "in the memory cache", by digest: what peek and atHand see. */
  readonly memory = new Map<string, Buffer>();
  private readonly data = new Map<number, Buffer>();

  constructor(files: FakeFile[], options: FakeLayerOptions = {}) {
    this.descriptor = { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: options.digest ?? 'sha256:' + 'a'.repeat(64), size: 1 << 30 };
    const entries = new Map<string, IndexEntry>();
    const children = new Map<string, string[]>();
    const dir = (path: string): IndexEntry => entry(path, 'dir', 0o755);
    entries.set('', dir(''));
    children.set('', []);
    let offset = 100;
    let prefetchEnd: number | undefined;
    files.forEach((f, i) => {
      if (options.landmarkAfter === i) prefetchEnd = offset;
      const type = f.type ?? 'reg';
      const e = entry(f.path, type, f.mode ?? (type === 'dir' ? 0o755 : 0o644));
      if (f.linkName !== undefined) e.linkName = f.linkName;
      if (f.xattrs) e.xattrs = f.xattrs;
      if (type === 'reg' && f.content) {
        e.size = f.content.length;
        const step = f.chunkSize ?? 64 * 1024;
        for (let at = 0; at < f.content.length; at += step) {
          const part = f.content.subarray(at, at + step);
          const ref: ChunkRef = { offset, end: offset + 10, innerOffset: 0, fileOffset: at, size: part.length };
          if (!f.noDigest) ref.digest = 'sha256:' + createHash('sha256').update(part).digest('hex');
          this.data.set(offset, part);
          e.chunks.push(ref);
          offset += 10;
        }
      }
      entries.set(f.path, e);
      if (type === 'dir' && !children.has(f.path)) children.set(f.path, []);
      // Parents, up to the root, as implicit directories.
      for (let path = f.path; path !== ''; ) {
        const slash = path.lastIndexOf('/');
        const parent = slash < 0 ? '' : path.slice(0, slash);
        const kids = children.get(parent) ?? children.set(parent, []).get(parent)!;
        const name = path.slice(slash + 1);
        if (!kids.includes(name)) kids.push(name);
        if (entries.has(parent)) break;
        entries.set(parent, dir(parent));
        path = parent;
      }
    });
    if (options.landmarkAfter !== undefined && prefetchEnd === undefined) prefetchEnd = offset;
    this.index = { entries, children, chunksByOffset: chunksByOffset(entries), noPrefetch: options.noPrefetch ?? false, compression: 'gzip', tocOffset: offset };
    if (prefetchEnd !== undefined) this.index.prefetchEnd = prefetchEnd;
    // Hardlinks share their target's chunks, as the real index does.
    for (const e of entries.values()) {
      if (e.type !== 'hardlink') continue;
      const target = entries.get(e.linkName)!;
      e.size = target.size;
      e.chunks = target.chunks;
    }
  }

  peek(ref: ChunkRef): Buffer | undefined {
    return cacheable(ref) ? this.memory.get(ref.digest) : undefined;
  }

  atHand(ref: ChunkRef): boolean {
    return this.peek(ref) !== undefined;
  }

  planFetch(refs: readonly ChunkRef[]): ChunkRef[][] {
    return planRanges(refs, DEFAULT_FETCH_TUNING).map((r) => r.items);
  }

  /** The bytes of a chunk, as the blob holds them. */
  bytesOf(ref: ChunkRef): Buffer {
    return this.data.get(ref.offset)!;
  }

  async readChunks(refs: readonly ChunkRef[], sink: ChunkSink, options: ReadOptions = {}): Promise<void> {
    this.calls.push({ refs: [...refs], options });
    const b = this.behaviour;
    if (b === 'hang') {
      await new Promise<void>((_, reject) => options.signal?.addEventListener('abort', () => reject(options.signal!.reason), { once: true }));
    } else if (b !== 'ok') {
      throw b.fail;
    }
    for (const ref of refs) await sink(ref, this.data.get(ref.offset)!);
  }
}

function entry(path: string, type: NodeType, mode: number): IndexEntry {
  return { path, type, mode, uid: 0, gid: 0, mtimeMs: 1_600_000_000_000, size: 0, linkName: '', devMajor: 0, devMinor: 0, xattrs: {}, chunks: [] };
}
