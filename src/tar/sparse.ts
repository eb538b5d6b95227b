// GNU sparse files: the maps of data regions in the three encodings GNU tar writes — old GNU
// ('S' headers with 4 entries, then extension blocks of 21), PAX 0.0/0.1 (records), PAX 1.0
// (a decimal map in the first data blocks). The archive holds only the data regions, in order;
// everything else of the file is a hole.
import { BLOCK, corrupt, parseNumeric } from './header.js';
import { paxInteger, SPARSE_MAP, type PaxRecords } from './pax.js';

export interface SparseRegion {
  offset: number;
  length: number;
}

/** Entries of an old GNU sparse array (24 bytes each: offset, numbytes) up to the first empty one. */
export function readOldGnuEntries(block: Buffer, at: number, count: number, out: SparseRegion[], max: number): void {
  for (let i = 0; i < count; i++) {
    const e = block.subarray(at + i * 24, at + i * 24 + 24);
    if (e[0] === 0) return;
    if (out.length >= max) throw corrupt(`sparse map has more than ${max} entries`);
    out.push({ offset: parseNumeric(e.subarray(0, 12), 'sparse offset'), length: parseNumeric(e.subarray(12, 24), 'sparse length') });
  }
}

/** PAX 0.0 (folded into GNU.sparse.map by parsePax) and 0.1: "offset,length,..." and numblocks. */
export function readPaxMap(records: PaxRecords, max: number): SparseRegion[] {
  const numBlocks = records.get('GNU.sparse.numblocks');
  const n = numBlocks ? paxInteger(numBlocks, 'GNU.sparse.numblocks') : -1;
  if (n < 0) throw corrupt('GNU sparse map without a valid GNU.sparse.numblocks');
  if (n > max) throw corrupt(`sparse map has more than ${max} entries`);
  const text = records.get(SPARSE_MAP)?.toString('latin1') ?? '';
  const parts = text === '' ? [] : text.split(',');
  if (parts.length !== 2 * n) throw corrupt(`GNU sparse map has ${parts.length} numbers for ${n} regions`);
  return pairs(parts);
}

function pairs(parts: string[]): SparseRegion[] {
  const out: SparseRegion[] = [];
  for (let i = 0; i + 1 < parts.length; i += 2) {
    out.push({ offset: decimal(parts[i]!), length: decimal(parts[i + 1]!) });
  }
  return out;
}

function decimal(s: string): number {
  if (!/^\d{1,16}$/.test(s)) throw corrupt(`sparse map number ${JSON.stringify(s.slice(0, 20))}`);
  const n = Number(s);
  if (!Number.isSafeInteger(n)) throw corrupt('sparse map number does not fit a safe integer');
  return n;
}

/**
 * PAX 1.0: newline-separated decimals (count, then offset/length pairs) at the start of the
 * data, padded to a block. Fed block by block; `done` once the map is complete.
 */
export class Sparse10Map {
  private text = '';
  private count = -1;
  private lines: string[] = [];
  regions: SparseRegion[] | undefined;

  constructor(private readonly max: number) {}

  /** Takes one data block; true when the map is complete. */
  feed(block: Buffer): boolean {
    if (this.text.length + BLOCK > 40 * (2 * this.max + 1) + BLOCK) throw corrupt('GNU sparse 1.0 map too long');
    this.text += block.toString('latin1');
    const parts = this.text.split('\n');
    this.text = parts.pop()!; // an unfinished number
    for (const p of parts) {
      if (this.count < 0) {
        this.count = decimal(p);
        if (this.count > this.max) throw corrupt(`sparse map has more than ${this.max} entries`);
      } else this.lines.push(p);
      if (this.count >= 0 && this.lines.length === 2 * this.count) {
        this.regions = pairs(this.lines);
        return true;
      }
    }
    return false;
  }
}

/** Regions must be in order, not overlap, and end within the file (the BSD tar / Go checks). */
export function checkRegions(regions: SparseRegion[], size: number): void {
  let end = 0;
  for (const r of regions) {
    if (r.offset < end) throw corrupt('sparse regions overlap or are out of order');
    end = r.offset + r.length;
    if (end > size) throw corrupt(`sparse region [${r.offset}, ${end}) is past the file size ${size}`);
  }
}
