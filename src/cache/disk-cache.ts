// The on-disk tier, shared by every stargz-get process using the same directory:
//   <dir>/index.sqlite     the index (WAL): chunk rows, small chunks inline, TOCs, manifests, tags
//   <dir>/chunks/ab/<hex>  chunks of INLINE_MAX_BYTES or more, one file each
//   <dir>/tmp/             files being written, renamed into chunks/ when complete
// Small chunks stay inside SQLite because a file costs at least one filesystem block: 2000
// chunks of ~3 KiB (5.9 MiB) take 7.8 MiB as files, 6.3 MiB as rows packed in 64 KiB pages.
import { mkdirSync, statSync } from 'node:fs';
import { mkdir, rename, unlink } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { dirname, join, resolve } from 'node:path';
import { ErrorCodes, StargzError } from '../errors.js';
import { AccessBatcher, MicroBatcher } from './batchers.js';
import { ChunkIndex, type ChunkRow, type NewChunk } from './chunk-index.js';
import {
  chunkFilePath,
  diskUsage,
  emptyDir,
  readChunkFile,
  removeFile,
  sweepOldFiles,
  sweepOrphanChunkFiles,
  writeFileAtomic,
} from './chunk-files.js';
import { IndexCompactor } from './compaction.js';
import { Evictor } from './evictor.js';
import { parseChunkDigest, sha256Matches, type DigestKey } from './digest-key.js';
import { RecordStore, type RecordKind } from './record-store.js';
import { isBusy, openIndexDb, SCHEMA_VERSION, type Db } from './schema.js';
import { sha256Hex } from '../util/digest.js';
import { errnoCode } from '../util/errno-code.js';

export { defaultCacheDir } from './defaults.js';

export interface DiskCacheOptions {
  /** The cache directory; created if missing (unless readOnly). */
  dir: string;
  /** Eviction bound on stored chunk bytes (TOCs, manifests and indexes are not counted). */
  maxBytes: number;
  /** Open an existing cache without ever writing to it: puts are ignored, nothing is evicted. */
  readOnly?: boolean;
  /** Milliseconds since the epoch; tests move it to order accesses. Default Date.now. */
  now?: () => number;
}

export interface CacheInfo {
  dir: string;
  chunks: number;
  chunkBytes: number;
  /** What the whole directory occupies on disk (allocated blocks, as `du` counts). */
  diskBytes: number;
  tocs: number;
  manifests: number;
  maxBytes: number;
  schemaVersion: number;
}

/** Chunks smaller than this are stored inside the index rather than as files. */
export const INLINE_MAX_BYTES = 16 * 1024;
/** A read refreshes a chunk's last access at most this often (no write per hot read). */
export const ACCESS_UPDATE_INTERVAL_MS = 60_000;
const ACCESS_FLUSH_DELAY_MS = 5_000;
const WRITE_BATCH_WINDOW_MS = 5;
const WRITE_BATCH_MAX = 1024;
const ACCESS_FLUSH_MAX = 1024;
/** Eviction after a write goes down to this fraction of maxBytes, so it does not run on every write. */
const EVICT_TARGET = 0.9;
const TMP_GRACE_MS = 60 * 60_000;
const ORPHAN_GRACE_MS = 10 * 60_000;

export class DiskCache {
  readonly dir: string;
  readonly maxBytes: number;
  readonly readOnly: boolean;
  private readonly chunksDir: string;
  private readonly tmpDir: string;
  private readonly now: () => number;
  private readonly index: ChunkIndex;
  private readonly records: RecordStore;
  private readonly compactor: IndexCompactor;
  private readonly evictor: Evictor;
  private readonly writes: MicroBatcher<NewChunk>;
  private readonly access: AccessBatcher;
  /** Chunks being written by this process: visible to its reads before they are committed. */
  private readonly inflight = new Map<string, { data: Buffer; done: Promise<void> }>();
  private closed = false;

  static open(options: DiskCacheOptions): DiskCache {
    if (typeof options.dir !== 'string' || options.dir === '') {
      throw new StargzError(ErrorCodes.USAGE, 'cache directory must be a non-empty path');
    }
    checkMaxBytes(options.maxBytes, 'cache size');
    const dir = resolve(options.dir);
    const readOnly = options.readOnly ?? false;
    const now = options.now ?? Date.now;
    if (!readOnly) {
      try {
        mkdirSync(join(dir, 'chunks'), { recursive: true });
        mkdirSync(join(dir, 'tmp'), { recursive: true });
      } catch (err) {
        throw new StargzError(ErrorCodes.CACHE, `cannot create cache directory ${dir}: ${errMessage(err)}`, { cause: err });
      }
    }
    const dbPath = join(dir, 'index.sqlite');
    let db: Db;
    try {
      const opened = openIndexDb(dbPath, readOnly);
      db = opened.db;
      if (opened.rebuilt) emptyDir(join(dir, 'chunks'));
    } catch (err) {
      throw openError(dir, dbPath, readOnly, err);
    }
    try {
      if (!readOnly) sweepOldFiles(join(dir, 'tmp'), TMP_GRACE_MS, now());
      return new DiskCache(dir, options.maxBytes, readOnly, now, db);
    } catch (err) {
      db.close();
      throw openError(dir, dbPath, readOnly, err);
    }
  }

