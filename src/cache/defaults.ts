// Where the cache lives and how big it may grow unless told otherwise: stated once here.
import { homedir } from 'node:os';
import { isAbsolute, join } from 'node:path';

/** Bound on stored chunk bytes when none is given. */
export const DEFAULT_CACHE_MAX_BYTES = 10 * 1024 ** 3;

/** $XDG_CACHE_HOME/stargz-get, else ~/.cache/stargz-get. */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_CACHE_HOME;
  // The XDG spec says a relative value is invalid and must be ignored.
  if (xdg && isAbsolute(xdg)) return join(xdg, 'stargz-get');
  return join(homedir(), '.cache', 'stargz-get');
}
