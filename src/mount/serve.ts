// Serving an opened image at a mountpoint: mount through a FUSE backend, start the background
// prefetch, notice when someone else unmounts us, and tear everything down once.
// Nothing here touches the mount's files: a FUSE server that does deadlocks itself.
import { ErrorCodes, StargzError, redact } from '../errors.js';
import type { MergedFs } from '../vfs/merged-fs.js';
import { runPrefetch, type PrefetchMode, type PrefetchResult } from '../prefetch/prefetch.js';
import { DEFAULT_READ_DEADLINE_MS } from '../fuse/reader.js';
import { chooseBackend, mountFuse, type FuseMountOptions, type MountedFuse } from '../fuse/backend.js';
import { isFuse, mountAt } from './mountinfo.js';
import { unmountPath } from './unmount.js';
import type { ReadAheadOptions } from '../fuse/read-ahead.js';
import type { WalkAheadOptions } from '../fuse/walk-ahead.js';
import type { FetchMetrics } from '../metrics/fetch-metrics.js';
import { formatAddr, METRICS_PATH, serveMetrics, type MetricsAddress } from '../metrics/export.js';

export interface ServeOptions {
  /** Absolute path of an existing empty directory (see prepareMountpoint). */
  mountpoint: string;
  /** Shown as the mount's source in /proc/mounts and `df`: the image reference. */
  fsName: string;
  allowOther?: boolean;
  prefetch?: PrefetchMode;
  /** A read that cannot complete by then answers EIO. */
  readDeadlineMs?: number;
  readAhead?: ReadAheadOptions | false;
  /** Read-ahead across the files of a directory walk; false turns it off. */
  walkAhead?: WalkAheadOptions | false;
  /** libfuse3 backend: list directories into its table ahead of the kernel's requests; false: only when asked. */
  listAhead?: boolean;
  /** Ask fusermount to unmount if this process dies (falls back to plain mounting). */
  autoUnmount?: boolean;
  /** libfuse debug output on stderr. */
  debug?: boolean;
  /** Serve these metrics over HTTP at addr's /metrics for as long as the mount lives. */
  metrics?: { of: FetchMetrics; addr: MetricsAddress };
  log: (line: string) => void;
}

export interface ServingMount {
  readonly mountpoint: string;
  /** Settles when the mount is gone: 'stopped' after stop(), 'unmounted' when unmounted from outside. */
  readonly ended: Promise<'stopped' | 'unmounted'>;
  /** The background prefetch's outcome (mode 'none' resolves at once). */
  readonly prefetched: Promise<PrefetchResult>;
  /** Which FUSE binding serves it, and its request counts (libfuse3 only). */
  readonly backend: MountedFuse['backend'];
  stats: MountedFuse['stats'];
  /** Stops prefetch and unmounts (lazily: open files do not keep us alive). Idempotent. */
  stop(): Promise<void>;
}

/** Kernel caches of names and attributes: the image never changes while mounted. */
const CACHE_SECONDS = 3600;
const UNMOUNT_POLL_MS = 500;
/** Set: the unmount logs how many requests of each kind the kernel sent (diagnostics, benchmarks). */
const STATS_ENV = 'STARGZ_GET_FUSE_STATS';

export async function serveImage(image: { fs: MergedFs }, options: ServeOptions): Promise<ServingMount> {
  const { fs } = image;
  const log = options.log;
  const fuseOptions: FuseMountOptions = {
    mountpoint: options.mountpoint,
    fsName: options.fsName.replace(/[,\s\\]/g, '_').slice(0, 200),
    allowOther: options.allowOther ?? false,
    autoUnmount: options.autoUnmount ?? true,
    debug: options.debug ?? false,
    cacheSeconds: CACHE_SECONDS,
    ...(options.listAhead !== undefined ? { listAhead: options.listAhead } : {}),
    readDeadlineMs: options.readDeadlineMs ?? DEFAULT_READ_DEADLINE_MS,
    readAhead: options.readAhead,
    walkAhead: options.walkAhead,
    log,
    unmountPath: (mnt) => unmountPath(mnt, { lazy: true }),
  };
  const backend = chooseBackend(log);
  // Bound before mounting: an address in use fails the mount rather than leaving it unobserved.
  const metricsServer = options.metrics ? await serveMetrics(options.metrics.of, options.metrics.addr) : undefined;
  let fuse: MountedFuse;
  try {
    fuse = await mountFuse(fs, backend, fuseOptions);
  } catch (err) {
    if (!fuseOptions.autoUnmount) {
      await metricsServer?.close();
      throw mountError(options.mountpoint, err);
    }
    // auto_unmount needs a fusermount that supports it; mount without rather than not at all.
    log(`mounting with auto_unmount failed (${(err as Error).message}); mounting without it`);
    try {
      fuse = await mountFuse(fs, backend, { ...fuseOptions, autoUnmount: false });
    } catch (err2) {
      await metricsServer?.close();
      throw mountError(options.mountpoint, err2);
    }
  }
  if (metricsServer) log(`metrics at http://${formatAddr(metricsServer.address)}${METRICS_PATH}`);

  const prefetchAbort = new AbortController();
  const prefetched = runPrefetch(fs, options.prefetch ?? 'none', { signal: prefetchAbort.signal, log });

  let resolveEnded!: (how: 'stopped' | 'unmounted') => void;
  const ended = new Promise<'stopped' | 'unmounted'>((r) => (resolveEnded = r));
  let stopping: Promise<void> | undefined;

  const stop = (how: 'stopped' | 'unmounted' = 'stopped'): Promise<void> => {
    stopping ??= (async () => {
      clearInterval(watch);
      if (process.env[STATS_ENV]) log(`FUSE requests (${fuse.backend}): ${JSON.stringify(fuse.stats() ?? 'not counted')}`);
      prefetchAbort.abort(new StargzError(ErrorCodes.ABORTED, 'unmounting'));
      try {
        await fuse.unmount();
      } catch (err) {
        log(`unmount of ${options.mountpoint} failed: ${redact((err as Error).message)}`);
      }
      await prefetched.catch(() => undefined);
      await metricsServer?.close();
      resolveEnded(how);
    })();
    return stopping;
  };

  // Someone ran `umount`/`fusermount -u` on us: wind down as if told to stop. libfuse 3
  // tells at once; fuse-native cannot, so mountinfo is polled for both.
  void fuse.ended?.then(() => void stop('unmounted'));
  let polling = false;
  const watch = setInterval(() => {
    if (polling) return;
    polling = true;
    mountAt(options.mountpoint)
      .then((m) => {
        if (!m || !isFuse(m)) void stop('unmounted');
      })
      .catch(() => undefined)
      .finally(() => (polling = false));
  }, UNMOUNT_POLL_MS);

  return { mountpoint: options.mountpoint, ended, prefetched, backend: fuse.backend, stats: () => fuse.stats(), stop: () => stop('stopped') };
}

function mountError(mountpoint: string, err: unknown): StargzError {
  return new StargzError(ErrorCodes.FUSE, `cannot mount at ${mountpoint}: ${(err as Error).message}`, { cause: err });
}
