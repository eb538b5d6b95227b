// `export REF FILE|DIR`: the image as a docker-archive or OCI layout (blobs streamed from the
// registry and verified as they pass), or with --rootfs one flattened tar of REF[/PATH] built
// from the merged filesystem (only PATH's chunks fetched). Output is all-or-nothing (export/output.ts).
import { resolve } from 'node:path';
import { COMMAND_DEFAULTS } from '../../config.js';
import { ErrorCodes, StargzError } from '../../errors.js';
import { openImage, registryClientFor } from '../../image/open-image.js';
import { FetchMetrics } from '../../metrics/fetch-metrics.js';
import { formatReference, parseReferenceWithPath, type ImageReference } from '../../reference/reference.js';
import { defaultPlatform, parsePlatform } from '../../registry/manifest.js';
import { writeImageArchive, type ImageArchiveSummary } from '../../export/image-archive.js';
import type { ExportFormat } from '../../export/formats.js';
import { STDOUT, tarArchive, writeDirectory, writeTar } from '../../export/output.js';
import { writeRootfs, type RootfsSummary } from '../../export/rootfs.js';
import { openOptionsFrom, quietFrom, type CommonFlags } from '../common.js';
import { formatBytes } from '../format.js';
import type { CliIo } from '../io.js';
import { TransferProgress } from '../progress.js';

export interface ExportFlags extends CommonFlags {
  format?: ExportFormat;
  rootfs?: boolean;
  json?: boolean;
}

function usage(message: string): StargzError {
  return new StargzError(ErrorCodes.USAGE, message);
}

/** docker-archive for a tar (a `.tar` name, or stdout), an OCI layout directory otherwise. */
export function formatFor(output: string, given: ExportFormat | undefined): ExportFormat {
  return given ?? (output === STDOUT || output.endsWith('.tar') ? 'docker-archive' : 'oci');
}

export async function exportCommand(source: string, output: string, flags: ExportFlags, io: CliIo): Promise<void> {
  const { ref, path } = parseReferenceWithPath(source);
  if (flags.json && output === STDOUT) throw usage('--json and output - both want stdout: write the archive to a file');
  if (flags.rootfs && flags.format !== undefined) throw usage('--rootfs writes a plain tar of the files: it takes no --format');
  if (!flags.rootfs && path !== '/') throw usage(`${source}: a path inside the image needs --rootfs (an image archive holds whole layers)`);
  if (!flags.rootfs && flags.offline) throw usage('--offline: the cache holds inflated chunks, not the blobs an image archive is made of; only --rootfs works offline');
  const quiet = quietFrom(flags);
  const target = output === STDOUT ? STDOUT : resolve(output);
  if (flags.rootfs) await exportRootfs(ref, path, target, flags, io, quiet);
  else await exportImage(ref, target, formatFor(output, flags.format), flags, io, quiet);
}

/** Progress on a terminal: one bar per layer read, and the bytes written of the total. */
function progressFor(quiet: boolean, metrics: FetchMetrics, layers: string[], io: CliIo, written: { done: number; total: number }): TransferProgress {
  return new TransferProgress({ quiet, images: [{ metrics, layers }], total: () => written }, io.errStream);
}

