// Checks a mountpoint before mounting, and recovers one left behind by a killed server
// ("Transport endpoint is not connected"), which would otherwise break every later mount
// and every shell that touches it.
import { readdir, stat } from 'node:fs/promises';
import { ErrorCodes, StargzError } from '../errors.js';
import { errnoCode } from '../util/errno-code.js';
import { isFuse, mountAt } from './mountinfo.js';
import { probeMount, unmountPath } from './unmount.js';

/** Throws USAGE for a missing, non-directory or non-empty mountpoint, FUSE for a live mount. */
export async function prepareMountpoint(absPath: string, notice: (line: string) => void): Promise<void> {
  const mounted = await mountAt(absPath);
  if (mounted && isFuse(mounted)) {
    const state = await probeMount(absPath);
    if (state !== 'dead') {
      throw new StargzError(
        ErrorCodes.FUSE,
        `${absPath} is already mounted (${mounted.source}, ${mounted.fsType})${state === 'hung' ? ' and does not answer' : ''}; unmount it first`,
      );
    }
    notice(`${absPath}: cleaning up a dead mount left by a killed process`);
    await unmountPath(absPath, { lazy: true });
  }
  let st;
  try {
    st = await stat(absPath);
  } catch (err) {
    const code = errnoCode(err);
    throw new StargzError(ErrorCodes.USAGE, `mountpoint ${absPath} ${code === 'ENOENT' ? 'does not exist' : `cannot be used (${code})`}`, { cause: err });
  }
  if (!st.isDirectory()) throw new StargzError(ErrorCodes.USAGE, `mountpoint ${absPath} is not a directory`);
  if ((await readdir(absPath)).length > 0) {
    throw new StargzError(ErrorCodes.USAGE, `mountpoint ${absPath} is not empty (mounting would hide its files)`);
  }
}
