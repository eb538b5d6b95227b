// Bytes to stdout with backpressure: each write waits for 'drain' when the pipe is full, and the
// first error of stdout (EPIPE from `| head`, a closed file) stops the copy and is thrown as it
// is, so the caller decides (cat ends quietly on EPIPE; export fails). Stopping early returns
// the source iterator, which destroys the streams it was reading.
import { once } from 'node:events';

export async function writeToStdout(chunks: AsyncIterable<Buffer>): Promise<void> {
  const out = process.stdout;
  let failed: Error | undefined;
  const onError = (err: Error): void => {
    failed = err;
  };
  out.on('error', onError);
  try {
    for await (const chunk of chunks) {
      if (failed) break;
      if (!out.write(chunk)) await Promise.race([once(out, 'drain'), once(out, 'error')]).catch(() => undefined);
      if (failed) break;
    }
  } finally {
    out.off('error', onError);
  }
  if (failed) throw failed;
}