  private constructor(dir: string, maxBytes: number, readOnly: boolean, now: () => number, private readonly db: Db) {
    this.dir = dir;
    this.maxBytes = maxBytes;
    this.readOnly = readOnly;
    this.now = now;
    this.chunksDir = join(dir, 'chunks');
    this.tmpDir = join(dir, 'tmp');
    this.index = new ChunkIndex(db);
    this.records = new RecordStore(db);
    this.compactor = new IndexCompactor(db);
    this.evictor = new Evictor(this.index, this.compactor, this.chunksDir, {
      beforeChoosing: () => this.access.flushQuietly(), // our recent reads must count
      stopped: () => this.closed,
    });
    // Every commit rewrites whole 64 KiB pages into the WAL: small chunks arriving over a few
    // milliseconds share one commit.
    this.writes = new MicroBatcher((items) => this.commitWrites(items), WRITE_BATCH_WINDOW_MS, WRITE_BATCH_MAX);
    this.access = new AccessBatcher((entries) => this.index.touchMany(entries), ACCESS_FLUSH_DELAY_MS, ACCESS_FLUSH_MAX);
  }

  // ---- chunks ----

  /** The chunk's bytes, verified against its digest; undefined when absent or found corrupt. */
  async readChunk(digest: string): Promise<Buffer | undefined> {
    this.assertOpen();
    const key = parseChunkDigest(digest);
    const mine = this.inflight.get(key.hex);
    if (mine) return mine.data;
    const row = this.sql('cannot read the cache index', () => this.index.lookup(key.raw));
    if (!row) return undefined;
    let data: Buffer;
    if (row.blobId !== null) {
      if (!row.data) return this.drop(key, row);
      data = row.data;
    } else {
      try {
        data = await readChunkFile(chunkFilePath(this.chunksDir, key.hex), row.size);
      } catch (err) {
        // Evicted or cleared by another process between our lookup and the read: a miss.
        if (errnoCode(err) === 'ENOENT') return this.drop(key, row);
        throw new StargzError(ErrorCodes.CACHE, `cannot read cached chunk ${key.hex}: ${errMessage(err)}`, { cause: err });
      }
    }
    // Never serve corrupt bytes: a truncated or altered entry is removed and reported as a miss.
    if (data.length !== row.size || !sha256Matches(data, key.raw)) return this.drop(key, row);
    this.noteAccess(key, row.lastAccess);
    return data;
  }

  /**
   * Stores a chunk the caller has verified. Idempotent; when another process stores the
   * same digest at the same time, both write identical bytes and one row wins.
   */
  async writeChunk(digest: string, data: Buffer): Promise<void> {
    this.assertOpen();
    const key = parseChunkDigest(digest);
    // A chunk bigger than the whole cache would evict everything, itself included.
    if (this.readOnly || data.length > this.maxBytes) return;
    const mine = this.inflight.get(key.hex);
    if (mine) return mine.done;
    if (this.sql('cannot read the cache index', () => this.index.exists(key.raw))) return;
    const done = this.store(key, data).finally(() => this.inflight.delete(key.hex));
    this.inflight.set(key.hex, { data, done });
    return done;
  }

  // ---- chunks too large for memory: streamed into a file once, then read by position ----
  //
  // Such a chunk is hashed once, while it is streamed in (layer/huge-chunk.ts), and recorded as
  // verified once; afterwards reads pread the window they need and trust the file by the record
  // and its size alone. Re-hashing 1 GiB per 4 MiB read (42 s each, issue 8) is not affordable,
  // and the file needs no more trust than this: the cache directory is the user's own, written
  // only by stargz-get (files appear under their final name complete, by rename), as containerd
  // trusts its content store once ingested. Truncation or loss is still caught: a missing file
  // or a size other than the row's drops the record, and the chunk is fetched again.

  /** A fresh name under tmp/ for a chunk being streamed in (its writer removes it on failure). */
  streamTempPath(): string {
    this.assertOpen();
    return join(this.tmpDir, `${randomBytes(8).toString('hex')}.${process.pid}.stream.tmp`);
  }

