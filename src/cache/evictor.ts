// Least-recently-used eviction of chunks. Victims are chosen by one scan of the chunk rows
// (there is no index on last_access; see schema.ts) and deleted in slices; a victim read
// again meanwhile is spared. Files are unlinked after the commit: a reader in another process
// that still holds the row finds no file, which is a miss, never an error.
import { chunkFilePath, removeFile } from './chunk-files.js';
import type { ChunkIndex, LruRow } from './chunk-index.js';
import type { IndexCompactor } from './compaction.js';

/** Victims chosen per scan (the scan reads every row: fewer, larger ones). */
const SCAN_ROWS = 10_000;
/** Victims deleted per transaction before the event loop and other processes get a turn. */
const SLICE_ROWS = 500;

export interface EvictorHooks {
  /** Called before victims are chosen (to write pending access times). */
  beforeChoosing: () => void;
  /** True once the cache is closing: background work stops. */
  stopped: () => boolean;
}

export class Evictor {
  /** The background eviction under way, if any (one at a time per process). */
  running: Promise<void> | undefined;

  constructor(
    private readonly index: ChunkIndex,
    private readonly compactor: IndexCompactor,
    private readonly chunksDir: string,
    private readonly hooks: EvictorHooks,
  ) {}

  /**
   * Evicts down to `target` bytes in the background, in slices: with many small chunks that
   * is seconds of work, which must not stall a process serving FUSE reads. Failures (the
   * index stayed locked) are dropped: the next write over the bound starts again.
   */
  start(target: number): void {
    if (this.running) return;
    this.running = this.inBackground(target)
      .catch(() => undefined)
      .finally(() => (this.running = undefined));
  }

  /** Evicts down to `target` bytes now (prune, close). Throws SQLite errors. */
  now(target: number): { removedChunks: number; removedBytes: number } {
    let removedChunks = 0;
    let removedBytes = 0;
    for (;;) {
      const victims = this.choose(target);
      const removed = victims.length ? this.index.deleteVictims(victims, target) : [];
      if (removed.length === 0) break;
      removedChunks += removed.length;
      removedBytes += this.removeFiles(removed).bytes;
    }
    return { removedChunks, removedBytes };
  }

  private async inBackground(target: number): Promise<void> {
    const stopped = this.hooks.stopped;
    let inlineBytes = 0;
    for (let done = false; !done && !stopped(); ) {
      const victims = this.choose(target);
      if (victims.length === 0) break;
      let removedAny = false;
      for (let i = 0; i < victims.length && !stopped(); i += SLICE_ROWS) {
        const removed = this.index.deleteVictims(victims.slice(i, i + SLICE_ROWS), target);
        removedAny ||= removed.length > 0;
        inlineBytes += this.removeFiles(removed).inlineBytes;
        if (this.index.totals().bytes <= target) {
          done = true;
          break;
        }
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
      if (!removedAny) break; // every victim was read or evicted meanwhile: the next write retries
    }
    if (inlineBytes > 0 && !stopped()) await this.compactor.step(inlineBytes, stopped);
  }

  /** The least recently used chunks, as many as should bring stored bytes down to `target`. */
  private choose(target: number): LruRow[] {
    this.hooks.beforeChoosing();
    const { count, bytes } = this.index.totals();
    if (bytes <= target || count === 0) return [];
    // Enough rows at the average chunk size, with margin; another scan follows if short.
    const want = Math.min(SCAN_ROWS, Math.ceil(((bytes - target) / (bytes / count)) * 1.5) + 64);
    return this.index.leastRecentlyUsed(want);
  }

  private removeFiles(removed: LruRow[]): { bytes: number; inlineBytes: number } {
    let bytes = 0;
    let inlineBytes = 0;
    for (const row of removed) {
      bytes += row.size;
      if (row.blobId !== null) inlineBytes += row.size;
      else {
        try {
          removeFile(chunkFilePath(this.chunksDir, row.digest.toString('hex')));
        } catch {
          // Left for prune()'s orphan sweep.
        }
      }
    }
    return { bytes, inlineBytes };
  }
}
