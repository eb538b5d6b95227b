// Where the cache lives unless told otherwise (its size bound is config.ts's cacheMaxBytes).
import { homedir } from 'node:os';
import { isAbsolute, join } from 'node:path';

/** $XDG_CACHE_HOME/stargz-get, else ~/.cache/stargz-get. */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_CACHE_HOME;
  // The XDG spec says a relative value is invalid and must be ignored.
  if (xdg && isAbsolute(xdg)) return join(xdg, 'stargz-get');
  return join(homedir(), '.cache', 'stargz-get');
}
