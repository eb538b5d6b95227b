// The gzip TOC member holds a tiny tar whose first file is stargz.index.json. We read just that
// first file, through the tar reader's own header and PAX decoding (tar/): PAX or GNU long
// names and PAX sizes honoured.
import { ErrorCodes, StargzError } from '../errors.js';
import { BLOCK, cString, isZeroBlock, parseHeader } from '../tar/header.js';
import { paxInteger, parsePax } from '../tar/pax.js';

export const TOC_TAR_NAME = 'stargz.index.json';
/** PAX / GNU long-name records are small; refuse anything bigger. */
const MAX_META_SIZE = 1024 * 1024;

function invalid(message: string): StargzError {
  return new StargzError(ErrorCodes.TOC_INVALID, message);
}

/** Returns the contents of the first file of `tar`, which must be stargz.index.json. */
export function firstTarFile(tar: Buffer, maxBytes: number): Buffer {
  try {
    return findFirstFile(tar, maxBytes);
  } catch (err) {
    // A tar the decoding calls corrupt is, here, a bad TOC.
    if (err instanceof StargzError && err.code === ErrorCodes.CORRUPT_DATA) throw invalid(`TOC ${err.message}`);
    throw err;
  }
}

function findFirstFile(tar: Buffer, maxBytes: number): Buffer {
  let pos = 0;
  let longName: string | undefined;
  let paxPath: string | undefined;
  let paxSize: number | undefined;
  for (;;) {
    if (pos + BLOCK > tar.length) throw invalid('TOC tar ends before its first file');
    const block = tar.subarray(pos, pos + BLOCK);
    if (isZeroBlock(block)) throw invalid('TOC tar has no file');
    const h = parseHeader(block);
    const type = h.typeflag;
    const isMeta = type === 'x' || type === 'g' || type === 'L' || type === 'K';
    const size = isMeta || paxSize === undefined ? h.size : paxSize;
    const dataStart = pos + BLOCK;
    if (size < 0 || dataStart + size > tar.length) throw invalid('TOC tar is truncated');
    pos = dataStart + Math.ceil(size / BLOCK) * BLOCK;
    if (isMeta) {
      if (size > MAX_META_SIZE) throw invalid('TOC tar metadata record is too large');
      const data = tar.subarray(dataStart, dataStart + size);
      if (type === 'x') {
        const recs = parsePax(data);
        const path = recs.get('path');
        if (path !== undefined) paxPath = path.toString('utf8');
        const s = recs.get('size');
        if (s !== undefined) paxSize = paxInteger(s, 'size');
      } else if (type === 'L') {
        longName = cString(data);
      }
      continue;
    }
    const name = paxPath ?? longName ?? h.name;
    const clean = name.split('/').filter((p) => p !== '' && p !== '.').join('/');
    if (clean !== TOC_TAR_NAME) throw invalid(`TOC tar entry is named ${JSON.stringify(name)}, not ${TOC_TAR_NAME}`);
    if (type !== '0' && type !== '\0' && type !== '7') throw invalid('TOC tar entry is not a regular file');
    if (size > maxBytes) throw invalid(`TOC JSON is ${size} bytes, more than the ${maxBytes} allowed`);
    return tar.subarray(dataStart, dataStart + size);
  }
}
