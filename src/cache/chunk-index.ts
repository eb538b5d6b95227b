// Typed access to the chunk rows of the cache index. Every statement is prepared once; each
// change runs in one IMMEDIATE transaction (taking the write lock up front, so a transaction
// never fails half-way with SQLITE_BUSY when another process writes) that also adjusts the
// totals in `meta`, once per transaction rather than once per row.
import type { Db } from './schema.js';

export interface ChunkRow {
  size: number;
  /** Set for chunks stored inline; null for chunks stored as files. */
  blobId: number | null;
  created: number;
  lastAccess: number;
  /** The inline bytes (null for file chunks). */
  data: Buffer | null;
  /** 1 when the file was hashed once as it was streamed in (schema.ts verified_once). */
  verifiedOnce: number;
}

export interface NewChunk {
  raw: Buffer;
  size: number;
  /** Inline bytes, or undefined when the chunk was already written as a file. */
  data: Buffer | undefined;
  /** A file hashed once as it was streamed in (schema.ts verified_once). */
  verifiedOnce?: boolean;
}

export interface LruRow {
  digest: Buffer;
  size: number;
  blobId: number | null;
  lastAccess: number;
}

/** A change to the totals: rows, bytes, and bytes stored inline. */
class Delta {
  count = 0;
  bytes = 0;
  inline = 0;
  add(sign: 1 | -1, size: number, inline: boolean): void {
    this.count += sign;
    this.bytes += sign * size;
    if (inline) this.inline += sign * size;
  }
}

export class ChunkIndex {
  private readonly lookupStmt;
  private readonly existsStmt;
  private readonly insertBlobStmt;
  private readonly insertChunkStmt;
  private readonly markVerifiedStmt;
  private readonly touchStmt;
  private readonly deleteVictimStmt;
  private readonly deleteIfStmt;
  private readonly deleteBlobStmt;
  private readonly lruStmt;
  private readonly totalsStmt;
  private readonly adjustStmt;
  private readonly fileDigestsStmt;
  readonly insertMany: (chunks: NewChunk[], now: number) => void;
  readonly touchMany: (entries: Iterable<[Buffer, number]>) => void;
  /** Deletes `victims` in order until stored bytes <= target; returns those deleted. */
  readonly deleteVictims: (victims: LruRow[], target: number) => LruRow[];
  /** Deletes the row only if it is still the one that was read (not a fresh rewrite). */
  readonly deleteIfCreated: (raw: Buffer, created: number) => boolean;
  /** Deletes every chunk row and inline chunk. */
  readonly deleteAll: () => void;

