// Writing a tar stream: tar-stream (pack) does the ustar headers, padding and the end marker;
// this adds what it cannot write exactly — PAX records with binary values (SCHILY.xattr.*),
// sub-second or out-of-range mtimes, large owners and names that ustar cannot hold — as one
// PAX header of our own before the entry, so tar-stream never emits a second (Go's archive/tar
// keeps only the last of two). Bytes are written with backpressure from the consumer.
import { once } from 'node:events';
import type { Readable } from 'node:stream';
import tar from 'tar-stream';
import { ErrorCodes, StargzError } from '../errors.js';

export type TarPack = tar.Pack;
export type EntryType = 'file' | 'link' | 'symlink' | 'directory' | 'block-device' | 'character-device' | 'fifo';

export interface TarEntry {
  name: string;
  type: EntryType;
  mode: number;
  uid: number;
  gid: number;
  uname?: string;
  gname?: string;
  mtimeMs: number;
  size: number;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  /** Written as SCHILY.xattr.NAME records, values as raw bytes. */
  xattrs?: Record<string, Buffer>;
}

/** The largest number a ustar octal field of `digits` holds. */
const octalMax = (digits: number): number => 8 ** digits - 1;
const USTAR_NAME = 100;
const USTAR_PREFIX = 155;

const isAscii = (s: string): boolean => /^[\x20-\x7e]*$/.test(s);

/** Whether ustar's name (100) + prefix (155), split at a '/', holds `name` as tar-stream splits it. */
function fitsUstar(name: string): boolean {
  if (!isAscii(name)) return false;
  let rest = name;
  let prefix = '';
  while (rest.length > USTAR_NAME) {
    const i = rest.indexOf('/');
    if (i === -1) return false;
    prefix += prefix ? '/' + rest.slice(0, i) : rest.slice(0, i);
    rest = rest.slice(i + 1);
  }
  return rest.length <= USTAR_NAME && prefix.length <= USTAR_PREFIX;
}

