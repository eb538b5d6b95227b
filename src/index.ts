// The library: what package.json's `main` names. `openImage(ref, options)` gives an Image that
// answers paths with plain objects (README, Library); errors carry the stable codes the CLI
// maps to exit statuses.
export {
  openImage,
  type Image,
  type ImageOptions,
  type ImageInfo,
  type LayerInfo,
  type Stat,
  type DirEntry,
  type FileType,
} from './api/image.js';
export { READ_WINDOW_BYTES, type ReadStreamOptions } from './api/read-stream.js';
export type { SyncOptions, SyncProgress, SyncSummary } from './sync/sync.js';
export type { Change, ChangeField, DiffOptions } from './diff/diff.js';
export type { ReuseOptions, ReuseCounts } from './sync/reuse.js';
export type { FetchMetrics, FetchTotals, LayerCounts } from './metrics/fetch-metrics.js';
export { parseReference, parseReferenceWithPath, formatReference, type ImageReference } from './reference/reference.js';
export { DEFAULT_OPTIONS, resolveOptions, type Options } from './config.js';
export { ErrorCodes, StargzError, isStargzError, type ErrorCode } from './errors.js';
export { defaultKeychain, staticKeychain, type Keychain, type KeychainOptions, type RegistryCredential } from './registry/keychain.js';
export type { RegistryClientOptions } from './registry/client.js';
export { createLogger, LOG_LEVELS, type Logger, type LogLevel, type LogMessage } from './util/log.js';
