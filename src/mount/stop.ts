// Stopping a mount from another process (`stargz-get umount`): unmount it, then wait for the
// process that served it to finish, so its cache is quiet when we return.
import { ErrorCodes, StargzError } from '../errors.js';
import { findServers, isAlive } from './mount-records.js';
import { isFuse, mountAt } from './mountinfo.js';
import { unmountPath } from './unmount.js';

const EXIT_WAIT_MS = 10_000;
const TERM_WAIT_MS = 5_000;

/** Unmounts the FUSE mount at absPath; a server still alive after EXIT_WAIT_MS gets SIGTERM. */
export async function stopMount(absPath: string, cacheDir: string, log: (line: string) => void): Promise<void> {
  const m = await mountAt(absPath);
  if (!m) throw new StargzError(ErrorCodes.FUSE, `${absPath} is not mounted`);
  if (!isFuse(m)) throw new StargzError(ErrorCodes.FUSE, `${absPath} is not a FUSE mount (it is ${m.fsType})`);
  const servers = findServers(absPath, cacheDir);
  await unmountPath(absPath);
  // The server notices the unmount by itself.
  for (const pid of servers) {
    if (await waitForExit(pid, EXIT_WAIT_MS)) continue;
    log(`process ${pid} still serving after the unmount; sending SIGTERM`);
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      /* gone meanwhile */
    }
    await waitForExit(pid, TERM_WAIT_MS);
  }
}

async function waitForExit(pid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (isAlive(pid)) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 100));
  }
  return true;
}
