// `stargz-get mount` and `stargz-get umount`.
// mount serves in the foreground until SIGINT/SIGTERM or an unmount; with -d it serves from a
// detached child of itself (mount/daemon.ts) and returns once the mount is ready.
// The -d parent only starts the child and waits: it must not load what serving needs (the
// registry client, SQLite, fuse-native, the layers), so those are imported where they are used.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { COMMAND_DEFAULTS } from '../../config.js';
import { ErrorCodes, StargzError } from '../../errors.js';
import { formatReference, parseReference } from '../../reference/reference.js';
import type { OpenedImage } from '../../image/open-image.js';
import { defaultCacheDir } from '../../cache/defaults.js';
import { parsePrefetchMode } from '../../prefetch/modes.js';
import type { PrefetchResult } from '../../prefetch/prefetch.js';
import { defaultDaemonLog, isDaemonChild, logLine, runAsDaemon, startDaemon } from '../../mount/daemon.js';
import { removeMountRecord, writeMountRecord } from '../../mount/mount-records.js';
import { prepareMountpoint } from '../../mount/mountpoint.js';
import { stopMount } from '../../mount/stop.js';
import { loggerFrom, openOptionsFrom, type CommonFlags } from '../common.js';
import { resolveCredentials } from '../credentials.js';
import { formatBytes } from '../format.js';
import { formatAddr, METRICS_PATH, parseMetricsAddr } from '../../metrics/export.js';
import type { CliIo } from '../io.js';

export interface MountFlags extends CommonFlags {
  detach?: boolean;
  allowOther?: boolean;
  prefetch?: string;
  logFile?: string;
  /** Once the mount is ready, one JSON document (MountJson) on stdout instead of the prose. */
  json?: boolean;
  /** HOST:PORT to serve Prometheus metrics at /metrics. */
  metricsAddr?: string;
}

/** What `mount --json` prints once the mount answers (README, "mount"). */
export interface MountJson {
  reference: string;
  mountpoint: string;
  /** The process serving the mount: the background one with -d, else this one. */
  pid: number;
  detached: boolean;
  /** A detached mount's log; null in the foreground (its notices go to stderr). */
  logFile: string | null;
}

export async function mountCommand(ref: string, mountpoint: string, flags: MountFlags, io: CliIo): Promise<void> {
  const abs = resolve(mountpoint);
  try {
    if (isDaemonChild()) {
      const stamped: CliIo = { ...io, notice: (line) => io.err(logLine(line)) };
      await runAsDaemon<MountFlags>((start, ready) => runMount(ref, abs, start, stamped, ready));
    } else {
      parsePrefetchMode(flags.prefetch); // a bad mode fails here, not in a background process
      if (flags.metricsAddr !== undefined) parseMetricsAddr(flags.metricsAddr); // so does a bad address
      if (flags.detach) await detach(ref, abs, flags, io);
      else await runMount(ref, abs, flags, io, () => undefined);
    }
  } finally {
    exitSafetyNet();
  }
}

/** Mounts, serves until told to stop or unmounted from outside, and cleans up. */
async function runMount(ref: string, abs: string, flags: MountFlags, io: CliIo, onReady: () => void): Promise<void> {
  // Loading starts at once, to overlap the mountpoint check and the credential lookup.
  const modules = Promise.all([import('../../image/open-image.js'), import('../../mount/serve.js')]);
  modules.catch(() => undefined); // awaited below; a failure before then is not also unhandled
  const mode = parsePrefetchMode(flags.prefetch);
  const imageRef = parseReference(ref);
  // The mount's own notices (a dead mount cleaned up, unmounted, the fetch summary) are warnings too.
  const log = loggerFrom(flags, io.notice);
  const notice = (m: string): void => log.warn(m);
  await prepareMountpoint(abs, notice);
  const opts = await openOptionsFrom(flags, imageRef, io.notice, io.signal);
  opts.requestTimeoutMs ??= COMMAND_DEFAULTS.mount.requestTimeoutMs;
  opts.concurrency ??= COMMAND_DEFAULTS.mount.concurrency;
  const [{ openImage }, { serveImage }] = await modules;
  const image = await openImage(imageRef, opts);
  let record: string | undefined;
  try {
    if (io.signal.aborted) throw new StargzError(ErrorCodes.ABORTED, 'interrupted before the mount was ready');
    const serving = await serveImage(image, {
      mountpoint: abs,
      fsName: formatReference(imageRef),
      allowOther: flags.allowOther ?? false,
      prefetch: mode,
      debug: Boolean(process.env.STARGZ_GET_FUSE_DEBUG),
      ...(flags.metricsAddr !== undefined ? { metrics: { of: image.metrics, addr: parseMetricsAddr(flags.metricsAddr) } } : {}),
      log: notice,
    });
    try {
      record = writeMountRecord(image.disk.dir, {
        pid: process.pid,
        ref: formatReference(imageRef),
        mountpoint: abs,
        ...(flags.logFile ? { logFile: flags.logFile } : {}),
        startedAt: new Date().toISOString(),
      });
    } catch (err) {
      notice(`cannot write the mount record: ${(err as Error).message}`);
    }
    announce(io, flags, { reference: formatReference(imageRef), mountpoint: abs, pid: process.pid, detached: false, logFile: null });
    onReady();
    image.storeIndexes(); // for the next mount: not before this one answers
    // The inflate workers take a while to start: not before the mount is ready, but before the first read.
    image.ctx.inflater?.warm();
    if (mode !== 'none') void serving.prefetched.then((r) => notice(prefetchSummary(r)));
    const how = await Promise.race([serving.ended, whenAborted(io.signal)]);
    await serving.stop();
    notice(how === 'unmounted' ? `${abs} was unmounted` : `unmounted ${abs}`);
    notice(await fetchSummary(image));
  } finally {
    if (record) removeMountRecord(record);
    await image.close();
  }
}

