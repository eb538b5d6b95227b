// A regular file of the merged image as a Node Readable: one window of bytes at a time through
// MergedFs.read (the one byte path: cache first, chunks verified before they are handed out),
// pushed only when the consumer wants more, so memory stays about two windows whatever the
// file's size. The library's createReadStream and the CLI's `cat` both stream through here.
import { Readable } from 'node:stream';
import { ErrorCodes, StargzError, toStargzError } from '../errors.js';
import type { MergedFs } from '../vfs/merged-fs.js';
import { isFile, type VNode } from '../vfs/node.js';

/** Bytes read per MergedFs.read: a few chunks, so range requests merge, yet bounded. */
export const READ_WINDOW_BYTES = 1024 * 1024;

export interface ReadStreamOptions {
  /** First byte to read (default 0). */
  start?: number;
  /** Last byte to read, inclusive as in fs.createReadStream (default: the end of the file). */
  end?: number;
  /** Bytes per read (default 1 MiB); also the stream's highWaterMark. */
  windowBytes?: number;
  signal?: AbortSignal;
}

/**
 * The regular file at `path`, symlinks followed inside the image (never above its root).
 * A missing path is PATH_NOT_FOUND, a directory IS_DIRECTORY, a device, fifo or socket NOT_REGULAR_FILE.
 */
export function resolveRegularFile(fs: MergedFs, path: string): VNode {
  const node = fs.resolve(path, true);
  if (node.children) throw new StargzError(ErrorCodes.IS_DIRECTORY, `${path}: is a directory`);
  if (!isFile(node)) throw new StargzError(ErrorCodes.NOT_REGULAR_FILE, `${path}: not a regular file (${node.inode.entry.type})`);
  return node;
}

function offsetOption(value: number | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < 0) throw new StargzError(ErrorCodes.USAGE, `${name} must be a non-negative integer, not ${value}`);
  return value;
}

export function createFileReadStream(fs: MergedFs, node: VNode, options: ReadStreamOptions = {}): Readable {
  const size = fs.size(node);
  const start = offsetOption(options.start, 'start', 0);
  const last = offsetOption(options.end, 'end', Number.MAX_SAFE_INTEGER);
  if (last < start && options.end !== undefined) throw new StargzError(ErrorCodes.USAGE, `end (${last}) is before start (${start})`);
  const window = offsetOption(options.windowBytes, 'windowBytes', READ_WINDOW_BYTES) || READ_WINDOW_BYTES;
  const stop = Math.min(size, last === Number.MAX_SAFE_INTEGER ? size : last + 1);
  let pos = start;
  const abort = new AbortController();
  const stream: Readable = new Readable({
    highWaterMark: window,
    // Readable calls read() again only after a push and while it is below highWaterMark: one
    // window in flight at most.
    read(this: Readable) {
      if (pos >= stop) {
        this.push(null);
        return;
      }
      const want = Math.min(window, stop - pos);
      fs.read(node, pos, want, abort.signal).then(
        (buf) => {
          if (abort.signal.aborted) return;
          if (buf.length === 0) {
            this.destroy(new StargzError(ErrorCodes.IO, `${node.path}: short read at ${pos} of ${size}`));
            return;
          }
          pos += buf.length;
          this.push(buf);
          if (pos >= stop) this.push(null);
        },
        (err: unknown) => this.destroy(options.signal?.aborted ? new StargzError(ErrorCodes.ABORTED, 'read aborted', { cause: err }) : toStargzError(err)),
      );
    },
    destroy(err, callback) {
      abort.abort();
      options.signal?.removeEventListener('abort', onOuterAbort);
      callback(err);
    },
  });
  const onOuterAbort = (): void => {
    stream.destroy(new StargzError(ErrorCodes.ABORTED, 'read aborted'));
  };
  if (options.signal?.aborted) onOuterAbort();
  else options.signal?.addEventListener('abort', onOuterAbort, { once: true });
  return stream;
}
