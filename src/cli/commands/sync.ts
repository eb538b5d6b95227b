import { stat } from 'node:fs/promises';
import { resolve as resolvePath } from 'node:path';
import { parseReferenceWithPath, formatReference } from '../../reference/reference.js';
import { openImage } from '../../image/open-image.js';
import { syncPath, type SyncSummary } from '../../sync/sync.js';
import { openOptionsFrom, quietFrom, type CommonFlags } from '../common.js';
import { TransferProgress } from '../progress.js';
import { formatBytes } from '../format.js';
import type { CliIo } from '../io.js';
import { writeStatsFile } from '../stats-file.js';
import { COMMAND_DEFAULTS, SYNC_HEAD_START_BYTES } from '../../config.js';
import { dryRunSync, type DryRunReport } from '../../sync/dry-run.js';
import { ErrorCodes, StargzError, escapeControl } from '../../errors.js';
import type { ReuseCounts } from '../../sync/reuse.js';
import { writeMetricsFile } from '../../metrics/export.js';
import { posixExtra } from '../../util/native.js';

export interface SyncFlags extends CommonFlags {
  /** Remove entries of DEST that PATH lacks. */
  delete?: boolean;
  /** Reuse local files by size + mtime instead of by sha256 against the TOC. */
  quick?: boolean;
  dryRun?: boolean;
  /** The summary as one JSON document on stdout (SyncJson); progress and notices stay on stderr. */
  json?: boolean;
  /** Write the metrics here once at the end (node_exporter textfile format). */
  metricsFile?: string;
  /** false with --no-cache: fetched chunks are not written to the disk cache. */
  cache?: boolean;
}

/** What `sync --json` prints (README, "sync"): SyncSummary's fields plus what was fetched. */
export interface SyncJson extends Omit<SyncSummary, 'dest'> {
  reference: string;
  /** The path synced inside the image ('/' for all of it). */
  path: string;
  /** What DEST already had (issue 11); null when DEST did not exist. */
  dest: ReuseCounts | null;
  fetched: { bytes: number; requests: number; chunksFromCache: number };
  /** Compressed size of all layers: what a full pull would fetch. */
  fullLayerBytes: number;
  /** 100 * (1 - fetched.bytes / fullLayerBytes), at least 0. */
  savedPercent: number;
  seconds: number;
}

