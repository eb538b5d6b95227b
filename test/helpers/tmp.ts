// Temporary directories for tests, and a last-resort cleanup of what the helpers started:
// if a test process dies or forgets a stop(), registries must not outlive it.
import { mkdtemp, rm } from 'node:fs/promises';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A fresh empty directory under the system temp dir, e.g. makeTempDir('sync-') → /tmp/sgz-sync-XXXXXX. */
export async function makeTempDir(prefix = 'tmp-'): Promise<string> {
  return mkdtemp(join(tmpdir(), 'sgz-' + prefix));
}

/** Removes a directory tree; missing is fine. */
export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true, maxRetries: 3 });
}

/** The part of node:test's TestContext / SuiteContext that we need. */
export interface HasAfter {
  after(fn: () => unknown): void;
}

/** Runs fn when the test (or suite) ends, e.g. `onCleanup(t, () => reg.stop())`. */
export function onCleanup(t: HasAfter, fn: () => unknown): void {
  t.after(async () => {
    await fn();
  });
}

/** makeTempDir + removal when the test ends. */
export async function tempDirFor(t: HasAfter, prefix = 'tmp-'): Promise<string> {
  const dir = await makeTempDir(prefix);
  onCleanup(t, () => removeDir(dir));
  return dir;
}

// ---- emergency cleanup of child processes and their dirs (normal path: stop()) ----

const livePids = new Set<number>();
const liveDirs = new Set<string>();
let hooked = false;

function emergencyCleanup(): void {
  for (const pid of livePids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  livePids.clear();
  for (const dir of liveDirs) rmSync(dir, { recursive: true, force: true });
  liveDirs.clear();
}

function hook(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', emergencyCleanup);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      emergencyCleanup();
      process.kill(process.pid, sig); // handler was `once`: the default action now ends us
    });
  }
}

/** Remember a child pid to SIGKILL if this process exits without stopping it. */
export function trackPid(pid: number): void {
  hook();
  livePids.add(pid);
}
export function untrackPid(pid: number): void {
  livePids.delete(pid);
}
/** Remember a dir to remove if this process exits without cleaning it. */
export function trackDir(dir: string): void {
  hook();
  liveDirs.add(dir);
}
export function untrackDir(dir: string): void {
  liveDirs.delete(dir);
}
