// A streaming tar reader: bytes in (any chunking), entries and their data out, no I/O. It
// reads what GNU tar and Go's archive/tar (umoci's reader) read: V7, ustar (prefix field),
// PAX (x records; g global headers are read and, as Go does, not applied), GNU long names and
// links (L/K), base-256 numbers, GNU sparse files (old 'S', PAX 0.0/0.1/1.0). The archive ends
// at two zero blocks (or at a block boundary); whatever follows is ignored, as Go ignores it.
// Every size it buffers is bounded: hostile input is ERR_CORRUPT_DATA, never a crash or a hang.
import { BLOCK, corrupt, cString, isZeroBlock, parseHeader, parseNumeric, type RawHeader } from './header.js';
import { paxInteger, paxTimeMs, parsePax, SPARSE_MAP, type PaxRecords } from './pax.js';
import { checkRegions, readOldGnuEntries, readPaxMap, Sparse10Map, type SparseRegion } from './sparse.js';

export type TarEntryType = 'file' | 'hardlink' | 'symlink' | 'char' | 'block' | 'dir' | 'fifo' | 'other';

export interface TarEntry {
  name: string;
  linkName: string;
  type: TarEntryType;
  /** the header's typeflag ('0' for old '\0' files, '5' for their trailing-slash directories) */
  typeflag: string;
  mode: number;
  uid: number;
  gid: number;
  uname: string;
  gname: string;
  mtimeMs: number;
  devMajor: number;
  devMinor: number;
  /** the file's size; for a sparse file its real (expanded) size */
  size: number;
  /** SCHILY.xattr.* records, values as the exact bytes of the archive */
  xattrs: Record<string, Buffer>;
  /** a sparse file's data regions (non-empty, in order): the rest of [0, size) is holes */
  sparse?: SparseRegion[];
}

export type TarEvent =
  | { kind: 'entry'; entry: TarEntry }
  /** bytes of the current entry at `offset` in the file; `data` views the input chunk */
  | { kind: 'data'; offset: number; data: Buffer }
  | { kind: 'entryEnd' };

export interface TarLimits {
  /** largest PAX header or GNU long name/link (Go: 1 MiB) */
  maxMetaSize: number;
  maxSparseEntries: number;
  maxEntries: number;
}

export const DEFAULT_TAR_LIMITS: TarLimits = { maxMetaSize: 1 << 20, maxSparseEntries: 1 << 20, maxEntries: 10_000_000 };

const TYPES: Record<string, TarEntryType> = {
  '0': 'file',
  '7': 'file',
  S: 'file',
  '1': 'hardlink',
  '2': 'symlink',
  '3': 'char',
  '4': 'block',
  '5': 'dir',
  '6': 'fifo',
};
/** Types whose size field does not announce data (Go's isHeaderOnlyType). */
const HEADER_ONLY = new Set(['1', '2', '3', '4', '5', '6']);

type State = 'header' | 'meta' | 'sparseExt' | 'map10' | 'data' | 'pad' | 'zero' | 'done';

interface Current {
  entry: TarEntry;
  /** data bytes still in the archive */
  remaining: number;
  /** zero padding after the data */
  pad: number;
  emit: boolean;
  /** next logical offset (dense files), or position in the sparse regions */
  offset: number;
  region: number;
  inRegion: number;
}

export class TarReader {
  private readonly limits: TarLimits;
  private state: State = 'header';
  private acc: Buffer = Buffer.alloc(BLOCK);
  private accLen = 0;
  private accWant = BLOCK;
  private metaType = '';
  private pax: PaxRecords | undefined;
  private longName: string | undefined;
  private longLink: string | undefined;
  private pending: { entry: TarEntry; phys: number; raw: RawHeader } | undefined;
  private sparseAcc: SparseRegion[] = [];
  private map10: Sparse10Map | undefined;
  private cur: Current | undefined;
  private padLeft = 0;
  private entries = 0;

  constructor(limits: Partial<TarLimits> = {}) {
    this.limits = { ...DEFAULT_TAR_LIMITS, ...limits };
  }

  /** True once the end-of-archive marker was read: later bytes are ignored. */
  get done(): boolean {
    return this.state === 'done';
  }

  write(chunk: Buffer): TarEvent[] {
    const out: TarEvent[] = [];
    let pos = 0;
    while (pos < chunk.length && this.state !== 'done') {
      if (this.state === 'data') pos = this.data(chunk, pos, out);
      else if (this.state === 'pad') {
        const n = Math.min(this.padLeft, chunk.length - pos);
        this.padLeft -= n;
        pos += n;
        if (this.padLeft === 0) this.state = 'header';
      } else {
        const n = Math.min(this.accWant - this.accLen, chunk.length - pos);
        chunk.copy(this.acc, this.accLen, pos, pos + n);
        this.accLen += n;
        pos += n;
        if (this.accLen === this.accWant) {
          this.accLen = 0;
          this.collected(out);
        }
      }
    }
    return out;
  }

