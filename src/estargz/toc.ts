// The TOC ("stargz.index.json"): inflating it out of its region, and parsing the JSON into
// checked structures. Everything here assumes hostile input: wrong types, negative or
// imprecise numbers, giant counts all end as TOC_INVALID, never as a crash.
import { ErrorCodes, StargzError } from '../errors.js';
import { sha256Digest } from '../util/digest.js';
import { NO_XATTRS } from '../file-index/model.js';
import type { Compression } from './footer.js';
import { inflateGzipMemberSync } from './gzip-member.js';
import { MAX_NAME_BYTES } from '../file-index/names.js';
import { firstTarFile } from './toc-tar.js';
import { decodeZstdFrame, readZstdFrame } from './zstd-frame.js';

export type EntryType = 'dir' | 'reg' | 'chunk' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo';

export interface TocEntry {
  name: string;
  type: EntryType;
  size: number;
  modtime?: string;
  linkName: string;
  mode: number;
  uid: number;
  gid: number;
  userName?: string;
  groupName?: string;
  devMajor: number;
  devMinor: number;
  xattrs: Record<string, Buffer>;
  digest?: string;
  offset: number;
  innerOffset: number;
  chunkOffset: number;
  chunkSize: number;
  chunkDigest?: string;
}

export interface Toc {
  version: number;
  entries: TocEntry[];
}

export const DEFAULT_MAX_TOC_BYTES = 256 * 1024 * 1024;
export const MAX_TOC_ENTRIES = 10_000_000;
export const MAX_XATTRS_PER_ENTRY = 1024;
export const MAX_XATTR_NAME_BYTES = 255;
export const MAX_XATTR_VALUE_BYTES = 64 * 1024;
/** Tar headers, padding and end blocks around the JSON in the gzip TOC member. */
const TAR_OVERHEAD = 1024 * 1024;

const ENTRY_TYPES: ReadonlySet<string> = new Set(['dir', 'reg', 'chunk', 'symlink', 'hardlink', 'char', 'block', 'fifo']);
const DIGEST_RE = /^(sha256:[a-f0-9]{64}|sha384:[a-f0-9]{96}|sha512:[a-f0-9]{128})$/;
const BASE64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function invalid(message: string, cause?: unknown): StargzError {
  return new StargzError(ErrorCodes.TOC_INVALID, message, cause === undefined ? {} : { cause });
}

/**
 * The largest compressed TOC region whose JSON can be at most `maxJsonBytes`: the JSON, its tar
 * framing, and the worst expansion of deflate (stored blocks) or zstd (raw blocks), both well
 * under 1/128. A footer pointing further back is refused before anything is fetched.
 */
export function maxTocRegionBytes(maxJsonBytes: number = DEFAULT_MAX_TOC_BYTES): number {
  const raw = maxJsonBytes + TAR_OVERHEAD;
  return raw + Math.ceil(raw / 128) + 64 * 1024;
}

/**
 * Inflate the TOC region [tocOffset, tocOffset+tocLength) and return the raw JSON bytes (for gzip:
 * the `stargz.index.json` tar entry inside the gzip member; for zstd: the zstd frame). Bounded:
 * refuse TOCs whose JSON exceeds maxBytes (default 256 MiB) with TOC_INVALID.
 */
export function extractTocJson(region: Buffer, compression: Compression, maxBytes: number = DEFAULT_MAX_TOC_BYTES): Buffer {
  if (compression === 'gzip') {
    const tar = inflateGzipMemberSync(region, maxBytes + TAR_OVERHEAD);
    return firstTarFile(tar, maxBytes);
  }
  const frame = readZstdFrame(region);
  if (frame.contentSize !== undefined && frame.contentSize > maxBytes) {
    throw invalid(`TOC JSON is ${frame.contentSize} bytes, more than the ${maxBytes} allowed`);
  }
  const out = decodeZstdFrame(region, frame, maxBytes + 1, maxBytes);
  if (out.length > maxBytes) throw invalid(`TOC JSON is more than the ${maxBytes} bytes allowed`);
  return Buffer.from(out.buffer, out.byteOffset, out.length);
}

/** 'sha256:<hex>' of the JSON bytes, to verify against the layer annotation containerd.io/snapshot/stargz/toc.digest */
export function tocDigest(json: Buffer): string {
  return sha256Digest(json);
}

/**
 * Parse + validate the JSON (version 1; types; numbers are non-negative safe integers; xattrs
 * base64 -> Buffer). Hostile input -> StargzError TOC_INVALID, never a crash.
 */