  /** Whether streamed chunks can be stored here (a read-only cache, or one smaller than the chunk, cannot). */
  canStream(size: number): boolean {
    return !this.readOnly && size <= this.maxBytes;
  }

  /**
   * Moves a chunk the caller streamed into `tmpPath` (and verified while writing it) to its
   * final name and records it as verified once. The file first, then its row.
   */
  async commitStreamedChunk(digest: string, tmpPath: string, size: number): Promise<string> {
    this.assertOpen();
    const key = parseChunkDigest(digest);
    const path = chunkFilePath(this.chunksDir, key.hex);
    try {
      try {
        await rename(tmpPath, path);
      } catch (err) {
        if (errnoCode(err) !== 'ENOENT') throw err;
        await mkdir(dirname(path), { recursive: true }); // fan-out made on first use (or cleared meanwhile)
        await rename(tmpPath, path);
      }
    } catch (err) {
      await unlink(tmpPath).catch(() => undefined);
      throw new StargzError(ErrorCodes.CACHE, `cannot store streamed chunk ${path}: ${errMessage(err)}`, { cause: err });
    }
    await this.writes.add({ raw: key.raw, size, data: undefined, verifiedOnce: true });
    return path;
  }

  /**
   * The file of a chunk recorded as verified once, when it is there with its recorded size;
   * undefined otherwise (a row without the record, or a file gone or of another size: the row
   * is dropped). See the comment above streamTempPath for why the digest is not checked here.
   */
  streamedChunk(digest: string): { path: string; size: number } | undefined {
    this.assertOpen();
    const key = parseChunkDigest(digest);
    const row = this.sql('cannot read the cache index', () => this.index.lookup(key.raw));
    if (!row || row.blobId !== null || row.verifiedOnce !== 1) return undefined;
    const path = chunkFilePath(this.chunksDir, key.hex);
    let size: number;
    try {
      size = statSync(path).size;
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return this.drop(key, row);
      throw new StargzError(ErrorCodes.CACHE, `cannot read cached chunk ${key.hex}: ${errMessage(err)}`, { cause: err });
    }
    if (size !== row.size) return this.drop(key, row);
    this.noteAccess(key, row.lastAccess);
    return { path, size };
  }

  hasChunk(digest: string): boolean {
    this.assertOpen();
    const key = parseChunkDigest(digest);
    return this.inflight.has(key.hex) || this.sql('cannot read the cache index', () => this.index.exists(key.raw));
  }

  private async store(key: DigestKey, data: Buffer): Promise<void> {
    if (data.length < INLINE_MAX_BYTES) return this.writes.add({ raw: key.raw, size: data.length, data });
    const path = chunkFilePath(this.chunksDir, key.hex);
    try {
      // The file first, then its row: a row never names a file not yet complete.
      await writeFileAtomic(this.tmpDir, path, data);
    } catch (err) {
      throw new StargzError(ErrorCodes.CACHE, `cannot write cached chunk ${path}: ${errMessage(err)}`, { cause: err });
    }
    this.assertOpen(); // closed meanwhile: the file is an orphan for prune() to sweep
    return this.writes.add({ raw: key.raw, size: data.length, data: undefined });
  }

  private commitWrites(items: NewChunk[]): void {
    this.sql('cannot record chunks in the cache index', () => this.index.insertMany(items, this.now()));
    try {
      if (this.index.totals().bytes > this.maxBytes) this.evictor.start(Math.floor(this.maxBytes * EVICT_TARGET));
    } catch {
      // The chunks are stored; eviction is tried again after the next write.
    }
  }

  /** Settles when queued writes are committed and the eviction under way (if any) is done. */
  async idle(): Promise<void> {
    await Promise.allSettled([...this.inflight.values()].map((w) => w.done));
    await this.evictor.running;
  }

  /** Removes a row found broken (only if unchanged since read) and its file; reports a miss. */
  private drop(key: DigestKey, row: ChunkRow): undefined {
    if (this.readOnly || this.closed) return undefined;
    try {
      if (this.index.deleteIfCreated(key.raw, row.created) && row.blobId === null) {
        removeFile(chunkFilePath(this.chunksDir, key.hex));
      }
    } catch {
      // Busy or already gone: the next reader will try again; the bytes are never served.
    }
    return undefined;
  }

  private noteAccess(key: DigestKey, lastAccess: number): void {
    if (this.readOnly || this.closed) return;
    const now = this.now();
    if (now - lastAccess >= ACCESS_UPDATE_INTERVAL_MS) this.access.note(key.hex, key.raw, now);
  }

