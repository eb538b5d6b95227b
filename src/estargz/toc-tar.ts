// The gzip TOC member holds a tiny tar whose first file is stargz.index.json. We read just that
// first file: ustar/GNU/PAX headers, with PAX or GNU long names and PAX sizes honoured.
import { ErrorCodes, StargzError } from '../errors.js';

export const TOC_TAR_NAME = 'stargz.index.json';
const BLOCK = 512;
/** PAX / GNU long-name records are small; refuse anything bigger. */
const MAX_META_SIZE = 1024 * 1024;

function invalid(message: string): StargzError {
  return new StargzError(ErrorCodes.TOC_INVALID, message);
}

function cString(b: Buffer, start: number, len: number): string {
  const field = b.subarray(start, start + len);
  const nul = field.indexOf(0);
  return field.toString('utf8', 0, nul < 0 ? field.length : nul);
}

/** Numeric header field: octal text, or GNU base-256 when the top bit is set. */
function tarNumber(b: Buffer, start: number, len: number): number {
  const field = b.subarray(start, start + len);
  if (field[0]! & 0x80) {
    if (field[0] === 0xff) throw invalid('negative number in TOC tar header');
    let v = BigInt(field[0]! & 0x7f);
    for (let i = 1; i < field.length; i++) v = (v << 8n) | BigInt(field[i]!);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw invalid('number too large in TOC tar header');
    return Number(v);
  }
  const text = field.toString('latin1').replace(/[\0 ]+$/, '').replace(/^ +/, '');
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) throw invalid('malformed number in TOC tar header');
  const v = parseInt(text, 8);
  if (!Number.isSafeInteger(v)) throw invalid('number too large in TOC tar header');
  return v;
}

function checksumOk(h: Buffer): boolean {
  const want = tarNumber(h, 148, 8);
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const c = i >= 148 && i < 156 ? 0x20 : h[i]!;
    unsigned += c;
    signed += c > 127 ? c - 256 : c;
  }
  return want === unsigned || want === signed;
}

/** PAX extended header records: "<len> <key>=<value>\n"... */
function paxRecords(data: Buffer): Map<string, string> {
  const out = new Map<string, string>();
  let pos = 0;
  while (pos < data.length) {
    const sp = data.indexOf(0x20, pos);
    if (sp < 0) break;
    const len = parseInt(data.toString('latin1', pos, sp), 10);
    if (!Number.isSafeInteger(len) || len <= sp - pos || pos + len > data.length) throw invalid('malformed PAX record in TOC tar');
    const rec = data.toString('utf8', sp + 1, pos + len - 1);
    const eq = rec.indexOf('=');
    if (eq > 0) out.set(rec.slice(0, eq), rec.slice(eq + 1));
    pos += len;
  }
  return out;
}

/** Returns the contents of the first file of `tar`, which must be stargz.index.json. */
export function firstTarFile(tar: Buffer, maxBytes: number): Buffer {
  let pos = 0;
  let longName: string | undefined;
  let paxPath: string | undefined;
  let paxSize: number | undefined;
  for (;;) {
    if (pos + BLOCK > tar.length) throw invalid('TOC tar ends before its first file');
    const h = tar.subarray(pos, pos + BLOCK);
    if (h.every((c) => c === 0)) throw invalid('TOC tar has no file');
    if (!checksumOk(h)) throw invalid('TOC tar header checksum mismatch');
    const type = String.fromCharCode(h[156]!);
    const isMeta = type === 'x' || type === 'g' || type === 'L' || type === 'K';
    const size = isMeta || paxSize === undefined ? tarNumber(h, 124, 12) : paxSize;
    const dataStart = pos + BLOCK;
    if (dataStart + size > tar.length) throw invalid('TOC tar is truncated');
    const next = dataStart + Math.ceil(size / BLOCK) * BLOCK;
    if (isMeta) {
      if (size > MAX_META_SIZE) throw invalid('TOC tar metadata record is too large');
      const data = tar.subarray(dataStart, dataStart + size);
      if (type === 'x') {
        const recs = paxRecords(data);
        paxPath = recs.get('path') ?? paxPath;
        const s = recs.get('size');
        if (s !== undefined) {
          if (!/^[0-9]+$/.test(s) || !Number.isSafeInteger(Number(s))) throw invalid('malformed PAX size in TOC tar');
          paxSize = Number(s);
        }
      } else if (type === 'L') {
        longName = cString(data, 0, data.length);
      }
      pos = next;
      continue;
    }
    let name = paxPath ?? longName;
    if (name === undefined) {
      name = cString(h, 0, 100);
      // ustar: a prefix field extends the name
      if (h.toString('latin1', 257, 262) === 'ustar') {
        const prefix = cString(h, 345, 155);
        if (prefix !== '') name = prefix + '/' + name;
      }
    }
    const clean = name.split('/').filter((p) => p !== '' && p !== '.').join('/');
    if (clean !== TOC_TAR_NAME) throw invalid(`TOC tar entry is named ${JSON.stringify(name)}, not ${TOC_TAR_NAME}`);
    if (type !== '0' && type !== '\0' && type !== '7') throw invalid('TOC tar entry is not a regular file');
    if (size > maxBytes) throw invalid(`TOC JSON is ${size} bytes, more than the ${maxBytes} allowed`);
    return tar.subarray(dataStart, dataStart + size);
  }
}
