// Unmounting and probing FUSE mounts with the system's tools. Both run in child processes,
// so a hung or dead mount can only cost a bounded wait, never block our event loop.
import { execFile } from 'node:child_process';
import { ErrorCodes, StargzError } from '../errors.js';
import { errnoCode } from '../util/errno-code.js';
import { mountAt } from './mountinfo.js';

const TOOL_TIMEOUT_MS = 10_000;
const PROBE_TIMEOUT_MS = 5_000;

interface RunResult {
  ok: boolean;
  missing: boolean;
  stderr: string;
  timedOut: boolean;
}

function run(cmd: string, args: string[], timeoutMs: number): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, killSignal: 'SIGKILL', env: { ...process.env, LC_ALL: 'C' } }, (err, _stdout, stderr) => {
      resolve({
        ok: !err,
        missing: errnoCode(err) === 'ENOENT',
        stderr: String(stderr).trim(),
        timedOut: Boolean(err?.killed),
      });
    });
  });
}

export interface UnmountOptions {
  /** Detach now even if busy (umount -l): for cleaning up dead mounts and for shutdown. */
  lazy?: boolean;
}

/**
 * Unmounts absPath with fusermount, then fusermount3, then umount (whichever exists and
 * works). Resolves once nothing is mounted there (at once if nothing was).
 */
export async function unmountPath(absPath: string, options: UnmountOptions = {}): Promise<void> {
  if (!(await mountAt(absPath))) return;
  const attempts: Array<[string, string[]]> = options.lazy
    ? [['fusermount', ['-uz', absPath]], ['fusermount3', ['-uz', absPath]], ['umount', ['-l', absPath]]]
    : [['fusermount', ['-u', absPath]], ['fusermount3', ['-u', absPath]], ['umount', [absPath]]];
  const reasons: string[] = [];
  for (const [cmd, args] of attempts) {
    const r = await run(cmd, args, TOOL_TIMEOUT_MS);
    if (!(await mountAt(absPath))) return;
    if (!r.missing) reasons.push(r.stderr || (r.timedOut ? `${cmd} timed out` : `${cmd} failed`));
  }
  const why = reasons.find((m) => /busy/i.test(m)) ?? reasons[0] ?? 'no fusermount, fusermount3 or umount found';
  throw new StargzError(ErrorCodes.FUSE, `cannot unmount ${absPath}: ${why}`);
}

/**
 * Whether the FUSE mount at absPath still has a server: 'dead' when the kernel answers
 * "Transport endpoint is not connected" (its process was killed), 'hung' when it does not
 * answer in time.
 */
export async function probeMount(absPath: string): Promise<'alive' | 'dead' | 'hung'> {
  const r = await run('stat', ['-c', '%i', '--', absPath], PROBE_TIMEOUT_MS);
  if (r.ok) return 'alive';
  if (r.timedOut) return 'hung';
  return /not connected/i.test(r.stderr) ? 'dead' : 'alive';
}
