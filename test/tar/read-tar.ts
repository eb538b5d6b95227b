// Test helper: a whole tar through TarReader (in awkward chunk sizes), files rebuilt from
// their data events, holes left as zeros.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { TarReader, type TarEntry, type TarLimits } from '../../src/tar/reader.js';
import { fixturesDir } from '../helpers/paths.js';

export interface ReadFile {
  entry: TarEntry;
  data: Buffer;
  /** [offset, length] of every data event, merged where they touch */
  written: Array<[number, number]>;
}

export function fixtureTar(name: string): Buffer {
  return gunzipSync(readFileSync(join(fixturesDir, 'tars', `${name}.tar.gz`)));
}

export function readTar(tar: Buffer, step = 777, limits?: Partial<TarLimits>): ReadFile[] {
  const reader = new TarReader(limits);
  const out: ReadFile[] = [];
  let cur: ReadFile | undefined;
  for (let i = 0; i < tar.length; i += step) {
    for (const ev of reader.write(tar.subarray(i, i + step))) {
      if (ev.kind === 'entry') out.push((cur = { entry: ev.entry, data: Buffer.alloc(ev.entry.type === 'file' ? ev.entry.size : 0), written: [] }));
      else if (ev.kind === 'data') {
        ev.data.copy(cur!.data, ev.offset);
        const last = cur!.written.at(-1);
        if (last && last[0] + last[1] === ev.offset) last[1] += ev.data.length;
        else cur!.written.push([ev.offset, ev.data.length]);
      }
    }
  }
  reader.end();
  return out;
}

export function byName(files: ReadFile[]): Map<string, ReadFile> {
  return new Map(files.map((f) => [f.entry.name, f]));
}