  /** The input ended: throws unless it ended where an archive may end. */
  end(): void {
    if (this.state === 'done') return;
    if ((this.state === 'header' || this.state === 'zero') && isZeroBlock(this.acc.subarray(0, this.accLen))) {
      // A partial all-zero block: an archive cut inside its end marker, which GNU tar accepts.
      this.state = 'done';
      return;
    }
    throw corrupt(`unexpected end of archive (${this.where()})`);
  }

  private where(): string {
    const name = this.cur?.entry.name ?? this.pending?.entry.name;
    return name === undefined ? this.state : `${this.state} of ${JSON.stringify(name)}`;
  }

  private collect(want: number, state: State): void {
    if (this.acc.length < want) this.acc = Buffer.alloc(want);
    this.accWant = want;
    this.accLen = 0;
    this.state = state;
  }

  private collected(out: TarEvent[]): void {
    const block = this.acc.subarray(0, this.accWant);
    switch (this.state) {
      case 'header':
      case 'zero':
        return this.header(block, out);
      case 'meta':
        return this.meta(block);
      case 'sparseExt': {
        readOldGnuEntries(block, 0, 21, this.sparseAcc, this.limits.maxSparseEntries);
        if (block[504] === 0) this.startSparse(this.sparseAcc, out);
        return;
      }
      case 'map10': {
        const p = this.pending!;
        if (p.phys < BLOCK) throw corrupt(`GNU sparse 1.0 map of ${JSON.stringify(p.entry.name)} is longer than its data`);
        p.phys -= BLOCK; // the map is part of the entry's data; the padding after it is unchanged
        if (this.map10!.feed(block)) this.startSparse(this.map10!.regions!, out);
        return;
      }
    }
  }

  private header(block: Buffer, out: TarEvent[]): void {
    if (isZeroBlock(block)) {
      this.state = this.state === 'zero' ? 'done' : 'zero';
      return;
    }
    if (this.state === 'zero') throw corrupt('a zero block followed by a header (damaged end of archive)');
    const raw = parseHeader(block);
    const t = raw.typeflag;
    const size = HEADER_ONLY.has(t) ? 0 : raw.size;
    if (t === 'x' || t === 'g' || t === 'L' || t === 'K') {
      if (size > this.limits.maxMetaSize) throw corrupt(`${t} header of ${size} bytes, more than ${this.limits.maxMetaSize}`);
      this.metaType = t;
      this.padLeft = pad(size);
      if (size === 0) return this.meta(Buffer.alloc(0));
      return this.collect(size, 'meta');
    }
    if (++this.entries > this.limits.maxEntries) throw corrupt(`more than ${this.limits.maxEntries} entries`);
    const entry = this.merge(raw);
    const phys = HEADER_ONLY.has(entry.typeflag) ? 0 : entry.size;
    this.padLeft = pad(phys);
    this.pending = { entry, phys, raw };
    this.pax = undefined;
    this.longName = this.longLink = undefined;
    if (t === 'S') {
      if (raw.format !== 'gnu') throw corrupt(`old GNU sparse entry ${JSON.stringify(entry.name)} in a ${raw.format} header`);
      entry.size = parseNumeric(block.subarray(483, 495), 'sparse real size');
      this.sparseAcc = [];
      readOldGnuEntries(block, 386, 4, this.sparseAcc, this.limits.maxSparseEntries);
      if (block[482] !== 0) return this.collect(BLOCK, 'sparseExt');
      return this.startSparse(this.sparseAcc, out);
    }
    const records = entry.sparseRecords;
    delete entry.sparseRecords;
    if (records) {
      const name = records.get('GNU.sparse.name');
      if (name && name.length > 0) entry.name = name.toString('utf8');
      const real = records.get('GNU.sparse.size') ?? records.get('GNU.sparse.realsize');
      if (real) entry.size = paxInteger(real, 'GNU.sparse.realsize');
      if (records.get('GNU.sparse.major')?.toString('latin1') === '1') {
        this.map10 = new Sparse10Map(this.limits.maxSparseEntries);
        return this.collect(BLOCK, 'map10');
      }
      return this.startSparse(readPaxMap(records, this.limits.maxSparseEntries), out);
    }
    this.start(entry, phys, out);
  }

  /** A finished L/K/x/g header. */
  private meta(data: Buffer): void {
    const t = this.metaType;
    if (t === 'x') this.pax = parsePax(data);
    else if (t === 'g') {
      parsePax(data); // checked like Go does, then not applied (Go and so umoci ignore it)
      this.pax = undefined;
      this.longName = this.longLink = undefined;
    } else if (t === 'L') this.longName = cString(data);
    else this.longLink = cString(data);
    this.state = this.padLeft > 0 ? 'pad' : 'header';
    this.accWant = BLOCK;
  }

