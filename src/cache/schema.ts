// The cache index: one SQLite file shared by every stargz-get process using the cache dir.
// It states its schema version (PRAGMA user_version), creates its tables idempotently and
// rebuilds an older layout from scratch: a cache can always be refetched, so there is no
// migration to get wrong.
import Database from 'better-sqlite3';
import { ErrorCodes, StargzError } from '../errors.js';
import { errnoCode } from '../util/errno-code.js';

export type Db = Database.Database;

/**
 * Bump on any change to the tables below, or to what a record's key vouches for; older caches
 * are then rebuilt, newer ones refused. 2: TOCs keyed by the TOC digest that verified them and
 * layer indexes only after the whole blob matched its digest (version 1 keyed TOCs by a layer
 * digest the registry merely claimed: not to be trusted). 3: chunks.verified_once (a chunk
 * file hashed once while it was streamed in, served by position without re-hashing).
 */
export const SCHEMA_VERSION = 3;

/** Writers of other processes hold the lock for milliseconds; wait this long before giving up. */
export const BUSY_TIMEOUT_MS = 10_000;

// Small chunks live in chunk_blobs, appended in rowid order, so SQLite fills each page before
// starting the next: a page wastes less than one row. Large pages make that waste a small
// fraction (a 3 KiB chunk in a 4 KiB page would waste 25%, in a 64 KiB page under 2%).
// Only takes effect when the file is created.
export const PAGE_SIZE = 65536;

// With 64 KiB pages the default 1000-page autocheckpoint would let the WAL grow to 64 MiB.
const WAL_AUTOCHECKPOINT_PAGES = 256;
const JOURNAL_SIZE_LIMIT = 16 * 1024 * 1024;

const DDL = `
-- Totals (chunk_count, chunk_bytes, inline_bytes), kept by every transaction that adds or
-- removes chunks, so each process sees the same numbers without a scan. (Not triggers: a
-- trigger runs per row, and made evicting 20000 small chunks take half a second.)
CREATE TABLE IF NOT EXISTS meta (
  key   TEXT PRIMARY KEY,
  value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT OR IGNORE INTO meta (key, value) VALUES ('chunk_count', 0), ('chunk_bytes', 0), ('inline_bytes', 0);

-- One row per stored chunk, keyed by the 32 raw sha256 bytes (half the hex text's size).
-- blob_id is the stored location: a row of chunk_blobs, or NULL for a file chunks/ab/<hex>.
-- No index on last_access: it would store each digest a second time (+1.3% of disk for 3 KiB
-- chunks) and cost a write per access update; eviction, which is rare, scans instead.
CREATE TABLE IF NOT EXISTS chunks (
  digest      BLOB PRIMARY KEY,
  size        INTEGER NOT NULL,
  blob_id     INTEGER,
  created     INTEGER NOT NULL,  -- ms since the epoch
  last_access INTEGER NOT NULL,  -- ms since the epoch, updated coarsely
  -- 1: a file chunk too large to hold in memory, hashed once as it was streamed in and served
  -- by position from then on (its size is checked, its digest is not: see DiskCache.streamedChunk).
  -- 0: read whole and re-hashed on every read.
  verified_once INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

-- Small chunks' bytes. A rowid table apart from chunks: appends pack pages full, while
-- chunks (keyed by random digests) splits pages to ~70% as any B-tree does.
CREATE TABLE IF NOT EXISTS chunk_blobs (
  id   INTEGER PRIMARY KEY,
  data BLOB NOT NULL
);

-- TOCs, manifests, layer indexes and tag resolutions, in one table (every table costs at
-- least a page, 64 KiB). BLOBs here rather than files: they are few, read whole, and
-- replacing one must be atomic and visible to other processes at once, which a row gives for
-- free. They are not chunks: eviction leaves them alone (--offline needs them).
CREATE TABLE IF NOT EXISTS records (
  kind    TEXT NOT NULL,     -- 'toc' | 'manifest' | 'layer-index' | 'file-chunks' | 'tag'
  key     TEXT NOT NULL,     -- what verified data: TOC digest (for file-chunks + '@' + offset), layer digest (blob verified whole), manifest digest; or 'registry/repo:tag' + platform
  data    BLOB NOT NULL,     -- for a tag: the manifest digest (UTF-8)
  created INTEGER NOT NULL,  -- ms since the epoch; for a tag, when it was resolved
  PRIMARY KEY (kind, key)
) WITHOUT ROWID;
`;

