// The writable end of a plain layer's stream: tar bytes into TarReader, each entry handed to
// a handler that receives the entry's data at file offsets. Bytes after the end of archive are
// consumed and ignored (the blob digest upstream still covers them).
import { Writable } from 'node:stream';
import { TarReader, type TarEntry, type TarLimits } from '../tar/reader.js';

export interface EntryBody {
  /** A data region's bytes at `offset` in the file (sparse files: only their data regions). */
  data(offset: number, data: Buffer): Promise<void> | void;
  end(): Promise<void> | void;
}

/** `onEntry` returns undefined to skip an entry's data. */
export function tarSink(onEntry: (entry: TarEntry) => EntryBody | undefined, limits?: Partial<TarLimits>): Writable {
  const reader = new TarReader(limits);
  let body: EntryBody | undefined;
  const feed = async (chunk: Buffer): Promise<void> => {
    for (const ev of reader.write(chunk)) {
      if (ev.kind === 'entry') body = onEntry(ev.entry);
      else if (ev.kind === 'data') await body?.data(ev.offset, ev.data);
      else {
        await body?.end();
        body = undefined;
      }
    }
  };
  return new Writable({
    write(chunk: Buffer, _enc, cb) {
      feed(chunk).then(() => cb(), cb);
    },
    final(cb) {
      try {
        reader.end();
        cb();
      } catch (err) {
        cb(err as Error);
      }
    },
  });
}