export function parseToc(json: Buffer): Toc {
  let doc: unknown;
  try {
    doc = JSON.parse(json.toString('utf8'));
  } catch (err) {
    throw invalid('TOC is not valid JSON: ' + (err as Error).message, err);
  }
  if (!isObject(doc)) throw invalid('TOC JSON is not an object');
  if (doc.version !== 1) throw invalid(`TOC version ${JSON.stringify(doc.version)} is not supported (want 1)`);
  const raw = doc.entries ?? [];
  if (!Array.isArray(raw)) throw invalid('TOC "entries" is not an array');
  if (raw.length > MAX_TOC_ENTRIES) throw invalid(`TOC has ${raw.length} entries, more than ${MAX_TOC_ENTRIES}`);
  const entries = new Array<TocEntry>(raw.length);
  for (let i = 0; i < raw.length; i++) {
    entries[i] = parseEntry(raw[i], i);
    // The parsed JSON object is garbage once checked: the raw and the checked forms of a big
    // TOC are not both held whole (the JSON text itself is dropped when JSON.parse returns).
    raw[i] = undefined;
  }
  return { version: 1, entries };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function parseEntry(e: unknown, i: number): TocEntry {
  if (!isObject(e)) throw invalid(`TOC entry ${i} is not an object`);
  const where = (field: string): string => `TOC entry ${i} field "${field}"`;
  const num = (field: string): number => {
    const v = e[field];
    if (v === undefined || v === null) return 0;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw invalid(`${where(field)} is not a non-negative integer`);
    return v;
  };
  const str = (field: string): string | undefined => {
    const v = e[field];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string') throw invalid(`${where(field)} is not a string`);
    return v;
  };
  const digest = (field: string): string | undefined => {
    const v = str(field);
    if (v === undefined || v === '') return undefined;
    if (!DIGEST_RE.test(v)) throw invalid(`${where(field)} is not a sha256/384/512 digest`);
    return v;
  };
  const name = str('name') ?? '';
  if (Buffer.byteLength(name) > MAX_NAME_BYTES) throw invalid(`${where('name')} is longer than ${MAX_NAME_BYTES} bytes`);
  const type = str('type');
  if (type === undefined || !ENTRY_TYPES.has(type)) throw invalid(`${where('type')} ${JSON.stringify(type)} is not a known entry type`);
  const linkName = str('linkName') ?? '';
  if (Buffer.byteLength(linkName) > MAX_NAME_BYTES) throw invalid(`${where('linkName')} is longer than ${MAX_NAME_BYTES} bytes`);
  const entry: TocEntry = {
    name,
    type: type as EntryType,
    size: num('size'),
    linkName,
    mode: num('mode'),
    uid: num('uid'),
    gid: num('gid'),
    devMajor: num('devMajor'),
    devMinor: num('devMinor'),
    xattrs: parseXattrs(e.xattrs, where('xattrs')),
    offset: num('offset'),
    innerOffset: num('innerOffset'),
    chunkOffset: num('chunkOffset'),
    chunkSize: num('chunkSize'),
  };
  const optional: Array<[keyof TocEntry, string | undefined]> = [
    ['modtime', str('modtime')],
    ['userName', str('userName')],
    ['groupName', str('groupName')],
    ['digest', digest('digest')],
    ['chunkDigest', digest('chunkDigest')],
  ];
  for (const [k, v] of optional) if (v !== undefined) (entry as unknown as Record<string, unknown>)[k] = v;
  return entry;
}

export { NO_XATTRS };

function parseXattrs(v: unknown, where: string): Record<string, Buffer> {
  if (v === undefined || v === null) return NO_XATTRS;
  if (!isObject(v)) throw invalid(`${where} is not an object`);
  const keys = Object.keys(v);
  if (keys.length === 0) return NO_XATTRS;
  const out: Record<string, Buffer> = {};
  if (keys.length > MAX_XATTRS_PER_ENTRY) throw invalid(`${where} has more than ${MAX_XATTRS_PER_ENTRY} attributes`);
  for (const k of keys) {
    const val = v[k];
    if (k === '' || Buffer.byteLength(k) > MAX_XATTR_NAME_BYTES || k.includes('\0') || !k.isWellFormed()) throw invalid(`${where} has an invalid attribute name`);
    if (val === null) {
      // Go encodes a nil []byte as null
      Object.defineProperty(out, k, { value: Buffer.alloc(0), enumerable: true, writable: true, configurable: true });
      continue;
    }
    if (typeof val !== 'string' || !BASE64_RE.test(val)) throw invalid(`${where}[${JSON.stringify(k)}] is not base64`);
    if ((val.length / 4) * 3 > MAX_XATTR_VALUE_BYTES + 3) throw invalid(`${where}[${JSON.stringify(k)}] is too large`);
    // defineProperty: a key like "__proto__" must stay data, not reach the prototype
    Object.defineProperty(out, k, { value: Buffer.from(val, 'base64'), enumerable: true, writable: true, configurable: true });
  }
  return out;
}
