// Large chunks as files: chunks/ab/<hex>. A file appears under its final name only complete
// (written under tmp/, then renamed), so a reader in any process sees all of it or nothing.
import { mkdirSync, readdirSync, rmSync, statSync, unlinkSync, lstatSync } from 'node:fs';
import { mkdir, open, rename, unlink, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { errnoCode } from '../util/errno-code.js';

export function chunkFilePath(chunksDir: string, hex: string): string {
  return join(chunksDir, hex.slice(0, 2), hex);
}

/**
 * Reads a chunk file expected to hold `size` bytes, and one byte more if it has it, so a file
 * that grew is noticed as well as one that shrank. Three calls into the thread pool where
 * readFile makes four or more: this is on the FUSE read path.
 */
export async function readChunkFile(path: string, size: number): Promise<Buffer> {
  const handle = await open(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(size + 1);
    let got = 0;
    while (got < buf.length) {
      const { bytesRead } = await handle.read(buf, got, buf.length - got, got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    return buf.subarray(0, got);
  } finally {
    await handle.close();
  }
}

/** Writes `data` to `dest` atomically. Idempotent: renaming over an identical file is harmless. */
export async function writeFileAtomic(tmpDir: string, dest: string, data: Buffer): Promise<void> {
  const tmp = join(tmpDir, `${randomBytes(8).toString('hex')}.${process.pid}.tmp`);
  try {
    try {
      await writeFile(tmp, data, { flag: 'wx' });
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw err;
      await mkdir(tmpDir, { recursive: true }); // removed by hand while we run
      await writeFile(tmp, data, { flag: 'wx' });
    }
    try {
      await rename(tmp, dest);
    } catch (err) {
      // The fan-out directory is made on first use, and `cache clear` in another process may
      // have removed it since: make it and try once more.
      if (errnoCode(err) !== 'ENOENT') throw err;
      await mkdir(dirname(dest), { recursive: true });
      await rename(tmp, dest);
    }
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
}

/** Removes a file; a file already gone is fine (another process evicted it). */
export function removeFile(path: string): void {
  try {
    unlinkSync(path);
  } catch (err) {
    if (errnoCode(err) !== 'ENOENT') throw err;
  }
}

/** Removes files under `dir` last modified more than `graceMs` ago: leftovers of crashed writers. */
export function sweepOldFiles(dir: string, graceMs: number, now: number): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    try {
      const p = join(dir, name);
      if (now - statSync(p).mtimeMs > graceMs) unlinkSync(p);
    } catch {
      // Raced with its writer's rename or another sweeper: nothing to do.
    }
  }
}

/**
 * Removes chunk files the index does not know (a writer that crashed between rename and
 * insert), sparing young ones: their writer may be about to insert the row.
 */
export function sweepOrphanChunkFiles(chunksDir: string, known: Set<string>, graceMs: number, now: number): void {
  let fanout: string[];
  try {
    fanout = readdirSync(chunksDir);
  } catch {
    return;
  }
  for (const sub of fanout) {
    const subDir = join(chunksDir, sub);
    let names: string[];
    try {
      names = readdirSync(subDir);
    } catch {
      continue;
    }
    for (const name of names) {
      if (known.has(name)) continue;
      try {
        const p = join(subDir, name);
        if (now - statSync(p).mtimeMs > graceMs) unlinkSync(p);
      } catch {
        // Gone already.
      }
    }
  }
}

/** Empties a directory (keeping it), tolerating entries that vanish meanwhile. */
export function emptyDir(dir: string): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    mkdirSync(dir, { recursive: true });
    return;
  }
  for (const name of names) rmSync(join(dir, name), { recursive: true, force: true });
}

/** Bytes the tree under `dir` occupies on disk (allocated blocks, as `du` counts them). */
export function diskUsage(dir: string): number {
  let total = 0;
  const walk = (p: string): void => {
    let st;
    try {
      st = lstatSync(p);
    } catch {
      return;
    }
    total += st.blocks * 512;
    if (!st.isDirectory()) return;
    let names: string[];
    try {
      names = readdirSync(p);
    } catch {
      return;
    }
    for (const name of names) walk(join(p, name));
  };
  walk(dir);
  return total;
}