export async function syncCommand(source: string, dest: string, flags: SyncFlags, io: CliIo): Promise<void> {
  const { ref, path } = parseReferenceWithPath(source);
  // A dry run fetches no chunk: its metrics would count the TOCs alone, as if nothing were needed.
  if (flags.dryRun && flags.metricsFile !== undefined) {
    throw new StargzError(ErrorCodes.USAGE, '--metrics-file records what a sync fetched, and --dry-run fetches nothing: use one or the other');
  }
  const quiet = quietFrom(flags);
  let progress: TransferProgress | undefined;
  const notice = (m: string): void => {
    if (!progress?.notice(m)) io.notice(m);
  };
  const options = await openOptionsFrom(flags, ref, notice, io.signal);
  // A user's --memory-cache and --memory-budget (or the file's) win over sync's own defaults.
  options.memoryCacheBytes ??= COMMAND_DEFAULTS.sync.memoryCacheBytes;
  options.memoryBudgetBytes ??= COMMAND_DEFAULTS.sync.memoryBudgetBytes;
  // A sync streams gigabytes through buffers it frees at once: have them unmapped when freed
  // (glibc would keep ~100 MB of them). The CLI's process only: the library leaves malloc be.
  posixExtra()?.returnFreedMemory();
  // The inflate workers take ~50 ms of CPU each to start: for a new DEST they start alongside
  // the TOC fetch; over an existing one only once the pre-pass left something to fetch (an
  // identical re-sync inflates nothing, and on a busy machine their start-up cost it 10% of its CPU).
  const destExists = await stat(resolvePath(dest)).then(() => true, () => false);
  // A new DEST has no file to reuse: what PATH holds in the top layer is fetched while the
  // image opens (a dry run fetches no chunk).
  const headStart = destExists || flags.dryRun ? undefined : { path, maxBytes: Math.min(SYNC_HEAD_START_BYTES, options.memoryCacheBytes / 2) };
  const image = await openImage(ref, { ...options, warmInflater: !destExists, cacheFetchedChunks: flags.cache !== false, ...(headStart ? { headStart } : {}) });
  const written = { done: 0, total: 0, note: '' };
  progress = new TransferProgress({ quiet, images: [{ metrics: image.metrics, layers: image.manifest.layers.map((l) => l.digest) }], total: () => written }, io.errStream);
  try {
    const started = Date.now();
    const reuse = { check: flags.quick ? ('quick' as const) : ('checksum' as const), delete: flags.delete ?? false, localChunks: image.ctx.cache, signal: io.signal };
    if (flags.dryRun) {
      const report = await dryRunSync(image.fs, path, resolvePath(dest), reuse);
      if (flags.json) io.out(JSON.stringify({ dryRun: true, reference: formatReference(ref), path, ...report }, null, 2));
      else printDryRun(report, io, flags.delete ?? false);
      return;
    }
    progress.start();
    const summary = await syncPath(image.fs, path, resolvePath(dest), {
      reuse,
      signal: io.signal,
      warn: notice,
      beforeFetch: () => image.ctx.inflater?.warm(),
      onProgress: (p) => {
        written.done = p.bytesDone;
        written.total = p.bytesTotal;
        written.note = `files ${p.filesDone}/${p.filesTotal}`;
      },
    }).finally(() => progress?.stop());
    await writeStatsFile(image, summary, Date.now() - started);
    if (flags.metricsFile !== undefined) await writeMetricsFile(image.metrics, flags.metricsFile);
    const totals = await image.metrics.totals();
    const fetched = totals.blobBytesReceived;
    const chunksFromCache = totals.chunksFromMemory + totals.chunksFromDisk;
    const fullLayers = image.manifest.layers.reduce((n, l) => n + l.size, 0);
    const saved = fullLayers > 0 ? Math.max(0, 100 * (1 - fetched / fullLayers)) : 0;
    if (flags.json) {
      // The document replaces the prose summary (asked for, so printed even with --quiet).
      const doc: SyncJson = {
        reference: formatReference(ref),
        path,
        ...summary,
        dest: summary.dest ?? null,
        fetched: { bytes: fetched, requests: totals.requests, chunksFromCache },
        fullLayerBytes: fullLayers,
        savedPercent: Math.round(saved * 10) / 10,
        seconds: (Date.now() - started) / 1000,
      };
      io.out(JSON.stringify(doc, null, 2));
      return;
    }
    if (quiet) return;
    const secs = ((Date.now() - started) / 1000).toFixed(2);
    io.err(
      `synced ${formatReference(ref)}${path === '/' ? '' : path} -> ${summary.target}: ` +
        `${summary.files} files, ${summary.directories} dirs, ${summary.symlinks} symlinks, ${summary.hardlinks} hardlinks, ` +
        `${summary.specials} special; ${formatBytes(summary.bytesWritten)} written in ${secs}s`,
    );
    if (summary.dest) io.err(destLine(summary.dest, summary.files, flags.delete ?? false));
    io.err(
      `fetched ${formatBytes(fetched)} in ${totals.requests} requests ` +
        `(full layers: ${formatBytes(fullLayers)}, saved ${saved.toFixed(1)}%; ${chunksFromCache} chunks from cache)`,
    );
  } finally {
    await image.close();
  }
}

/** What the sync did with what DEST already had (issue 11). */
function destLine(d: ReuseCounts, files: number, deleting: boolean): string {
  const fetched = files - d.unchanged - d.reused;
  const parts = [
    `files: ${fetched} fetched (${d.fromLocalChunks} of them completed from local chunks, ${formatBytes(d.localChunkBytes)}), ` +
      `${d.reused} reused from DEST (metadata set), ${d.unchanged} unchanged (${formatBytes(d.reusedBytes)} not fetched)`,
    deleting ? `${d.deleted} extra entries deleted` : `${d.extra} extra entries kept in DEST (--delete removes them)`,
  ];
  if (d.staleTemps > 0) parts.push(`${d.staleTemps} temporaries of an interrupted sync removed`);
  return parts.join('; ');
}

function printDryRun(r: DryRunReport, io: CliIo, deleting: boolean): void {
  const count = { fetch: 0, update: 0, create: 0, delete: 0, extra: 0 };
  let bytes = 0;
  for (const item of r.items) {
    count[item.action]++;
    bytes += item.bytes ?? 0;
    const size = item.bytes === undefined ? '' : ` (${formatBytes(item.bytes)})`;
    io.out(`${item.action.padEnd(6)} ${escapeControl(item.path === '' ? '.' : item.path)}${size}`);
  }
  io.err(
    `dry run, nothing changed: ${r.target} would get ${count.fetch} files fetched (${formatBytes(bytes)}, ` +
      `chunks of ${formatBytes(r.chunkBytes)} compressed before the cache), ${count.update} metadata updates, ` +
      `${count.create} entries created, ${r.unchanged} files unchanged, ${count.delete} removed` +
      (deleting ? '' : `, ${count.extra} extra entries kept`),
  );
}
