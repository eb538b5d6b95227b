// The --prefetch modes, apart from the prefetcher: the command line checks them before it
// loads anything that serves a mount (the -d parent never does).
import { ErrorCodes, StargzError } from '../errors.js';

export type PrefetchMode = 'none' | 'landmark' | 'all';
export const PREFETCH_MODES: readonly PrefetchMode[] = ['none', 'landmark', 'all'];

export function parsePrefetchMode(text: string | undefined): PrefetchMode {
  const mode = (text ?? 'landmark') as PrefetchMode;
  if (!PREFETCH_MODES.includes(mode)) {
    throw new StargzError(ErrorCodes.USAGE, `--prefetch must be one of ${PREFETCH_MODES.join(', ')}, got ${JSON.stringify(text)}`);
  }
  return mode;
}