async function fetchSummary(image: OpenedImage): Promise<string> {
  const t = await image.metrics.totals();
  return `fetched ${formatBytes(t.blobBytesReceived)} in ${t.requests} requests (${t.blobRequests} blob requests, ${t.chunksFromNetwork} chunks; ${t.chunksFromMemory + t.chunksFromDisk} chunks from cache)`;
}

function prefetchSummary(r: PrefetchResult): string {
  const what = `prefetch (${r.mode}): ${r.chunks} chunks, ${formatBytes(r.bytes)} in ${(r.ms / 1000).toFixed(1)}s`;
  return r.stopped ? `${what}, stopped early` : r.failedBatches > 0 ? `${what}, ${r.failedBatches} batches failed` : what;
}

function whenAborted(signal: AbortSignal): Promise<'signal'> {
  return new Promise((resolveAbort) => {
    if (signal.aborted) return resolveAbort('signal');
    signal.addEventListener('abort', () => resolveAbort('signal'), { once: true });
  });
}

// ---- -d/--detach: the parent side (the child is mountCommand again, see isDaemonChild) ----

function cliEntry(): string {
  const bin = fileURLToPath(new URL('../../../../bin/stargz-get', import.meta.url));
  return existsSync(bin) ? bin : process.argv[1]!;
}

async function detach(ref: string, abs: string, flags: MountFlags, io: CliIo): Promise<void> {
  const cacheDir = resolve(flags.cacheDir ?? defaultCacheDir());
  const logFile = resolve(flags.logFile ?? defaultDaemonLog(cacheDir, abs));
  // The child's stdout is its log: the document is the parent's to print.
  let start: MountFlags = { ...flags, detach: false, json: false, cacheDir, logFile };
  if (flags.passwordStdin) {
    // The child has no stdin: read the password here and hand it over the IPC channel.
    const creds = await resolveCredentials(flags, parseReference(ref).registry);
    start = { ...start, passwordStdin: false, username: creds?.username, password: creds?.password };
  }
  const pid = await startDaemon({ entry: cliEntry(), args: ['mount', ref, abs], logFile, start, signal: io.signal });
  announce(io, flags, { reference: formatReference(parseReference(ref)), mountpoint: abs, pid, detached: true, logFile });
  if (!flags.quiet && !flags.json) io.err(`serving from process ${pid}, log in ${logFile}; stop with: stargz-get umount ${abs}`);
  if (!flags.quiet && !flags.json && flags.metricsAddr !== undefined) io.err(`metrics at http://${formatAddr(parseMetricsAddr(flags.metricsAddr))}${METRICS_PATH}`);
}

/** The one line (or document) that says the mount is ready. */
function announce(io: CliIo, flags: MountFlags, m: MountJson): void {
  io.out(flags.json ? JSON.stringify(m, null, 2) : `mounted ${m.reference} at ${m.mountpoint}`);
}

/**
 * The mount is gone and everything is closed; if a library handle still holds the event
 * loop (fuse-native's thread bookkeeping), do not linger as a zombie server.
 */
function exitSafetyNet(): void {
  setTimeout(() => process.exit(process.exitCode ?? 0), 3000).unref();
}

// ---- umount ----

export async function umountCommand(mountpoint: string, io: CliIo): Promise<void> {
  await stopMount(resolve(mountpoint), defaultCacheDir(), (line) => io.notice(line));
}
