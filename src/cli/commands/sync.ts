import { resolve as resolvePath } from 'node:path';
import { parseReferenceWithPath, formatReference } from '../../reference/reference.js';
import { openImage } from '../../image/open-image.js';
import { syncPath } from '../../sync/sync.js';
import { openOptionsFrom, type CommonFlags } from '../common.js';
import { ProgressLine, transferLine } from '../progress.js';
import { formatBytes } from '../format.js';
import type { CliIo } from '../io.js';
import { writeStatsFile } from '../stats-file.js';
import { loadConfigFile } from '../../config-file.js';
import { COMMAND_DEFAULTS } from '../../config.js';

export async function syncCommand(source: string, dest: string, flags: CommonFlags, io: CliIo): Promise<void> {
  const { ref, path } = parseReferenceWithPath(source);
  const quiet = flags.quiet ?? loadConfigFile(flags.config).cli.quiet ?? false;
  const progress = new ProgressLine(io.errStream, quiet);
  const notice = (m: string): void => {
    progress.clear();
    io.notice(m);
  };
  const options = await openOptionsFrom(flags, ref, notice, io.signal);
  // A user's --memory-cache (or the file's) wins over sync's own default.
  options.memoryCacheBytes ??= COMMAND_DEFAULTS.sync.memoryCacheBytes;
  const image = await openImage(ref, { ...options, warmInflater: true });
  try {
    const started = Date.now();
    const summary = await syncPath(image.fs, path, resolvePath(dest), {
      signal: io.signal,
      warn: notice,
      onProgress: (p) => progress.update(transferLine(p.bytesDone, p.bytesTotal, image.client.stats.blobBytesReceived, p.filesDone, p.filesTotal)),
    });
    progress.clear();
    writeStatsFile(image, summary, Date.now() - started);
    if (quiet) return;
    const fetched = image.client.stats.blobBytesReceived;
    const fullLayers = image.manifest.layers.reduce((n, l) => n + l.size, 0);
    const saved = fullLayers > 0 ? Math.max(0, 100 * (1 - fetched / fullLayers)) : 0;
    const secs = ((Date.now() - started) / 1000).toFixed(2);
    io.err(
      `synced ${formatReference(ref)}${path === '/' ? '' : path} -> ${summary.target}: ` +
        `${summary.files} files, ${summary.directories} dirs, ${summary.symlinks} symlinks, ${summary.hardlinks} hardlinks, ` +
        `${summary.specials} special; ${formatBytes(summary.bytesWritten)} written in ${secs}s`,
    );
    io.err(
      `fetched ${formatBytes(fetched)} in ${image.client.stats.requests} requests ` +
        `(full layers: ${formatBytes(fullLayers)}, saved ${saved.toFixed(1)}%; ${image.ctx.stats.chunkCacheHits} chunks from cache)`,
    );
  } finally {
    await image.close();
  }
}
