// A source blob read in order into fixed-size buffers, hashed as it passes. The body is one
// streaming GET; when it breaks midway it is opened again from the byte it broke at (a Range
// GET), so a reset costs one request, not the blob. The caller owns the buffers: nothing
// here holds more than the stream's own small buffers.
import { createHash, type Hash } from 'node:crypto';
import { ErrorCodes, StargzError, toStargzError } from '../errors.js';
import type { RegistryClient } from '../registry/client.js';
import type { Descriptor } from '../registry/manifest.js';

export class BlobReader {
  /** Bytes handed out so far. */
  read = 0;
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

  /** Fills `into` from the blob; returns the filled part (shorter only at the blob's end, empty after it). */
  async fill(into: Buffer): Promise<Buffer> {
    let n = 0;
    while (n < into.length && this.read < this.blob.size) {
      const piece = this.pending ?? (await this.nextPiece());
      const take = Math.min(piece.length, into.length - n);
      piece.copy(into, n, 0, take);
      this.pending = take < piece.length ? piece.subarray(take) : undefined;
      this.hash.update(piece.subarray(0, take));
      n += take;
      this.read += take;
    }
    if (this.read === this.blob.size && this.pending === undefined) this.close();
    return into.subarray(0, n);
  }

  /** After the last fill: the bytes must be the descriptor's (size is bounded by the client already). */
  verify(): void {
    const got = `sha256:${this.hash.digest('hex')}`;
    if (this.read !== this.blob.size || got !== this.blob.digest) {
      throw new StargzError(ErrorCodes.DIGEST_MISMATCH, `blob ${this.repository}@${this.blob.digest}: the source sent ${this.read} bytes that hash to ${got}`);
    }
  }

  close(): void {
    const s = this.stream as (NodeJS.ReadableStream & { destroy?: () => void }) | undefined;
    s?.destroy?.();
    this.stream = undefined;
    this.iterator = undefined;
  }

  private async nextPiece(): Promise<Buffer> {
    for (;;) {
      try {
        this.iterator ??= await this.open();
        const { value, done } = await this.iterator.next();
        if (!done) return value;
        throw new StargzError(ErrorCodes.REGISTRY_PROTOCOL, `blob ${this.repository}@${this.blob.digest}: the body ended after ${this.read} of ${this.blob.size} bytes`, { retryable: true });
      } catch (e) {
        const err = toStargzError(e);
        this.close();
        if (!err.retryable || this.reopened >= this.maxReopens || this.signal?.aborted) throw err;
        this.reopened++;
      }
    }
  }

  private async open(): Promise<AsyncIterator<Buffer>> {
    this.stream = await this.client.openBlobStream(this.repository, this.blob.digest, this.signal, this.blob.size, this.read);
    return (this.stream as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  }
}
