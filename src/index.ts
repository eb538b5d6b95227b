// The library: what package.json's `main` names. Opening an image gives the merged VFS that
// the CLI's `sync`, `ls` and `mount` use; errors carry the stable codes the CLI maps to exits.
export { openImage, type OpenImageOptions, type OpenedImage } from './image/open-image.js';
export { syncPath, type SyncOptions, type SyncProgress, type SyncSummary } from './sync/sync.js';
export { parseReference, parseReferenceWithPath, formatReference, type ImageReference } from './reference/reference.js';
export { DEFAULT_OPTIONS, resolveOptions, type Options } from './config.js';
export { ErrorCodes, StargzError, isStargzError, type ErrorCode } from './errors.js';
export type { MergedFs } from './vfs/merged-fs.js';
export type { RegistryClientOptions } from './registry/client.js';
