// The TOC ("stargz.index.json"): inflating it out of its region, and parsing the JSON into
// checked structures. Everything here assumes hostile input: wrong types, negative or
// imprecise numbers, giant counts all end as TOC_INVALID, never as a crash.
import { ErrorCodes, StargzError } from '../errors.js';
import { sha256Digest } from '../util/digest.js';
import { NO_XATTRS } from '../file-index/model.js';
import type { Compression } from './footer.js';
import { inflateGzipMemberSync } from './gzip-member.js';
import { longerThan, MAX_NAME_BYTES } from '../file-index/names.js';
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
  if (longerThan(name, MAX_NAME_BYTES)) throw invalid(`${where('name')} is longer than ${MAX_NAME_BYTES} bytes`);
  const type = str('type');
  if (type === undefined || !ENTRY_TYPES.has(type)) throw invalid(`${where('type')} ${JSON.stringify(type)} is not a known entry type`);
  const linkName = str('linkName') ?? '';
  if (longerThan(linkName, MAX_NAME_BYTES)) throw invalid(`${where('linkName')} is longer than ${MAX_NAME_BYTES} bytes`);
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
  const modtime = str('modtime');
  const userName = str('userName');
  const groupName = str('groupName');
  const fileDigest = digest('digest');
  const chunkDigest = digest('chunkDigest');
  if (modtime !== undefined) entry.modtime = modtime;
  if (userName !== undefined) entry.userName = userName;
  if (groupName !== undefined) entry.groupName = groupName;
  if (fileDigest !== undefined) entry.digest = fileDigest;
  if (chunkDigest !== undefined) entry.chunkDigest = chunkDigest;
  return entry;
}

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

/**
 * Thrown by scanTocEntries when the document is not in the shape it streams (the caller then
 * parses the TOC whole, the way parseToc does, for the exact verdict and message).
 */
export class TocScanFallback extends Error {}

const WS_SP = 0x20, WS_TAB = 0x09, WS_LF = 0x0a, WS_CR = 0x0d;
const QUOTE = 0x22, BACKSLASH = 0x5c, COMMA = 0x2c, COLON = 0x3a;
const LBRACE = 0x7b, RBRACE = 0x7d, LBRACKET = 0x5b, RBRACKET = 0x5d;

function fallback(why: string): TocScanFallback {
  return new TocScanFallback(why);
}

function skipWs(b: Buffer, p: number): number {
  while (p < b.length) {
    const c = b[p]!;
    if (c !== WS_SP && c !== WS_LF && c !== WS_CR && c !== WS_TAB) break;
    p++;
  }
  return p;
}

/** b[p] is '"': the index just past the closing quote (a quote after an odd run of backslashes is escaped). */
function skipString(b: Buffer, p: number): number {
  let from = p + 1;
  for (;;) {
    const q = b.indexOf(QUOTE, from);
    if (q < 0) throw fallback('unterminated string');
    let k = q - 1;
    while (k > p && b[k] === BACKSLASH) k--;
    if ((q - 1 - k) % 2 === 0) return q + 1;
    from = q + 1;
  }
}

/**
 * The end of the JSON value starting at b[p]: strings and containers by structure (brackets
 * inside strings do not count), anything else up to the next delimiter. Only finds the extent:
 * JSON.parse of the slice is what checks it.
 */
function skipValue(b: Buffer, p: number): number {
  const c = b[p];
  if (c === QUOTE) return skipString(b, p);
  if (c === LBRACE || c === LBRACKET) {
    let depth = 0;
    let i = p;
    while (i < b.length) {
      const d = b[i]!;
      if (d === QUOTE) {
        i = skipString(b, i);
        continue;
      }
      if (d === LBRACE || d === LBRACKET) depth++;
      else if (d === RBRACE || d === RBRACKET) {
        if (--depth === 0) return i + 1;
      }
      i++;
    }
    throw fallback('unterminated container');
  }
  let i = p;
  while (i < b.length) {
    const d = b[i]!;
    if (d === COMMA || d === RBRACE || d === RBRACKET || d === WS_SP || d === WS_LF || d === WS_CR || d === WS_TAB) break;
    i++;
  }
  if (i === p) throw fallback('missing value');
  return i;
}

function parseSlice(b: Buffer, start: number, end: number): unknown {
  try {
    return JSON.parse(b.toString('utf8', start, end));
  } catch {
    throw fallback('invalid JSON');
  }
}

/**
 * One pass over the TOC JSON text: each element of "entries" is cut out by a small
 * string-aware scanner, JSON.parse'd alone, checked (parseEntry) and handed to `onEntry`, so
 * neither all raw objects nor all TocEntry objects exist at once. Streams only the plain shape
 * writers produce: an object whose "version" (1) comes before its one "entries" array. Anything
 * else (other shapes, invalid JSON, a bad entry) throws: TocScanFallback for the shape, or
 * parseEntry's TOC_INVALID; the caller then decides on the whole document as parseToc does,
 * so what is accepted, what is refused and with which message is parseToc's.
 */
export function scanTocEntries(json: Buffer, onEntry: (e: TocEntry, i: number) => void): number {
  const b = json;
  let p = skipWs(b, 0);
  if (b[p] !== LBRACE) throw fallback('not an object');
  p = skipWs(b, p + 1);
  let version: unknown;
  let seenEntries = false;
  let count = 0;
  if (b[p] === RBRACE) throw fallback('empty object');
  for (;;) {
    if (b[p] !== QUOTE) throw fallback('expected a key');
    const keyEnd = skipString(b, p);
    const key = parseSlice(b, p, keyEnd);
    p = skipWs(b, keyEnd);
    if (b[p] !== COLON) throw fallback('expected a colon');
    p = skipWs(b, p + 1);
    if (key === 'entries') {
      if (seenEntries || version !== 1) throw fallback('entries before version, or twice');
      if (b[p] !== LBRACKET) throw fallback('entries is not an array');
      seenEntries = true;
      p = skipWs(b, p + 1);
      if (b[p] === RBRACKET) p++;
      else {
        for (;;) {
          const end = skipValue(b, p);
          if (count >= MAX_TOC_ENTRIES) throw fallback('too many entries');
          onEntry(parseEntry(parseSlice(b, p, end), count), count);
          count++;
          p = skipWs(b, end);
          if (b[p] === COMMA) p = skipWs(b, p + 1);
          else if (b[p] === RBRACKET) {
            p++;
            break;
          } else throw fallback('expected , or ]');
        }
      }
    } else {
      if (key === 'version' && seenEntries) throw fallback('version after entries');
      const end = skipValue(b, p);
      const v = parseSlice(b, p, end);
      if (key === 'version') version = v;
      p = end;
    }
    p = skipWs(b, p);
    if (b[p] === COMMA) {
      p = skipWs(b, p + 1);
      continue;
    }
    if (b[p] !== RBRACE) throw fallback('expected , or }');
    p = skipWs(b, p + 1);
    if (p !== b.length) throw fallback('trailing text');
    break;
  }
  if (version !== 1) throw fallback('version is not 1');
  return count;
}