  /** The entry of a header with the PAX records and long names before it applied (Go's order). */
  private merge(raw: RawHeader): TarEntry & { sparseRecords?: PaxRecords } {
    const e: TarEntry & { sparseRecords?: PaxRecords } = {
      name: raw.name,
      linkName: raw.linkName,
      type: 'other',
      typeflag: raw.typeflag,
      mode: raw.mode,
      uid: raw.uid,
      gid: raw.gid,
      uname: raw.uname,
      gname: raw.gname,
      mtimeMs: raw.mtimeSec * 1000,
      devMajor: raw.devMajor,
      devMinor: raw.devMinor,
      size: raw.size,
      xattrs: {},
    };
    if (this.pax) {
      for (const [k, v] of this.pax) {
        if (v.length === 0) continue; // an empty record keeps the header's value (and sets no xattr)
        if (k === 'path') e.name = v.toString('utf8');
        else if (k === 'linkpath') e.linkName = v.toString('utf8');
        else if (k === 'uname') e.uname = v.toString('utf8');
        else if (k === 'gname') e.gname = v.toString('utf8');
        else if (k === 'uid') e.uid = paxInteger(v, k);
        else if (k === 'gid') e.gid = paxInteger(v, k);
        else if (k === 'mtime') e.mtimeMs = paxTimeMs(v, k);
        else if (k === 'size') e.size = paxInteger(v, k);
        else if (k.startsWith('SCHILY.xattr.')) e.xattrs[k.slice('SCHILY.xattr.'.length)] = v;
      }
      if (isPaxSparse(this.pax)) e.sparseRecords = this.pax;
    }
    if (this.longName !== undefined && this.longName !== '') e.name = this.longName;
    if (this.longLink !== undefined && this.longLink !== '') e.linkName = this.longLink;
    if (e.typeflag === '\0') e.typeflag = e.name.endsWith('/') ? '5' : '0';
    e.type = TYPES[e.typeflag] ?? 'other';
    if (e.size < 0) throw corrupt(`${JSON.stringify(e.name)} has a negative size`);
    return e;
  }

  private startSparse(regions: SparseRegion[], out: TarEvent[]): void {
    const { entry, phys } = this.pending!;
    this.map10 = undefined;
    if (entry.type !== 'file') throw corrupt(`${JSON.stringify(entry.name)} is sparse but not a regular file`);
    checkRegions(regions, entry.size);
    const data = regions.filter((r) => r.length > 0);
    const total = data.reduce((n, r) => n + r.length, 0);
    if (total !== phys) throw corrupt(`sparse file ${JSON.stringify(entry.name)}: its map has ${total} data bytes, the archive ${phys}`);
    entry.sparse = data;
    this.start(entry, phys, out);
  }

  private start(entry: TarEntry, phys: number, out: TarEvent[]): void {
    this.pending = undefined;
    this.accWant = BLOCK;
    out.push({ kind: 'entry', entry });
    this.cur = { entry, remaining: phys, pad: this.padLeft, emit: entry.type === 'file', offset: 0, region: 0, inRegion: 0 };
    if (phys > 0) this.state = 'data';
    else this.finishEntry(out);
  }

  private data(chunk: Buffer, pos: number, out: TarEvent[]): number {
    const cur = this.cur!;
    const n = Math.min(cur.remaining, chunk.length - pos);
    if (cur.emit) {
      const regions = cur.entry.sparse;
      if (!regions) {
        out.push({ kind: 'data', offset: cur.offset, data: chunk.subarray(pos, pos + n) });
        cur.offset += n;
      } else {
        // The archive holds the data regions back to back: map each byte to its file offset.
        let at = pos;
        while (at < pos + n) {
          const r = regions[cur.region]!;
          const m = Math.min(r.length - cur.inRegion, pos + n - at);
          out.push({ kind: 'data', offset: r.offset + cur.inRegion, data: chunk.subarray(at, at + m) });
          at += m;
          cur.inRegion += m;
          if (cur.inRegion === r.length) {
            cur.region++;
            cur.inRegion = 0;
          }
        }
      }
    }
    cur.remaining -= n;
    if (cur.remaining === 0) this.finishEntry(out);
    return pos + n;
  }

  private finishEntry(out: TarEvent[]): void {
    out.push({ kind: 'entryEnd' });
    this.padLeft = this.cur!.pad;
    this.cur = undefined;
    this.state = this.padLeft > 0 ? 'pad' : 'header';
  }
}

function pad(n: number): number {
  return (BLOCK - (n % BLOCK)) % BLOCK;
}

/** Go's test: a GNU sparse version it knows, or a 0.0/0.1 map without version records. */
function isPaxSparse(pax: PaxRecords): boolean {
  const major = pax.get('GNU.sparse.major')?.toString('latin1');
  const minor = pax.get('GNU.sparse.minor')?.toString('latin1');
  if (major === '0' && (minor === '0' || minor === '1')) return true;
  if (major === '1' && minor === '0') return true;
  if (major !== undefined || minor !== undefined) return false;
  return (pax.get(SPARSE_MAP)?.length ?? 0) > 0;
}
