// Test data for the cache tests: deterministic chunks (the same seed gives the same bytes in
// every process), temporary cache dirs, and a `du` of a directory.
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestChunk {
  digest: string;
  data: Buffer;
}

/** `size` pseudo-random bytes derived from `seed` (incompressible, distinct per seed). */
export function makeChunk(seed: string, size: number): TestChunk {
  const data = Buffer.alloc(size);
  let block = createHash('sha256').update(seed).digest();
  for (let off = 0; off < size; off += 32) {
    block.copy(data, off, 0, Math.min(32, size - off));
    block = createHash('sha256').update(block).digest();
  }
  return { digest: digestOf(data), data };
}

export function digestOf(data: Buffer): string {
  return 'sha256:' + createHash('sha256').update(data).digest('hex');
}

export function makeTempDir(prefix = 'sgz-cache-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** The path of a chunk stored as a file (layout: chunks/ab/<hex>). */
export function chunkFile(cacheDir: string, digest: string): string {
  const hex = digest.slice('sha256:'.length);
  return join(cacheDir, 'chunks', hex.slice(0, 2), hex);
}

/** Multi-process test: the chunks worker `w` writes in round `r`: two of its own (one small, one large), one shared. */
export function roundChunks(w: number, r: number): TestChunk[] {
  return [
    makeChunk(`own-small-${w}-${r}`, 1000 + ((r * 37) % 9000)),
    makeChunk(`own-large-${w}-${r}`, 20_000 + ((r * 101) % 30_000)),
    makeChunk(`shared-${r}`, r % 2 === 0 ? 3000 : 40_000),
  ];
}