  /** Gives pages freed by deleted inline chunks back to the filesystem. */
  private reclaimFreePages(): void {
    try {
      this.db.pragma('incremental_vacuum');
    } catch {
      // Busy: the pages stay free inside the file and are reused by the next inserts.
    }
  }

  // ---- TOCs, manifests, layer indexes, tags ----

  /** By the TOC digest that verified it (never by a layer digest: see src/layer/trust.ts). */
  getToc(tocDigest: string): Buffer | undefined {
    this.assertOpen();
    return this.sql('cannot read a TOC from the cache', () => this.records.get('toc', tocDigest))?.data;
  }

  putToc(tocDigest: string, data: Buffer): void {
    this.put('toc', tocDigest, data, 'cannot store a TOC in the cache');
  }

  /** The manifest's bytes; verified when named by a sha256 digest (a mismatch is dropped, a miss). */
  getManifest(digest: string): Buffer | undefined {
    this.assertOpen();
    const data = this.sql('cannot read a manifest from the cache', () => this.records.get('manifest', digest))?.data;
    if (data && digest.startsWith('sha256:') && sha256Hex(data) !== digest.slice(7)) {
      if (!this.readOnly) this.sql('cannot update the cache index', () => this.records.delete('manifest', digest));
      return undefined;
    }
    return data;
  }

  putManifest(digest: string, bytes: Buffer): void {
    this.put('manifest', digest, bytes, 'cannot store a manifest in the cache');
  }

  /** The manifest digest a tag (key: 'registry/repo:tag' + platform) last resolved to, and when (ms). */
  getTagResolution(key: string): { digest: string; resolvedAt: number } | undefined {
    this.assertOpen();
    const rec = this.sql('cannot read a tag from the cache', () => this.records.get('tag', key));
    return rec && { digest: rec.data.toString('utf8'), resolvedAt: rec.created };
  }

  putTagResolution(key: string, digest: string): void {
    this.put('tag', key, Buffer.from(digest, 'utf8'), 'cannot store a tag in the cache');
  }

  /**
   * The content digests of a file's digest-less chunks, stored once the whole file matched
   * its digest in the TOC; keyed '<TOC digest>@<first chunk offset>'.
   */
  getFileChunks(key: string): string[] | undefined {
    this.assertOpen();
    const data = this.sql('cannot read a record from the cache', () => this.records.get('file-chunks', key))?.data;
    return data ? (data.toString('utf8').split(',')) : undefined;
  }

  putFileChunks(key: string, digests: readonly string[]): void {
    this.put('file-chunks', key, Buffer.from(digests.join(','), 'utf8'), 'cannot store a record in the cache');
  }

  /** A lazily read layer's index (layer/index-codec.ts), by the TOC digest that verified the TOC it was built from. */
  getTocIndex(tocDigest: string): Buffer | undefined {
    this.assertOpen();
    return this.sql('cannot read a layer index from the cache', () => this.records.get('toc-index', tocDigest))?.data;
  }

  putTocIndex(tocDigest: string, data: Buffer): void {
    this.put('toc-index', tocDigest, data, 'cannot store a layer index in the cache');
  }

  /** An image's merged tree (vfs/merged-tree-codec.ts), by its manifest digest and how its layers were read. */
  getMergedTree(key: string): Buffer | undefined {
    this.assertOpen();
    return this.sql('cannot read a merged tree from the cache', () => this.records.get('merged-tree', key))?.data;
  }

  putMergedTree(key: string, data: Buffer): void {
    this.put('merged-tree', key, data, 'cannot store a merged tree in the cache');
  }

  /** A whole-blob layer's index, stored only once the blob matched `layerDigest`. */
  getLayerIndex(layerDigest: string): Buffer | undefined {
    this.assertOpen();
    return this.sql('cannot read a layer index from the cache', () => this.records.get('layer-index', layerDigest))?.data;
  }

  putLayerIndex(layerDigest: string, data: Buffer): void {
    this.put('layer-index', layerDigest, data, 'cannot store a layer index in the cache');
  }

  private put(kind: RecordKind, key: string, data: Buffer, what: string): void {
    this.assertOpen();
    if (this.readOnly) return;
    this.sql(what, () => this.records.put(kind, key, data, this.now()));
  }

  // ---- maintenance ----