export interface OpenedIndex {
  db: Db;
  /** True when an older layout was dropped: the caller must drop the chunk files too. */
  rebuilt: boolean;
}

/** SQLite's page cache per connection, KiB: the B-tree's interior pages and a few leaves. */
const PAGE_CACHE_KIB = 4096;

/** Opens (creating if needed) the index at `path`. Throws SQLite errors as they come. */
export function openIndexDb(path: string, readOnly: boolean): OpenedIndex {
  const db = new Database(path, { readonly: readOnly, fileMustExist: readOnly, timeout: BUSY_TIMEOUT_MS });
  try {
    if (!readOnly) {
      // Both only matter before the first table exists; harmless afterwards.
      db.pragma(`page_size = ${PAGE_SIZE}`);
      db.pragma('auto_vacuum = INCREMENTAL');
      retryWhileBusy(() => db.pragma('journal_mode = WAL'));
    }
    db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    db.pragma('synchronous = NORMAL'); // WAL + NORMAL: no fsync per commit, never corrupt
    // better-sqlite3 builds SQLite with a 16 MB page cache per connection, held for the process's
    // life once a sync has written its small chunks through it; the kernel caches the file anyway.
    db.pragma(`cache_size = -${PAGE_CACHE_KIB}`);
    db.pragma(`wal_autocheckpoint = ${WAL_AUTOCHECKPOINT_PAGES}`);
    db.pragma(`journal_size_limit = ${JOURNAL_SIZE_LIMIT}`);
    const rebuilt = readOnly ? (checkReadOnlyVersion(path, db), false) : ensureSchema(path, db);
    return { db, rebuilt };
  } catch (err) {
    db.close();
    throw err;
  }
}

function userVersion(db: Db): number {
  return db.pragma('user_version', { simple: true }) as number;
}

function newerError(path: string, found: number): StargzError {
  return new StargzError(
    ErrorCodes.CACHE,
    `cache index ${path} has schema version ${found}, newer than this stargz-get understands (${SCHEMA_VERSION}); ` +
      'upgrade stargz-get, or use another --cache-dir',
  );
}

function ensureSchema(path: string, db: Db): boolean {
  if (userVersion(db) === SCHEMA_VERSION) return false; // the common case takes no write lock
  // IMMEDIATE: of several processes opening a new or old cache at once, one creates or
  // rebuilds it while the others wait, then find it current.
  return db
    .transaction((): boolean => {
      const found = userVersion(db);
      if (found === SCHEMA_VERSION) return false;
      if (found > SCHEMA_VERSION) throw newerError(path, found);
      const tables = db
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        .pluck()
        .all() as string[];
      for (const name of tables) db.exec(`DROP TABLE IF EXISTS "${name.replace(/"/g, '""')}"`);
      db.exec(DDL);
      db.pragma(`user_version = ${SCHEMA_VERSION}`);
      return tables.length > 0;
    })
    .immediate();
}

function checkReadOnlyVersion(path: string, db: Db): void {
  const found = userVersion(db);
  if (found > SCHEMA_VERSION) throw newerError(path, found);
  if (found < SCHEMA_VERSION) {
    throw new StargzError(
      ErrorCodes.CACHE,
      `cache index ${path} has schema version ${found}, older than ${SCHEMA_VERSION}; open it once read-write to rebuild it`,
    );
  }
}

// Switching to WAL needs a moment of exclusive access; SQLite may report SQLITE_BUSY for it
// without consulting the busy handler when another process is opening the same file.
function retryWhileBusy<T>(fn: () => T): T {
  const deadline = Date.now() + BUSY_TIMEOUT_MS;
  for (;;) {
    try {
      return fn();
    } catch (err) {
      if (!isBusy(err) || Date.now() > deadline) throw err;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
    }
  }
}

export function isBusy(err: unknown): boolean {
  const code = errnoCode(err);
  return code !== undefined && (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED'));
}
