// Every tunable of stargz-get in one typed object, with its default stated once here.
// The CLI fills it from flags; library users pass a Partial and get the rest filled in.
import { ErrorCodes, StargzError } from './errors.js';

export interface Options {
  /** Parallel range requests to one registry (all layers share them). */
  concurrency: number;
  /** On-disk cache directory ($XDG_CACHE_HOME/stargz-get when unset). */
  cacheDir?: string;
  /** Upper bound of the on-disk chunk cache, bytes. */
  cacheMaxBytes: number;
  /** Upper bound of inflated chunks kept in memory, bytes. */
  memoryCacheBytes: number;
  /**
   * Upper bound of chunk data in flight, bytes: fetched compressed ranges plus the chunks
   * inflated from them, until they are delivered and written to the cache (a range waits until
   * its bytes fit), and of the inflated TOC. Chunk data in memory stays below
   * memoryCacheBytes + memoryBudgetBytes; one chunk larger than the budget runs alone.
   */
  memoryBudgetBytes: number;
  /** Use only the cache: the last tag resolution and cached TOCs/chunks. */
  offline: boolean;
  /** 'os/arch[/variant]'; default this host's linux/arch. */
  platform?: string;
  /** Merge chunk extents separated by at most this many bytes into one request. */
  maxGapBytes: number;
  /** Upper bound of one merged range request, bytes. */
  maxRangeBytes: number;
  /**
   * Deadline for connecting and receiving a response's headers, and for the whole of a small
   * document (manifest, token response, error body), milliseconds.
   */
  requestTimeoutMs: number;
  /**
   * Blob bodies (chunks, TOCs, plain layers) must arrive at least this fast, bytes/s, measured
   * over `rateWindowMs`: a trickling server fails, a slow but working link does not.
   */
  minTransferRate: number;
  /** The sliding window of `minTransferRate`, milliseconds. */
  rateWindowMs: number;
  /** Read layers without the TOC-digest annotation lazily, trusting their TOC unverified (src/layer/trust.ts). */
  insecureSkipTocVerify: boolean;
}

export const DEFAULT_OPTIONS: Options = {
  concurrency: 8,
  cacheMaxBytes: 10 * 1024 ** 3,
  memoryCacheBytes: 256 * 1024 ** 2,
  // Keeps 16 default 4 MiB ranges and their chunks in flight, and the largest TOC we accept.
  memoryBudgetBytes: 256 * 1024 ** 2,
  offline: false,
  maxGapBytes: 64 * 1024,
  maxRangeBytes: 4 * 1024 ** 2,
  // A manifest or token is a few KiB: 30 s is plenty even on a bad link, and bounds a trickle.
  requestTimeoutMs: 30_000,
  // 10 KiB/s sustained for 30 s: a 1 GB plain layer over a slow link passes (at 100 KiB/s it
  // takes 3 h, and it should be allowed to), one byte every few seconds does not.
  minTransferRate: 10 * 1024,
  rateWindowMs: 30_000,
  insecureSkipTocVerify: false,
};

/**
 * A chunk whose inflated size is above 1/STREAMED_CHUNK_SHARE of the smaller of
 * memoryCacheBytes and memoryBudgetBytes is never held in memory whole: it is streamed from
 * the registry through the inflater into the disk cache, hashed as it goes, and read back by
 * position (src/layer/huge-chunk.ts). Without a disk cache that can take it (none, read-only,
 * or smaller than the chunk), a chunk within the budget is held whole, and one larger than
 * the budget is refused (ERR_CACHE, naming both sizes). A quarter: the budget already lets one merged range
 * inflate to a quarter of it (several in flight at once), and a chunk above a quarter of the
 * memory cache would evict a quarter of it on every read. Derived, not an option: the two
 * memory bounds are what the user sets. With the defaults: chunks above 64 MiB.
 */
export const STREAMED_CHUNK_SHARE = 4;

/**
 * Compressed bytes requested from a registry and not yet inflated, at most (a range larger
 * than this runs alone). Fetching faster than the inflate workers keep up only fills memory,
 * and a process killed by SIGKILL loses exactly those bytes: a sync run again fetches them
 * again (issue 11: a sync killed 8 s in had received 121 MB and cached 77 MB, the rest waiting
 * for a CPU-starved inflater). Three default ranges: far above the benchmark link's
 * bandwidth-delay product (25 MB/s x 40 ms = 1 MB), so the link stays busy.
 */
export const INFLATE_BACKLOG_BYTES = 12 * 1024 ** 2;

