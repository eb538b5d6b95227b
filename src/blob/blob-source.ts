// Random access to one blob. The layer code reads through this interface only, so it can
// be served by a registry (range GETs) or by a local file (an OCI layout, tests) alike.
import { open } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import type { RegistryClient } from '../registry/client.js';
import { ErrorCodes, StargzError } from '../errors.js';

/** Reads of one blob: from whichever host answers (a BlobSource), or from one host (in verified()). */
export interface BlobReader {
  /** Exactly bytes [offset, offset + length). */
  readRange(offset: number, length: number, signal?: AbortSignal): Promise<Buffer>;
  /** The whole blob as a stream (plain tar+gzip layers); the caller verifies the digest. */
  openStream(signal?: AbortSignal): Promise<Readable>;
}

export interface BlobSource extends BlobReader {
  readonly digest: string;
  readonly size: number;
  /**
   * Runs `attempt` (fetch, inflate, verify) with reads pinned to one host at a time, mirrors
   * first. When the attempt fails because of that host (its bytes do not verify, inflate or
   * parse, or its reads fail: registry/client.ts PASS_OVER_CODES) and another host is left, the
   * host is passed over with one notice and `attempt` runs again against the next; the last
   * host's error is the answer. So a mirror serving a bad blob costs a second fetch, not the
   * read. An attempt must leave nothing of a failed try under a final name (content-addressed
   * cache entries are harmless). A single-host source runs it once.
   */
  verified<T>(attempt: (from: BlobReader) => Promise<T>, signal?: AbortSignal): Promise<T>;
}

function checkBounds(offset: number, length: number, size: number, digest: string): void {
  if (offset < 0 || length < 0 || offset + length > size) {
    throw new StargzError(ErrorCodes.TOC_INVALID, `range ${offset}+${length} lies outside blob ${digest} (${size} bytes)`);
  }
}

export class RegistryBlobSource implements BlobSource {
  constructor(
    private readonly client: RegistryClient,
    private readonly repository: string,
    readonly digest: string,
    readonly size: number,
  ) {}

  readRange(offset: number, length: number, signal?: AbortSignal): Promise<Buffer> {
    checkBounds(offset, length, this.size, this.digest);
    if (length === 0) return Promise.resolve(Buffer.alloc(0));
    return this.client.readBlobRange(this.repository, this.digest, offset, length, signal);
  }

  async openStream(signal?: AbortSignal): Promise<Readable> {
    // Bounded by the descriptor's size: a body that goes on is cut off, not read forever.
    return (await this.client.openBlobStream(this.repository, this.digest, signal, this.size)) as Readable;
  }

  verified<T>(attempt: (from: BlobReader) => Promise<T>, signal?: AbortSignal): Promise<T> {
    return this.client.withBlobHosts(this.repository, this.digest, this.size, (host) =>
      attempt({
        readRange: (offset, length, s) => {
          checkBounds(offset, length, this.size, this.digest);
          return length === 0 ? Promise.resolve(Buffer.alloc(0)) : host.readRange(offset, length, s);
        },
        openStream: async (s) => (await host.openStream(s)) as Readable,
      }), signal);
  }
}

export class FileBlobSource implements BlobSource {
  constructor(
    private readonly path: string,
    readonly digest: string,
    readonly size: number,
  ) {}

  async readRange(offset: number, length: number): Promise<Buffer> {
    checkBounds(offset, length, this.size, this.digest);
    const fh = await open(this.path, 'r');
    try {
      const buf = Buffer.allocUnsafe(length);
      const { bytesRead } = await fh.read(buf, 0, length, offset);
      if (bytesRead !== length) throw new StargzError(ErrorCodes.IO, `short read from ${this.path}`);
      return buf;
    } finally {
      await fh.close();
    }
  }

  async openStream(): Promise<Readable> {
    return createReadStream(this.path);
  }

  /** One file, one try: there is no other host to fall through to. */
  verified<T>(attempt: (from: BlobReader) => Promise<T>): Promise<T> {
    return attempt(this);
  }
}
