// `cat REF/PATH...`: file bytes to stdout (or --output FILE), streamed one window at a time as
// their chunks verify (api/read-stream.ts), so memory stays bounded on a file of any size.
// Every path is resolved before a byte is written: a missing path, a directory or a device
// fails the command with nothing printed. --output writes a temporary file beside FILE,
// fsyncs it and renames it over FILE: FILE is either the complete bytes or untouched.
import { resolve } from 'node:path';
import { Readable } from 'node:stream';
import { COMMAND_DEFAULTS } from '../../config.js';
import { ErrorCodes, StargzError, toStargzError } from '../../errors.js';
import { openImage, type OpenedImage } from '../../image/open-image.js';
import { formatReference, parseReferenceWithPath } from '../../reference/reference.js';
import { createFileReadStream, resolveRegularFile } from '../../api/read-stream.js';
import type { VNode } from '../../vfs/node.js';
import { openOptionsFrom, quietFrom, type CommonFlags } from '../common.js';
import type { CliIo } from '../io.js';
import { TransferProgress } from '../progress.js';
import { writeFileAtomically } from '../../util/atomic-file.js';
import { writeToStdout } from '../../util/stdout.js';

export interface CatFlags extends CommonFlags {
  output?: string;
}

interface Part {
  image: OpenedImage;
  node: VNode;
}

export async function catCommand(sources: string[], flags: CatFlags, io: CliIo): Promise<void> {
  const images = new Map<string, OpenedImage>();
  let progress: TransferProgress | undefined;
  const notice = (m: string): void => {
    if (!progress?.notice(m)) io.notice(m);
  };
  try {
    const parts: Part[] = [];
    for (const source of sources) {
      const { ref, path } = parseReferenceWithPath(source);
      const key = formatReference(ref);
      let image = images.get(key);
      if (!image) {
        const options = await openOptionsFrom(flags, ref, notice, io.signal);
        options.memoryCacheBytes ??= COMMAND_DEFAULTS.cat.memoryCacheBytes;
        image = await openImage(ref, options);
        images.set(key, image);
      }
      parts.push({ image, node: resolveRegularFile(image.fs, path) });
    }
    // Progress when the bytes go to a file (-o, or stdout redirected), not between them on a terminal.
    const written = { done: 0, total: parts.reduce((n, p) => n + p.node.inode.entry.size, 0) };
    if (flags.output !== undefined || !io.outIsTTY) {
      const quiet = quietFrom(flags);
      const shown = [...images.values()].map((image) => ({ metrics: image.metrics, layers: image.manifest.layers.map((l) => l.digest) }));
      progress = new TransferProgress({ quiet, images: shown, total: () => written }, io.errStream);
      progress.start();
    }
    const streams = (): AsyncGenerator<Readable> => (progress?.enabled ? counted(streamsOf(parts, io.signal), written) : streamsOf(parts, io.signal));
    try {
      if (flags.output !== undefined) await writeAtomically(resolve(flags.output), streams());
      else await writeStdout(streams());
    } finally {
      progress?.stop();
    }
  } finally {
    for (const image of images.values()) await image.close();
  }
}

async function* streamsOf(parts: Part[], signal: AbortSignal): AsyncGenerator<Readable> {
  for (const { image, node } of parts) yield createFileReadStream(image.fs, node, { signal });
}

/** Counts the bytes passing through each stream into `written.done` (the progress total line). */
async function* counted(streams: AsyncGenerator<Readable>, written: { done: number }): AsyncGenerator<Readable> {
  for await (const stream of streams) {
    // Destroying the result ends the generator, whose loop then destroys `stream`.
    yield Readable.from(
      (async function* () {
        for await (const chunk of stream as AsyncIterable<Buffer>) {
          written.done += chunk.length;
          yield chunk;
        }
      })(),
      { objectMode: false },
    );
  }
}

async function writeStdout(streams: AsyncGenerator<Readable>): Promise<void> {
  async function* bytes(): AsyncGenerator<Buffer> {
    for await (const stream of streams) for await (const chunk of stream) yield chunk as Buffer;
  }
  try {
    await writeToStdout(bytes());
  } catch (err) {
    // A reader that went away (`| head`) is not our failure, as for cat(1) under SIGPIPE.
    if ((err as NodeJS.ErrnoException).code !== 'EPIPE') throw toStargzError(err);
  }
}

/** The files' bytes to FILE: complete under that name, or not there at all (util/atomic-file.ts). */
async function writeAtomically(target: string, streams: AsyncGenerator<Readable>): Promise<void> {
  async function* bytes(): AsyncGenerator<Buffer> {
    for await (const stream of streams) for await (const chunk of stream) yield chunk as Buffer;
  }
  try {
    await writeFileAtomically(target, bytes(), { syncDirectory: true });
  } catch (err) {
    // A read's own error (a digest that does not match) says more than the file it was going to.
    if (err instanceof StargzError) throw err;
    throw new StargzError(ErrorCodes.IO, `cannot write ${target}: ${(err as Error).message}`, { cause: err });
  }
}