/** Bytes of a streamed chunk fetched, or read back from its file, per step: the stream's fixed overhead. */
export const STREAM_PIECE_BYTES = 4 * 1024 ** 2;

/**
 * Per-command overrides of DEFAULT_OPTIONS: where a command's use calls for another default.
 * Precedence: flags > configuration file > these > DEFAULT_OPTIONS.
 */
export const COMMAND_DEFAULTS = {
  mount: {
    // A mount fetches ahead of readers walking many files: more connections keep a long link busy.
    concurrency: 16,
    // Per request while mounted: with the client's bounded retries, a read gives up in time.
    requestTimeoutMs: 10_000,
  },
  sync: {
    // sync reads each chunk once and writes it to its file and the disk cache: holding chunks in
    // memory too would only grow the process. Not below 16 MiB: a chunk above a quarter of it is
    // streamed through the disk cache (STREAMED_CHUNK_SHARE), and images' chunks are 4 MiB.
    memoryCacheBytes: 16 * 1024 ** 2,
    // Chunk data in flight for a whole-image sync: ranges of up to 8 MiB inflated (a quarter of
    // it), four at once, keep both inflate workers and the disk busy; more only queues in memory
    // behind the slower of the two (issue 13: 256 MiB peaked at 600 MB RSS, no faster).
    memoryBudgetBytes: 32 * 1024 ** 2,
  },
  cat: {
    // cat streams each chunk once, as sync does.
    memoryCacheBytes: 16 * 1024 ** 2,
  },
  export: {
    // export --rootfs streams each chunk once into the tar, as cat does.
    memoryCacheBytes: 16 * 1024 ** 2,
  },
} as const satisfies Record<string, Partial<Options>>;

/**
 * sync into a new DEST: inflated bytes of PATH's chunks in the top layer fetched as soon as its
 * TOC is in, before the layers are merged (image/head-start.ts). At most half the memory cache,
 * so that they are still there when the walk asks for them, with --no-cache too.
 */
export const SYNC_HEAD_START_BYTES = 8 * 1024 ** 2;

/** export --rootfs (export/rootfs.ts). */
export const EXPORT_DEFAULTS = {
  // The next files' chunks queued ahead of the tar writer: small files share range requests
  // instead of waiting a round trip each; below the export memory cache, so they stay in memory.
  rootfsAheadBytes: 8 * 1024 ** 2,
} as const;

/** How a mount fetches ahead of its readers (fuse/read-ahead.ts, fuse/walk-ahead.ts, prefetch/). */
export const MOUNT_AHEAD_DEFAULTS = {
  // Sized for a long fat link: a 40 ms round trip at 25 MB/s needs 1 MB in flight, and image
  // chunks are often 4 MiB, so the window holds the next chunks from the start.
  readAhead: { initialWindow: 8 * 1024 ** 2, maxWindow: 32 * 1024 ** 2, slack: 512 * 1024, eagerLength: 128 * 1024 },
  walkAhead: { initialWindow: 8 * 1024 ** 2, maxWindow: 64 * 1024 ** 2, maxSkip: 4, maxStreams: 4 },
  prefetch: { batchBytes: 4 * 1024 ** 2, maxConsecutiveFailures: 3 },
  /** A FUSE read that has not got its bytes by then answers EIO (a hung read blocks its reader). */
  readDeadlineMs: 20_000,
} as const;

/** How `copy` moves blobs from one registry to another (src/copy/, src/registry/push.ts). */
export const COPY_DEFAULTS = {
  /**
   * Bytes of one upload PATCH. A blob's GET body is streamed into PATCHes of this size, none
   * held in memory (a copy's memory does not grow with it); after a broken PATCH the source is
   * read again from what the target acknowledged, at most one chunk back. Each PATCH costs a
   * round trip and the registry's work of resuming the session (distribution reloads its hash
   * state): 32 MiB keeps that under a few percent of the transfer on a fast link.
   */
  chunkBytes: 32 * 1024 ** 2,
  /** Blobs copied at once (skopeo copies up to 6 layers in parallel). */
  parallelBlobs: 3,
  /**
   * Times a blob starts over from byte 0 after its upload session was lost (the target
   * forgot it, or can no longer say how much it has); resuming within a session is the
   * client's retries.
   */
  uploadRestarts: 2,
} as const;

/** Which FUSE binding serves a mount (fuse/backend.ts); STARGZ_GET_FUSE_BACKEND=NAME overrides it. */
export type FuseBackendName = 'libfuse3' | 'fuse-native';
export const FUSE_DEFAULTS: { backend: FuseBackendName } = {
  backend: 'libfuse3',
};

