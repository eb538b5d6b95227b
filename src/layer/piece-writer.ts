// A plain layer's file into the content-addressed chunk cache as pieces of at most
// PLAIN_PIECE_SIZE. Bytes arrive at file offsets; a jump (a sparse file's hole) ends the piece,
// so holes never become cached zero pieces: the chunks cover the data regions only.
import { sha256Digest } from '../util/digest.js';
import { Piece, type ChunkRef } from '../file-index/index.js';

/** Size of the pieces a plain layer's files are cached in. */
export const PLAIN_PIECE_SIZE = 1024 * 1024;

export class PieceWriter {
  readonly chunks: ChunkRef[] = [];
  private parts: Buffer[] = [];
  private len = 0;
  private start = 0;

  constructor(
    private readonly put: (digest: string, data: Buffer) => Promise<unknown>,
    private readonly pieceSize = PLAIN_PIECE_SIZE,
  ) {}

  async write(offset: number, buf: Buffer): Promise<void> {
    if (offset !== this.start + this.len) {
      await this.flush();
      this.start = offset;
    }
    while (buf.length > 0) {
      const take = Math.min(buf.length, this.pieceSize - this.len);
      this.parts.push(buf.subarray(0, take));
      this.len += take;
      buf = buf.subarray(take);
      if (this.len === this.pieceSize) await this.flush();
    }
  }

  async flush(): Promise<void> {
    if (this.len === 0) return;
    const data = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.len);
    const digest = sha256Digest(data);
    // Named by digest alone: a piece has no compressed extent of its own.
    this.chunks.push(new Piece(this.start, this.len, digest));
    this.start += this.len;
    this.parts = [];
    this.len = 0;
    await this.put(digest, data);
  }
}