  /** Evicts least recently used chunks until at most `maxBytes` are stored; sweeps leftovers. */
  prune(maxBytes: number): { removedChunks: number; removedBytes: number } {
    this.assertOpen();
    checkMaxBytes(maxBytes, 'prune target', true);
    if (this.readOnly) return { removedChunks: 0, removedBytes: 0 };
    this.writes.flush();
    const result = this.sql('cannot evict from the cache index', () => this.evictor.now(maxBytes));
    this.reclaimFreePages();
    const known = this.sql('cannot read the cache index', () => this.index.fileDigests());
    sweepOrphanChunkFiles(this.chunksDir, known, ORPHAN_GRACE_MS, this.now());
    sweepOldFiles(this.tmpDir, TMP_GRACE_MS, this.now());
    try {
      this.compactor.full();
    } catch {
      // Busy, or no room for the copy VACUUM makes: the index stays larger than needed.
    }
    return result;
  }

  /** Removes every chunk, TOC, manifest, layer index and tag. */
  clear(): void {
    this.assertOpen();
    if (this.readOnly) return;
    this.writes.flush();
    this.access.discard();
    this.sql('cannot clear the cache index', () =>
      this.db
        .transaction(() => {
          this.index.deleteAll();
          this.records.deleteAll();
        })
        .immediate(),
    );
    emptyDir(this.chunksDir);
    sweepOldFiles(this.tmpDir, TMP_GRACE_MS, this.now());
    this.reclaimFreePages();
  }

  /** Chunks and their bytes in the index (the metrics' cache gauges: no walk of the directory). */
  chunkTotals(): { count: number; bytes: number } {
    this.assertOpen();
    return this.sql('cannot read the cache index', () => this.index.totals());
  }

  info(): CacheInfo {
    this.assertOpen();
    const totals = this.sql('cannot read the cache index', () => this.index.totals());
    return {
      dir: this.dir,
      chunks: totals.count,
      chunkBytes: totals.bytes,
      diskBytes: diskUsage(this.dir),
      tocs: this.sql('cannot read the cache index', () => this.records.count('toc')),
      manifests: this.sql('cannot read the cache index', () => this.records.count('manifest')),
      maxBytes: this.maxBytes,
      schemaVersion: SCHEMA_VERSION,
    };
  }

  /**
   * Commits queued writes and access times, finishes an eviction under way (synchronously:
   * the cache is not left above its bound), then closes the index. Idempotent.
   */
  close(): void {
    if (this.closed) return;
    this.writes.flush();
    if (!this.readOnly) {
      try {
        if (this.index.totals().bytes > this.maxBytes || this.evictor.running) this.evictor.now(Math.floor(this.maxBytes * EVICT_TARGET));
      } catch {
        // Busy: the next process to write evicts.
      }
    }
    this.access.flushQuietly();
    this.access.discard();
    this.closed = true;
    this.db.close();
  }

  private assertOpen(): void {
    if (this.closed) throw new StargzError(ErrorCodes.CACHE, `cache ${this.dir} is closed`);
  }

  /** Runs an index operation, turning SQLite failures into CACHE errors. */
  private sql<T>(what: string, fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      if (err instanceof StargzError) throw err;
      throw new StargzError(ErrorCodes.CACHE, `${what} (${this.dir}): ${sqliteHint(err)}`, { retryable: isBusy(err), cause: err });
    }
  }
}

function checkMaxBytes(value: number, what: string, allowZero = false): void {
  if (!Number.isSafeInteger(value) || value < (allowZero ? 0 : 1)) {
    throw new StargzError(ErrorCodes.USAGE, `${what} must be a ${allowZero ? 'non-negative' : 'positive'} integer of bytes, got ${value}`);
  }
}

function errMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function sqliteHint(err: unknown): string {
  const code = errnoCode(err);
  if (isBusy(err)) return 'the index is locked by another stargz-get process; try again';
  if (code === 'SQLITE_CORRUPT' || code === 'SQLITE_NOTADB') return `${errMessage(err)}; remove the cache directory to start afresh`;
  if (code === 'SQLITE_FULL') return 'the disk is full';
  return errMessage(err);
}

function openError(dir: string, dbPath: string, readOnly: boolean, err: unknown): StargzError {
  if (err instanceof StargzError) return err;
  const code = errnoCode(err);
  let message: string;
  if (code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT') {
    message = `${dbPath} is not a usable cache index (corrupt or not SQLite); remove ${dir} or use another --cache-dir`;
  } else if (readOnly && code === 'SQLITE_CANTOPEN') {
    message = `no cache at ${dir} (opened read-only, so it is not created)`;
  } else if (isBusy(err)) {
    message = `the cache index ${dbPath} stayed locked by another process; try again`;
  } else {
    message = `cannot open the cache index ${dbPath}: ${errMessage(err)}`;
  }
  return new StargzError(ErrorCodes.CACHE, message, { retryable: isBusy(err), cause: err });
}