/** The registry client's settings that are not Options (the CLI's --retries sets `retries`). */
export const CLIENT_DEFAULTS = {
  /** Retries of a failed request after the first attempt. */
  retries: 5,
  /** Delay before the first retry; doubles each time (registry/retry.ts). */
  retryBaseDelayMs: 200,
  requestTimeoutMs: DEFAULT_OPTIONS.requestTimeoutMs,
  minTransferRate: DEFAULT_OPTIONS.minTransferRate,
  rateWindowMs: DEFAULT_OPTIONS.rateWindowMs,
  /** At least `concurrency`: open-image.ts raises it to that. */
  maxConnectionsPerHost: 16,
  userAgent: 'stargz-get/0.1.0',
} as const;

/**
 * What the CLI prints on stderr besides errors (util/log.ts): 'warn' is the notices alone; -v
 * raises it to 'info' (every registry request and retry), -vv to 'debug' (every chunk lookup).
 */
export const LOG_DEFAULTS = { level: 'warn' } as const;

/** The transfer display on a terminal (cli/progress.ts). */
export const PROGRESS_DEFAULTS = {
  /** Redraws per second at most: smooth enough to read, cheap enough over ssh. */
  redrawsPerSecond: 10,
  /** Rates (and so ETAs) are measured over this sliding window. */
  rateWindowMs: 3000,
} as const;

/** Bounds of registry/retry.ts's backoff. */
export const RETRY_DEFAULTS = {
  /** Cap of one backoff delay. */
  maxDelayMs: 10_000,
  /** Cap of a server's Retry-After; a longer one fails at once. */
  maxRetryAfterMs: 60_000,
  /** No retry starts after this much time since the first attempt. */
  maxTotalMs: 120_000,
} as const;

/** Fills defaults and rejects contradictory or unbounded values when options are built. */
export function resolveOptions(partial: Partial<Options> = {}): Options {
  const o: Options = { ...DEFAULT_OPTIONS };
  for (const [k, v] of Object.entries(partial)) if (v !== undefined) (o as unknown as Record<string, unknown>)[k] = v;
  const positiveInt = (name: keyof Options, max: number): void => {
    const v = o[name];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > max) {
      throw new StargzError(ErrorCodes.USAGE, `${name} must be an integer between 1 and ${max}, got ${String(v)}`);
    }
  };
  positiveInt('concurrency', 256);
  positiveInt('cacheMaxBytes', Number.MAX_SAFE_INTEGER);
  positiveInt('memoryCacheBytes', 64 * 1024 ** 3);
  positiveInt('memoryBudgetBytes', 64 * 1024 ** 3);
  positiveInt('maxRangeBytes', 1024 ** 3);
  positiveInt('requestTimeoutMs', 3_600_000);
  positiveInt('minTransferRate', 1024 ** 3);
  positiveInt('rateWindowMs', 3_600_000);
  if (o.rateWindowMs < 100) throw new StargzError(ErrorCodes.USAGE, 'rateWindowMs must be at least 100 ms');
  if (!Number.isInteger(o.maxGapBytes) || o.maxGapBytes < 0) throw new StargzError(ErrorCodes.USAGE, 'maxGapBytes must be >= 0');
  if (o.memoryCacheBytes < 4 * 1024 * 1024) {
    throw new StargzError(ErrorCodes.USAGE, 'the memory cache must hold at least 4 MiB (one chunk)');
  }
  // Below a few ranges the link idles while one is inflated; a range larger than it runs alone.
  if (o.memoryBudgetBytes < 8 * 1024 * 1024) throw new StargzError(ErrorCodes.USAGE, 'the memory budget must be at least 8 MiB');
  return o;
}

/** Parses durations like 30s, 500ms, 2m, or plain seconds (30). Returns milliseconds. */
export function parseDuration(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/i.exec(text);
  if (!m) throw new StargzError(ErrorCodes.USAGE, `not a duration: ${JSON.stringify(text)} (examples: 30s, 500ms, 2m)`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 's').toLowerCase() as 'ms' | 's' | 'm' | 'h'];
  return Math.round(parseFloat(m[1]!) * unit);
}

/** Parses sizes like 512M, 2G, 10GiB, 1048576. */
export function parseSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?\s*$/i.exec(text);
  if (!m) throw new StargzError(ErrorCodes.USAGE, `not a size: ${JSON.stringify(text)} (examples: 512M, 2G)`);
  const unit = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g' | 't'];
  return Math.floor(parseFloat(m[1]!) * unit);
}
