// Keeps the index file close to the size of what it holds. Inline chunks are appended in
// rowid order, so pages start full; eviction then deletes rows here and there, and a page
// keeps its size until every row on it is gone. Moving the oldest surviving rows to the end
// empties the oldest pages, which incremental_vacuum then gives back to the filesystem.
import type { Db } from './schema.js';

/** Metadata bytes per chunk row, roughly (32-byte key, sizes, times, B-tree slack). */
const ROW_OVERHEAD = 100;
/** Pages every index has whatever it holds (schema, meta, records, pointer map, B-tree roots). */
const FIXED_PAGES = 4;
/** Tolerated waste before compacting: appending leaves up to one row's room per page. */
const SLACK = 1.08;
/** Evictions to skip compacting after a step that did not help (rows whose sizes pack badly). */
const COOLDOWN = 8;
/**
 * Bytes one step may move: twice what was evicted, within [MIN, MAX]. Survivors are scattered
 * among the holes eviction leaves, so reclaiming a byte of holes means moving about a byte of
 * survivors; the cap bounds the rewriting one eviction can cause.
 */
const MIN_MOVE = 4 * 1024 * 1024;
const MAX_MOVE = 64 * 1024 * 1024;
/** Bytes and rows moved per transaction, so the event loop and other processes' writers get turns. */
const MOVE_SLICE = 1024 * 1024;
const MOVE_SLICE_ROWS = 1000;

export class IndexCompactor {
  private readonly payloadStmt;
  private readonly oldestStmt;
  private readonly blobStmt;
  private readonly insertBlobStmt;
  private readonly repointStmt;
  private readonly deleteBlobStmt;
  private readonly moveOldest: (budget: number) => number;
  private cooldown = 0;

  constructor(private readonly db: Db) {
    this.payloadStmt = db
      .prepare<[], { inline: number; count: number; records: number }>(
        `SELECT (SELECT value FROM meta WHERE key = 'inline_bytes') AS inline,
                (SELECT value FROM meta WHERE key = 'chunk_count') AS count,
                (SELECT coalesce(sum(length(data)), 0) FROM records) AS records`,
      );
    // A scan of the chunk rows (small: no data in them); ORDER BY + LIMIT keeps only LIMIT of them.
    this.oldestStmt = db.prepare<[number], { digest: Buffer; blobId: number; size: number }>(
      'SELECT digest, blob_id AS blobId, size FROM chunks WHERE blob_id IS NOT NULL ORDER BY blob_id LIMIT ?',
    );
    this.blobStmt = db.prepare<[number], Buffer>('SELECT data FROM chunk_blobs WHERE id = ?').pluck();
    this.insertBlobStmt = db.prepare<[Buffer]>('INSERT INTO chunk_blobs (data) VALUES (?)');
    this.repointStmt = db.prepare<[number | bigint, Buffer]>('UPDATE chunks SET blob_id = ? WHERE digest = ?');
    this.deleteBlobStmt = db.prepare<[number]>('DELETE FROM chunk_blobs WHERE id = ?');
    const moveOldest = db.transaction((budget: number): number => {
      let moved = 0;
      const rows = this.oldestStmt.all(MOVE_SLICE_ROWS);
      for (const row of rows) {
        if (moved >= budget) break;
        const data = this.blobStmt.get(row.blobId);
        if (!data) continue;
        const id = this.insertBlobStmt.run(data).lastInsertRowid;
        this.repointStmt.run(id, row.digest);
        this.deleteBlobStmt.run(row.blobId);
        moved += row.size;
      }
      return moved;
    });
    this.moveOldest = (budget) => moveOldest.immediate(budget);
  }

  /** Bytes the index file uses beyond what its content needs with normal slack (0 if none). */
  excess(): number {
    const pageSize = this.db.pragma('page_size', { simple: true }) as number;
    const used = ((this.db.pragma('page_count', { simple: true }) as number) - (this.db.pragma('freelist_count', { simple: true }) as number)) * pageSize;
    const p = this.payloadStmt.get()!;
    const needed = (p.inline + p.records + p.count * ROW_OVERHEAD) * SLACK + FIXED_PAGES * pageSize;
    return Math.max(0, used - needed);
  }

  /**
   * Returns freed pages to the filesystem and, while the file stays fragmented, moves the
   * oldest inline chunks to the end (emptying the oldest pages, which are then freed).
   * Bounded (see MIN_MOVE/MAX_MOVE) and sliced, so it can follow an eviction in a process
   * that serves reads; `stop` ends it early (the cache is closing).
   */
  async step(evictedBytes: number, stop: () => boolean): Promise<void> {
    this.db.pragma('incremental_vacuum');
    if (this.cooldown > 0) {
      this.cooldown--;
      return;
    }
    let budget = Math.min(MAX_MOVE, Math.max(MIN_MOVE, 2 * evictedBytes));
    let excess = this.excess();
    while (excess > 0 && budget > 0 && !stop()) {
      const moved = this.moveOldest(Math.min(MOVE_SLICE, budget));
      if (moved === 0) break;
      budget -= moved;
      this.db.pragma('incremental_vacuum');
      const after = this.excess();
      if (after >= excess) {
        this.cooldown = COOLDOWN;
        break;
      }
      excess = after;
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  /** Repacks the whole file when fragmented (for an explicit prune: blocks, needs free space). */
  full(): void {
    if (this.excess() > 0) this.db.exec('VACUUM');
  }
}