async function exportImage(ref: ImageReference, target: string, format: ExportFormat, flags: ExportFlags, io: CliIo, quiet: boolean): Promise<void> {
  let progress: TransferProgress | undefined;
  const notice = (m: string): void => {
    if (!progress?.notice(m)) io.notice(m);
  };
  const options = await openOptionsFrom(flags, ref, notice, io.signal);
  const metrics = new FetchMetrics();
  const client = registryClientFor(ref, options, metrics);
  const started = Date.now();
  try {
    const image = await client.resolveImage(ref, options.platform ? parsePlatform(options.platform) : defaultPlatform(), io.signal);
    const written = { done: 0, total: image.manifest.layers.reduce((n, l) => n + l.size, 0) };
    progress = progressFor(quiet, metrics, image.manifest.layers.map((l) => l.digest), io, written);
    const count = setInterval(() => void metrics.totals().then((t) => (written.done = t.blobBytesReceived)), 200).unref();
    progress.start();
    let summary: ImageArchiveSummary;
    try {
      const write = (out: Parameters<typeof writeImageArchive>[0]['out']) => writeImageArchive({ client, ref, image, format, out, metrics, signal: io.signal });
      // docker-archive is always a tar; an OCI layout is a tar when asked for one (FILE.tar or -).
      const asTar = format === 'docker-archive' || target === STDOUT || target.endsWith('.tar');
      let result: ImageArchiveSummary | undefined;
      if (asTar) await writeTar(target, async (pack) => void (result = await write(tarArchive(pack, io.signal))));
      else await writeDirectory(target, async (out) => void (result = await write(out)));
      summary = result!;
    } finally {
      clearInterval(count);
      progress.stop();
    }
    const totals = await metrics.totals();
    const seconds = (Date.now() - started) / 1000;
    if (flags.json) {
      io.out(JSON.stringify({ reference: formatReference(ref), output: target, ...summary, fetched: { bytes: totals.blobBytesReceived, requests: totals.requests }, seconds }, null, 2));
    } else if (!quiet) {
      io.err(`exported ${formatReference(ref)} (${summary.manifestDigest}) as ${format} -> ${target === STDOUT ? 'stdout' : target}: ${summary.blobs} blobs, ${formatBytes(summary.blobBytes)} in ${seconds.toFixed(2)}s`);
    }
  } finally {
    await client.close();
  }
}

async function exportRootfs(ref: ImageReference, path: string, target: string, flags: ExportFlags, io: CliIo, quiet: boolean): Promise<void> {
  let progress: TransferProgress | undefined;
  const notice = (m: string): void => {
    if (!progress?.notice(m)) io.notice(m);
  };
  const options = await openOptionsFrom(flags, ref, notice, io.signal);
  options.memoryCacheBytes ??= COMMAND_DEFAULTS.export.memoryCacheBytes;
  const image = await openImage(ref, { ...options, warmInflater: true });
  const started = Date.now();
  try {
    const root = image.fs.resolve(path);
    const written = { done: 0, total: 0 };
    progress = progressFor(quiet, image.metrics, image.manifest.layers.map((l) => l.digest), io, written);
    progress.start();
    let summary: RootfsSummary | undefined;
    await writeTar(target, async (pack) => {
      summary = await writeRootfs(image.fs, root, pack, {
        signal: io.signal,
        onProgress: (done, total) => {
          written.done = done;
          written.total = total;
        },
      });
    }).finally(() => progress?.stop());
    const totals = await image.metrics.totals();
    const seconds = (Date.now() - started) / 1000;
    const fullLayerBytes = image.manifest.layers.reduce((n, l) => n + l.size, 0);
    if (flags.json) {
      io.out(
        JSON.stringify(
          {
            reference: formatReference(ref),
            path,
            format: 'rootfs',
            output: target,
            ...summary!,
            fetched: { bytes: totals.blobBytesReceived, requests: totals.requests, chunksFromCache: totals.chunksFromMemory + totals.chunksFromDisk },
            fullLayerBytes,
            seconds,
          },
          null,
          2,
        ),
      );
    } else if (!quiet) {
      const s = summary!;
      io.err(
        `exported ${formatReference(ref)}${path === '/' ? '' : path} as a rootfs tar -> ${target === STDOUT ? 'stdout' : target}: ` +
          `${s.files} files, ${s.directories} dirs, ${s.symlinks} symlinks, ${s.hardlinks} hardlinks, ${s.specials} special; ${formatBytes(s.bytes)} of file data; ` +
          `fetched ${formatBytes(totals.blobBytesReceived)} of ${formatBytes(fullLayerBytes)} in ${seconds.toFixed(2)}s`,
      );
    }
  } finally {
    await image.close();
  }
}