/** One PAX record, `LEN KEY=VALUE\n`, LEN counting the whole record in bytes (the value may be binary). */
export function paxRecord(key: string, value: string | Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`), typeof value === 'string' ? Buffer.from(value) : value, Buffer.from('\n')]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len)), body]);
}

/** PAX seconds with up to nanosecond precision, as GNU tar writes them. */
function paxTime(ms: number): string {
  const sec = Math.floor(ms / 1000);
  const frac = ms - sec * 1000;
  return frac === 0 ? String(sec) : `${sec}.${String(Math.round(frac * 1e6)).padStart(9, '0').replace(/0+$/, '')}`;
}

/** The PAX records `entry` needs beyond what its ustar header can say (none for most entries). */
export function paxRecordsFor(entry: TarEntry, name: string): Buffer[] {
  const out: Buffer[] = [];
  const dirName = entry.type === 'directory' && !name.endsWith('/') ? name + '/' : name;
  if (!fitsUstar(dirName)) out.push(paxRecord('path', dirName));
  if (entry.linkname !== undefined && (!isAscii(entry.linkname) || entry.linkname.length > USTAR_NAME)) out.push(paxRecord('linkpath', entry.linkname));
  if (entry.mtimeMs % 1000 !== 0 || entry.mtimeMs < 0 || entry.mtimeMs / 1000 > octalMax(11)) out.push(paxRecord('mtime', paxTime(entry.mtimeMs)));
  if (entry.uid > octalMax(7)) out.push(paxRecord('uid', String(entry.uid)));
  if (entry.gid > octalMax(7)) out.push(paxRecord('gid', String(entry.gid)));
  if (entry.size > octalMax(11)) out.push(paxRecord('size', String(entry.size)));
  if (entry.uname !== undefined && (!isAscii(entry.uname) || entry.uname.length > 31)) out.push(paxRecord('uname', entry.uname));
  if (entry.gname !== undefined && (!isAscii(entry.gname) || entry.gname.length > 31)) out.push(paxRecord('gname', entry.gname));
  for (const [key, value] of Object.entries(entry.xattrs ?? {})) out.push(paxRecord(`SCHILY.xattr.${key}`, value));
  return out;
}

/** `n` as a NUL-terminated octal field of `width` bytes. */
function octalField(block: Buffer, offset: number, width: number, n: number): void {
  block.write(n.toString(8).padStart(width - 1, '0') + '\0', offset, width, 'ascii');
}

/**
 * Pushes a PAX extended header (typeflag 'x': its 512-byte ustar block and the records, padded
 * to 512) straight into the pack, between two entries. tar-stream writes PAX records only as
 * UTF-8 strings and gives a 'pax-header' entry no body, so binary xattr values need this.
 */
function pushPaxHeader(pack: TarPack, name: string, records: Buffer): void {
  const block = Buffer.alloc(512);
  block.write(name.slice(0, USTAR_NAME), 0, USTAR_NAME, 'ascii');
  octalField(block, 100, 8, 0o644);
  octalField(block, 108, 8, 0);
  octalField(block, 116, 8, 0);
  octalField(block, 124, 12, records.length);
  octalField(block, 136, 12, 0);
  block.write('x', 156, 'ascii');
  block.write('ustar\x0000', 257, 'latin1');
  block.fill(0x20, 148, 156); // the checksum is summed with its own field as spaces
  let sum = 0;
  for (const b of block) sum += b;
  block.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'ascii');
  const padding = (512 - (records.length % 512)) % 512;
  pack.push(Buffer.concat([block, records, Buffer.alloc(padding)]));
}

/** A name ustar can hold, for readers that ignore PAX: printable ASCII, its last 100 bytes. */
function fallbackName(name: string): string {
  const ascii = name.replace(/[^\x20-\x7e]/g, '_');
  return ascii.length <= USTAR_NAME ? ascii : ascii.slice(-USTAR_NAME).replace(/^\/+/, '');
}

function clampOctal(n: number, digits: number): number {
  return n < 0 || n > octalMax(digits) ? 0 : n;
}

type EntrySink = ReturnType<tar.Pack['entry']>;

/** streamx's end() (its typing wants an argument it does not need). */
const endEntry = (sink: EntrySink): void => void (sink as unknown as { end(): void }).end();

async function writeAll(sink: EntrySink, data: AsyncIterable<Buffer>, signal?: AbortSignal): Promise<number> {
  let n = 0;
  for await (const chunk of data) {
    signal?.throwIfAborted();
    n += chunk.length;
    if (!sink.write(chunk)) await Promise.race([once(sink as never, 'drain'), once(sink as never, 'close')]);
    // The pack was destroyed (its consumer failed: disk full, a closed pipe): stop reading the body.
    if ((sink as unknown as { destroying: boolean }).destroying) throw new StargzError(ErrorCodes.ABORTED, 'the tar was abandoned');
  }
  return n;
}

/**
 * Adds one entry to `pack`: `body` (a file's bytes, exactly `entry.size` of them) is streamed
 * in with backpressure. Resolves once tar-stream took the entry.
 */
export async function addTarEntry(pack: TarPack, entry: TarEntry, body?: Readable | AsyncIterable<Buffer>, signal?: AbortSignal): Promise<void> {
  const records = paxRecordsFor(entry, entry.name);
  if (records.length > 0) pushPaxHeader(pack, fallbackName(`PaxHeaders/${entry.name}`), Buffer.concat(records));
  const pathInPax = records.some((r) => r.includes(' path='));
  const linkInPax = records.some((r) => r.includes(' linkpath='));
  const header: tar.Header = {
    name: pathInPax ? fallbackName(entry.name) : entry.name,
    type: entry.type,
    mode: entry.mode & 0o7777,
    uid: clampOctal(entry.uid, 7),
    gid: clampOctal(entry.gid, 7),
    uname: entry.uname !== undefined && isAscii(entry.uname) && entry.uname.length <= 31 ? entry.uname : '',
    gname: entry.gname !== undefined && isAscii(entry.gname) && entry.gname.length <= 31 ? entry.gname : '',
    mtime: new Date(clampOctal(Math.floor(entry.mtimeMs / 1000), 11) * 1000),
    size: entry.type === 'file' ? entry.size : 0,
    linkname: entry.linkname === undefined ? '' : linkInPax ? fallbackName(entry.linkname) : entry.linkname,
    devmajor: entry.devmajor ?? 0,
    devminor: entry.devminor ?? 0,
  };
  const done = new Promise<void>((resolve, reject) => {
    const sink = pack.entry(header, (err) => (err ? reject(err) : resolve()));
    if (entry.type !== 'file' || entry.size === 0) {
      if (body && 'destroy' in body) (body as Readable).destroy();
      endEntry(sink);
      return;
    }
    const fail = (err: Error): void => {
      sink.destroy(err);
      reject(err);
    };
    if (!body) return fail(new StargzError(ErrorCodes.IO, `${entry.name}: no bytes given for a ${entry.size}-byte file`));
    writeAll(sink, body, signal).then(
      // tar-stream would pad a short entry silently: a body that lied about its size is a bug here.
      (n) => (n === entry.size ? endEntry(sink) : fail(new StargzError(ErrorCodes.IO, `${entry.name}: ${n} bytes for a ${entry.size}-byte entry`))),
      fail,
    );
  });
  await done;
}

export function createTarPack(): TarPack {
  return tar.pack();
}
