// A source blob handed out as byte ranges in order, each streamed as it arrives (an upload
// PATCH sends it on at once: nothing here holds more than one piece of the body), hashed once
// per byte. The body is one streaming GET: a range that starts where the last one stopped
// continues it; one that starts elsewhere (an upload resuming from what the target
// acknowledged) opens the body again there (a Range GET), as does a body that breaks midway.
import { createHash, type Hash } from 'node:crypto';
import { ErrorCodes, StargzError, toStargzError } from '../errors.js';
import type { RegistryClient } from '../registry/client.js';
import type { Descriptor } from '../registry/manifest.js';

export class BlobReader {
  /** Bytes [0, hashed) went into the digest, each once. */
  private hashed = 0;
  /** The offset the open body (or the next one opened) yields next. */
  private position = 0;
  private readonly hash: Hash = createHash('sha256');
  private iterator: AsyncIterator<Buffer> | undefined;
  private stream: NodeJS.ReadableStream | undefined;
  private pending: Buffer | undefined;
  private reopened = 0;

  constructor(
    private readonly client: RegistryClient,
    private readonly repository: string,
    private readonly blob: Descriptor,
    /** Times a broken body is opened again from where it broke (the client's --retries). */
    private readonly maxReopens: number,
    private readonly signal?: AbortSignal,
  ) {}

  /** Bytes [offset, offset+length) of the blob, in the body's own pieces (16-64 KiB). */
  async *range(offset: number, length: number): AsyncGenerator<Buffer> {
    if (offset < 0 || length < 0 || offset + length > this.blob.size || offset > this.hashed) throw new RangeError(`blob range ${offset}+${length} out of order`);
    if (offset !== this.position) {
      this.close();
      this.position = offset;
    }
    for (let left = length; left > 0; ) {
      const piece = await this.nextPiece(left);
      // Bytes sent again after a resume are in the digest already.
      const fresh = this.position + piece.length - this.hashed;
      if (fresh > 0) {
        this.hash.update(piece.subarray(piece.length - fresh));
        this.hashed += fresh;
      }
      this.position += piece.length;
      left -= piece.length;
      yield piece;
    }
  }

  /** After the last range: the bytes must be the descriptor's. */
  verify(): void {
    const got = `sha256:${this.hash.digest('hex')}`;
    if (this.hashed !== this.blob.size || got !== this.blob.digest) {
      throw new StargzError(ErrorCodes.DIGEST_MISMATCH, `blob ${this.repository}@${this.blob.digest}: the source sent ${this.hashed} bytes that hash to ${got}`);
    }
  }

  close(): void {
    const s = this.stream as (NodeJS.ReadableStream & { destroy?: () => void }) | undefined;
    s?.destroy?.();
    this.stream = undefined;
    this.iterator = undefined;
    this.pending = undefined;
  }

  /** At most `max` bytes from `position` on. */
  private async nextPiece(max: number): Promise<Buffer> {
    let piece = this.pending;
    this.pending = undefined;
    while (piece === undefined) {
      try {
        this.iterator ??= await this.open();
        const { value, done } = await this.iterator.next();
        if (done) throw new StargzError(ErrorCodes.REGISTRY_PROTOCOL, `blob ${this.repository}@${this.blob.digest}: the body ended at byte ${this.position} of ${this.blob.size}`, { retryable: true });
        piece = value;
      } catch (e) {
        const err = toStargzError(e);
        this.close();
        if (!err.retryable || this.reopened >= this.maxReopens || this.signal?.aborted) throw err;
        this.reopened++;
      }
    }
    if (piece.length > max) {
      this.pending = piece.subarray(max);
      return piece.subarray(0, max);
    }
    return piece;
  }

  private async open(): Promise<AsyncIterator<Buffer>> {
    this.stream = await this.client.openBlobStream(this.repository, this.blob.digest, this.signal, this.blob.size, this.position);
    return (this.stream as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  }
}
