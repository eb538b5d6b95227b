// Pure eStargz format module: bytes in, structures out (no network, file system or cache).
export * from './footer.js';
export * from './toc.js';
export * from './layer-index.js';
export * from './inflate.js';
export { normalizeEntryName, parentEntryName, baseName, MAX_NAME_BYTES, MAX_PATH_DEPTH } from './names.js';
export { TOC_TAR_NAME } from './toc-tar.js';