  constructor(db: Db) {
    this.lookupStmt = db.prepare<[Buffer], ChunkRow>(
      `SELECT c.size AS size, c.blob_id AS blobId, c.created AS created, c.last_access AS lastAccess, b.data AS data,
              c.verified_once AS verifiedOnce
         FROM chunks c LEFT JOIN chunk_blobs b ON b.id = c.blob_id WHERE c.digest = ?`,
    );
    this.existsStmt = db.prepare<[Buffer], number>('SELECT 1 FROM chunks WHERE digest = ?').pluck();
    this.insertBlobStmt = db.prepare<[Buffer]>('INSERT INTO chunk_blobs (data) VALUES (?)');
    this.insertChunkStmt = db.prepare<[Buffer, number, number | bigint | null, number, number, number]>(
      'INSERT INTO chunks (digest, size, blob_id, created, last_access, verified_once) VALUES (?, ?, ?, ?, ?, ?)',
    );
    this.markVerifiedStmt = db.prepare<[Buffer, number]>('UPDATE chunks SET verified_once = 1 WHERE digest = ? AND size = ? AND blob_id IS NULL');
    this.touchStmt = db.prepare<[number, Buffer, number]>('UPDATE chunks SET last_access = ? WHERE digest = ? AND last_access < ?');
    this.deleteVictimStmt = db.prepare<[Buffer, number], { size: number; blobId: number | null }>(
      'DELETE FROM chunks WHERE digest = ? AND last_access = ? RETURNING size, blob_id AS blobId',
    );
    this.deleteIfStmt = db.prepare<[Buffer, number], { size: number; blobId: number | null }>(
      'DELETE FROM chunks WHERE digest = ? AND created = ? RETURNING size, blob_id AS blobId',
    );
    this.deleteBlobStmt = db.prepare<[number]>('DELETE FROM chunk_blobs WHERE id = ?');
    // A full scan (there is no index on last_access); ORDER BY + LIMIT keeps only LIMIT rows.
    this.lruStmt = db.prepare<[number], LruRow>(
      'SELECT digest, size, blob_id AS blobId, last_access AS lastAccess FROM chunks ORDER BY last_access, created LIMIT ?',
    );
    this.totalsStmt = db.prepare<[], { key: string; value: number }>("SELECT key, value FROM meta WHERE key IN ('chunk_count', 'chunk_bytes')");
    this.adjustStmt = db.prepare<[number, number, number]>(
      `UPDATE meta SET value = value + CASE key WHEN 'chunk_count' THEN ? WHEN 'chunk_bytes' THEN ? ELSE ? END
        WHERE key IN ('chunk_count', 'chunk_bytes', 'inline_bytes')`,
    );
    this.fileDigestsStmt = db.prepare<[], Buffer>('SELECT digest FROM chunks WHERE blob_id IS NULL').pluck();

    const insertMany = db.transaction((chunks: NewChunk[], now: number) => {
      const delta = new Delta();
      for (const c of chunks) {
        // Another process (or an earlier batch) may have stored it meanwhile: same bytes, keep theirs.
        // A streamed file replaced the file of a row stored whole: the row learns it was verified once.
        if (this.existsStmt.get(c.raw) !== undefined) {
          if (c.verifiedOnce) this.markVerifiedStmt.run(c.raw, c.size);
          continue;
        }
        const blobId = c.data ? this.insertBlobStmt.run(c.data).lastInsertRowid : null;
        this.insertChunkStmt.run(c.raw, c.size, blobId, now, now, c.verifiedOnce ? 1 : 0);
        delta.add(1, c.size, blobId !== null);
      }
      this.adjust(delta);
    });
    this.insertMany = (chunks, now) => insertMany.immediate(chunks, now);

    const touchMany = db.transaction((entries: Iterable<[Buffer, number]>) => {
      for (const [raw, at] of entries) this.touchStmt.run(at, raw, at);
    });
    this.touchMany = (entries) => touchMany.immediate(entries);

    // Victims are chosen by a read and deleted by a later transaction (in slices, so the
    // event loop and other processes' writers get turns); a victim read again meanwhile has a
    // new last_access and is spared.
    const deleteVictims = db.transaction((victims: LruRow[], target: number): LruRow[] => {
      const removed: LruRow[] = [];
      const delta = new Delta();
      let total = this.totals().bytes; // other processes may have evicted since the read
      for (const v of victims) {
        if (total <= target) break;
        const row = this.deleteVictimStmt.get(v.digest, v.lastAccess);
        if (!row) continue;
        if (row.blobId !== null) this.deleteBlobStmt.run(row.blobId);
        delta.add(-1, row.size, row.blobId !== null);
        total -= row.size;
        removed.push({ ...v, size: row.size, blobId: row.blobId });
      }
      this.adjust(delta);
      return removed;
    });
    this.deleteVictims = (victims, target) => deleteVictims.immediate(victims, target);

    const deleteIfCreated = db.transaction((raw: Buffer, created: number): boolean => {
      const row = this.deleteIfStmt.get(raw, created);
      if (!row) return false;
      if (row.blobId !== null) this.deleteBlobStmt.run(row.blobId);
      const delta = new Delta();
      delta.add(-1, row.size, row.blobId !== null);
      this.adjust(delta);
      return true;
    });
    this.deleteIfCreated = (raw, created) => deleteIfCreated.immediate(raw, created);

    // Part of DiskCache.clear()'s transaction, so not IMMEDIATE of its own.
    this.deleteAll = db.transaction(() => {
      db.exec("DELETE FROM chunks; DELETE FROM chunk_blobs; UPDATE meta SET value = 0 WHERE key IN ('chunk_count', 'chunk_bytes', 'inline_bytes');");
    });
  }

  lookup(raw: Buffer): ChunkRow | undefined {
    return this.lookupStmt.get(raw);
  }

  /** The `limit` least recently used chunks, oldest first. */
  leastRecentlyUsed(limit: number): LruRow[] {
    return this.lruStmt.all(limit);
  }

  exists(raw: Buffer): boolean {
    return this.existsStmt.get(raw) !== undefined;
  }

  totals(): { count: number; bytes: number } {
    let count = 0;
    let bytes = 0;
    for (const r of this.totalsStmt.all()) {
      if (r.key === 'chunk_count') count = r.value;
      else bytes = r.value;
    }
    return { count, bytes };
  }

  /** Hex digests of every chunk stored as a file (for sweeping orphaned files). */
  fileDigests(): Set<string> {
    const out = new Set<string>();
    for (const raw of this.fileDigestsStmt.iterate()) out.add(raw.toString('hex'));
    return out;
  }

  private adjust(delta: Delta): void {
    if (delta.count !== 0) this.adjustStmt.run(delta.count, delta.bytes, delta.inline);
  }
}
