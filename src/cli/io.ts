// The CLI's connection to the outside world, passed to every command so tests and the
// binary share one code path.
export interface CliIo {
  out(line: string): void;
  err(line: string): void;
  /** A one-line notice to the user (stderr), e.g. "layer 0 is not eStargz". */
  notice(line: string): void;
  errStream: NodeJS.WriteStream;
  /** stdout is a terminal: image-controlled names are quoted (ls) and control characters escaped. */
  outIsTTY: boolean;
  signal: AbortSignal;
}
