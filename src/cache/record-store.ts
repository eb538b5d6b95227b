// TOCs, manifests, layer indexes (by layer digest, or by TOC digest: 'toc-index'), merged trees (by manifest digest), verified files' chunk digests and tag resolutions: keyed rows of the index's `records`
// table. Single-statement writes need no explicit transaction; the busy timeout covers
// other writers.
import type { Db } from './schema.js';

export type RecordKind = 'toc' | 'toc-index' | 'manifest' | 'layer-index' | 'merged-tree' | 'file-chunks' | 'tag';

export class RecordStore {
  private readonly getStmt;
  private readonly putStmt;
  private readonly deleteStmt;
  private readonly countStmt;
  private readonly deleteAllStmt;

  constructor(db: Db) {
    this.getStmt = db.prepare<[RecordKind, string], { data: Buffer; created: number }>(
      'SELECT data, created FROM records WHERE kind = ? AND key = ?',
    );
    this.putStmt = db.prepare<[RecordKind, string, Buffer, number]>(
      `INSERT INTO records (kind, key, data, created) VALUES (?, ?, ?, ?)
         ON CONFLICT (kind, key) DO UPDATE SET data = excluded.data, created = excluded.created`,
    );
    this.deleteStmt = db.prepare<[RecordKind, string]>('DELETE FROM records WHERE kind = ? AND key = ?');
    this.countStmt = db.prepare<[RecordKind], number>('SELECT count(*) FROM records WHERE kind = ?').pluck();
    this.deleteAllStmt = db.prepare('DELETE FROM records');
  }

  get(kind: RecordKind, key: string): { data: Buffer; created: number } | undefined {
    return this.getStmt.get(kind, key);
  }

  put(kind: RecordKind, key: string, data: Buffer, created: number): void {
    this.putStmt.run(kind, key, data, created);
  }

  delete(kind: RecordKind, key: string): void {
    this.deleteStmt.run(kind, key);
  }

  count(kind: RecordKind): number {
    return this.countStmt.get(kind) ?? 0;
  }

  deleteAll(): void {
    this.deleteAllStmt.run();
  }
}
