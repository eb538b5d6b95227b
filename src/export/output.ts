// Where an export's bytes go, all-or-nothing: a tar to a file (a temporary beside it, synced and
// renamed over it: util/atomic-file.ts) or to stdout ('-'), or a directory (an OCI layout: built
// under a temporary name beside DIR and renamed to DIR once complete). A failure — a blob
// whose digest does not match, an abort — leaves nothing under the final name.
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { ErrorCodes, StargzError } from '../errors.js';
import { writeFileAtomically } from '../util/atomic-file.js';
import { writeToStdout } from '../util/stdout.js';
import { addTarEntry, createTarPack, type TarPack } from './tar-writer.js';

/** What the archive formats write into: named files, small ones from memory, blobs streamed. */
export interface ArchiveWriter {
  addBytes(name: string, data: Buffer): Promise<void>;
  /** Exactly `size` bytes from `body`. */
  addStream(name: string, size: number, body: Readable): Promise<void>;
}

/** '-' is stdout. */
export const STDOUT = '-';

/** Local write failures say which file; our own coded errors (a digest mismatch) pass as they are. */
function ioError(err: unknown, target: string): StargzError {
  if (err instanceof StargzError) return err;
  return new StargzError(ErrorCodes.IO, `cannot write ${target}: ${(err as Error).message}`, { cause: err });
}

async function toStdout(pack: TarPack): Promise<void> {
  try {
    await writeToStdout(pack as AsyncIterable<Buffer>);
  } catch (err) {
    if (err instanceof StargzError) throw err; // the tar's own failure (a blob that did not verify)
    throw new StargzError(ErrorCodes.IO, `cannot write to stdout: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Runs `fill` with a tar pack whose bytes go to `target` (a file, or '-'). The file appears
 * only once the whole tar is written; on any failure of `fill` or of the writing, the
 * temporary is removed and the first error is thrown.
 */
export async function writeTar(target: string, fill: (pack: TarPack) => Promise<void>): Promise<void> {
  const pack = createTarPack();
  let firstError: unknown;
  const producing = fill(pack).then(
    () => pack.finalize(),
    (err: unknown) => {
      firstError ??= err;
      pack.destroy(err as Error);
    },
  );
  const consuming = (target === STDOUT ? toStdout(pack) : writeFileAtomically(target, pack as AsyncIterable<Buffer>, { syncDirectory: true })).catch((err: unknown) => {
    firstError ??= err;
    // A consumer that stopped (disk full, closed pipe) must not leave the producer waiting for a drain.
    pack.destroy(err as Error);
  });
  await Promise.all([producing, consuming]);
  if (firstError !== undefined) throw ioError(firstError, target);
}

/** An ArchiveWriter on a tar pack: each name one regular file entry. */
export function tarArchive(pack: TarPack, signal?: AbortSignal): ArchiveWriter {
  const file = (name: string, size: number) => ({ name, type: 'file' as const, mode: 0o644, uid: 0, gid: 0, mtimeMs: 0, size });
  return {
    addBytes: (name, data) => addTarEntry(pack, file(name, data.length), [data] as unknown as AsyncIterable<Buffer>, signal),
    addStream: (name, size, body) => addTarEntry(pack, file(name, size), body, signal),
  };
}

async function writeStreamTo(path: string, body: Readable): Promise<void> {
  const fh = await fsp.open(path, 'wx', 0o644);
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) for (let off = 0; off < chunk.length; ) off += (await fh.write(chunk, off, chunk.length - off)).bytesWritten;
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Runs `fill` with an ArchiveWriter into a new directory that becomes `target` once complete.
 * `target` must not exist, or be an empty directory (it is replaced); a failure removes the
 * temporary directory and leaves `target` as it was.
 */
export async function writeDirectory(target: string, fill: (out: ArchiveWriter) => Promise<void>): Promise<void> {
  const existing = await fsp.readdir(target).catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? undefined : Promise.reject(ioError(err, target))));
  if (existing !== undefined && existing.length > 0) {
    throw new StargzError(ErrorCodes.USAGE, `${target} is not empty: an OCI layout is written into a new or empty directory`);
  }
  const tmp = join(dirname(target), `.${basename(target)}.stargz-get-${randomBytes(6).toString('hex')}.tmp`);
  await fsp.mkdir(tmp).catch((err: unknown) => Promise.reject(ioError(err, target)));
  let renamed = false;
  try {
    const made = new Set<string>();
    const place = async (name: string): Promise<string> => {
      const dir = dirname(join(tmp, name));
      if (!made.has(dir)) await fsp.mkdir(dir, { recursive: true });
      made.add(dir);
      return join(tmp, name);
    };
    await fill({
      addBytes: async (name, data) => fsp.writeFile(await place(name), data, { flag: 'wx' }),
      addStream: async (name, _size, body) => writeStreamTo(await place(name), body),
    });
    // rename(2) replaces an empty directory and refuses a non-empty one (filled meanwhile).
    await fsp.rename(tmp, target);
    renamed = true;
    const dh = await fsp.open(dirname(target), 'r');
    await dh.sync().finally(() => dh.close());
  } catch (err) {
    throw ioError(err, target);
  } finally {
    if (!renamed) await fsp.rm(tmp, { recursive: true, force: true });
  }
}
