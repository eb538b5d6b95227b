// A file written so that a reader sees the old one or the whole new one, never half: the bytes
// go to a temporary name beside the target (the same file system), are synced, and the
// temporary is renamed over the target; on any failure the temporary is removed.
// `cat --output`, `sync --metrics-file` and `login` write their files through it.
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { basename, dirname, join } from 'node:path';

export interface AtomicWriteOptions {
  /** The new file's mode (before the umask); default 0o666. */
  mode?: number;
  /** Also sync the directory once renamed, so the rename itself survives a crash. */
  syncDirectory?: boolean;
}

/** Writes `data` (a string, or the buffers an iterable yields, in order) to `target`. Errors are the file system's. */
export async function writeFileAtomically(target: string, data: string | AsyncIterable<Buffer>, options: AtomicWriteOptions = {}): Promise<void> {
  const dir = dirname(target);
  const tmp = join(dir, `.${basename(target)}.stargz-get-${randomBytes(6).toString('hex')}.tmp`);
  const fh = await fsp.open(tmp, 'wx', options.mode ?? 0o666);
  let renamed = false;
  try {
    if (typeof data === 'string') await fh.writeFile(data);
    else for await (const buf of data) for (let off = 0; off < buf.length; ) off += (await fh.write(buf, off, buf.length - off)).bytesWritten;
    await fh.sync();
    await fh.close();
    await fsp.rename(tmp, target);
    renamed = true;
  } finally {
    if (!renamed) {
      await fh.close().catch(() => undefined);
      await fsp.unlink(tmp).catch(() => undefined);
    }
  }
  if (options.syncDirectory) {
    const dh = await fsp.open(dir, 'r');
    await dh.sync().finally(() => dh.close());
  }
}
