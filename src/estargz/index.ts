// Pure eStargz format module: bytes in, structures out (no network, file system or cache).
export * from './footer.js';
export * from './toc.js';
export * from './layer-index.js';
// The file index a TOC becomes lives in src/file-index; re-exported here for callers that
// import it with the format (the read path), until they import it from there.
export * from '../file-index/index.js';
export * from './inflate.js';
export { normalizeEntryName, parentEntryName, baseName, MAX_NAME_BYTES, MAX_PATH_DEPTH } from '../file-index/names.js';
export { TOC_TAR_NAME } from './toc-tar.js';
