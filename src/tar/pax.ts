// PAX extended header records ("%d %s=%s\n"), as Go's archive/tar parses them. Values stay
// bytes: SCHILY.xattr.* values are binary (security.capability, hdrcharset=BINARY), and
// decoding them as UTF-8 would corrupt them.
import { corrupt } from './header.js';

export const SPARSE_OFFSET = 'GNU.sparse.offset';
export const SPARSE_NUMBYTES = 'GNU.sparse.numbytes';
export const SPARSE_MAP = 'GNU.sparse.map';

export type PaxRecords = Map<string, Buffer>;

/** Parses a whole PAX header; GNU sparse 0.0's repeated offset/numbytes pairs become one GNU.sparse.map. */
export function parsePax(data: Buffer): PaxRecords {
  const records: PaxRecords = new Map();
  const sparse: string[] = [];
  let at = 0;
  while (at < data.length) {
    const space = data.indexOf(0x20, at);
    if (space < 0 || space - at > 20) throw corrupt('PAX record without a length');
    const lenText = data.toString('latin1', at, space);
    if (!/^\d+$/.test(lenText)) throw corrupt(`PAX record length ${JSON.stringify(lenText)}`);
    const len = Number(lenText);
    const end = at + len;
    if (len < 5 || end > data.length || end <= space + 1) throw corrupt(`PAX record of length ${len} does not fit the header`);
    if (data[end - 1] !== 0x0a) throw corrupt('PAX record does not end with a newline');
    const rec = data.subarray(space + 1, end - 1);
    const eq = rec.indexOf(0x3d);
    if (eq <= 0) throw corrupt('PAX record without a keyword');
    const key = rec.toString('utf8', 0, eq);
    const value = rec.subarray(eq + 1);
    if (key.includes('\0')) throw corrupt('PAX keyword contains NUL');
    if ((key === 'path' || key === 'linkpath' || key === 'uname' || key === 'gname') && value.includes(0)) {
      throw corrupt(`PAX ${key} contains NUL`);
    }
    if (key === SPARSE_OFFSET || key === SPARSE_NUMBYTES) {
      const text = value.toString('latin1');
      if ((sparse.length % 2 === 0) !== (key === SPARSE_OFFSET) || text.includes(',')) throw corrupt('GNU sparse 0.0 records out of order');
      sparse.push(text);
    } else {
      records.set(key, Buffer.from(value)); // a copy: the header buffer is reused
    }
    at = end;
  }
  if (sparse.length > 0) records.set(SPARSE_MAP, Buffer.from(sparse.join(','), 'latin1'));
  return records;
}

/** A decimal integer record (uid, gid, size, GNU.sparse.*). */
export function paxInteger(value: Buffer, key: string): number {
  const s = value.toString('latin1');
  if (!/^[+-]?\d+$/.test(s)) throw corrupt(`PAX ${key} is not an integer: ${JSON.stringify(s.slice(0, 40))}`);
  const n = Number(s);
  if (!Number.isSafeInteger(n)) throw corrupt(`PAX ${key} does not fit a safe integer`);
  return n;
}

/** "secs[.frac]" in milliseconds; digits past the millisecond are dropped. */
export function paxTimeMs(value: Buffer, key: string): number {
  const s = value.toString('latin1');
  const m = /^([+-]?)(\d+)(?:\.(\d*))?$/.exec(s);
  if (!m) throw corrupt(`PAX ${key} is not a time: ${JSON.stringify(s.slice(0, 40))}`);
  const secs = Number(m[2]);
  if (!Number.isSafeInteger(secs * 1000)) throw corrupt(`PAX ${key} is out of range`);
  const ms = secs * 1000 + Number(((m[3] ?? '') + '000').slice(0, 3));
  return m[1] === '-' ? -ms : ms;
}
