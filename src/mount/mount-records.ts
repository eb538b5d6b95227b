// Which process serves which mountpoint: a small JSON record per mount in the cache
// directory's mounts/ (for people and scripts), and a /proc scan for `umount`, which does not
// know the cache directory a mount was started with.
import { mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { sha256Hex } from '../util/digest.js';
import { errnoCode } from '../util/errno-code.js';

export interface MountRecord {
  pid: number;
  ref: string;
  mountpoint: string;
  logFile?: string;
  startedAt: string;
}

/** A file-name-safe, collision-free name for a mountpoint: readable tail plus a short hash. */
export function mountName(absMountpoint: string): string {
  const readable = absMountpoint.replace(/^\/+/, '').replace(/[^A-Za-z0-9._-]+/g, '_').slice(-80) || 'root';
  return `${readable}-${sha256Hex(absMountpoint).slice(0, 8)}`;
}

export function mountsDir(cacheDir: string): string {
  return join(cacheDir, 'mounts');
}

export function recordPath(cacheDir: string, absMountpoint: string): string {
  return join(mountsDir(cacheDir), `${mountName(absMountpoint)}.json`);
}

export function writeMountRecord(cacheDir: string, record: MountRecord): string {
  const file = recordPath(cacheDir, record.mountpoint);
  mkdirSync(mountsDir(cacheDir), { recursive: true });
  writeFileSync(file, JSON.stringify(record, null, 2) + '\n');
  return file;
}

export function removeMountRecord(file: string): void {
  rmSync(file, { force: true });
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return errnoCode(err) === 'EPERM';
  }
}

function cmdlineOf(pid: number): string[] | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((a) => a !== '');
  } catch {
    return undefined;
  }
}

function isStargzGet(argv: string[]): boolean {
  return argv.some((a) => /(^|\/)stargz-get$/.test(a) || a.endsWith('/cli/main.js'));
}

/**
 * Processes serving absMountpoint: from the records in cacheDir (when the pid still runs
 * stargz-get), else by scanning /proc for `stargz-get mount ... DIR` whose DIR, taken
 * relative to that process's working directory, is absMountpoint.
 */
export function findServers(absMountpoint: string, cacheDir?: string): number[] {
  const found = new Set<number>();
  if (cacheDir) {
    try {
      const rec = JSON.parse(readFileSync(recordPath(cacheDir, absMountpoint), 'utf8')) as MountRecord;
      const argv = cmdlineOf(rec.pid);
      if (rec.mountpoint === absMountpoint && argv && isStargzGet(argv)) found.add(rec.pid);
    } catch {
      /* no record */
    }
  }
  if (found.size > 0) return [...found];
  let entries: string[] = [];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  for (const name of entries) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (pid === process.pid) continue;
    const argv = cmdlineOf(pid);
    if (!argv || !isStargzGet(argv) || !argv.includes('mount')) continue;
    let cwd: string;
    try {
      cwd = readlinkSync(`/proc/${pid}/cwd`); // the dentry's path: asks no FUSE server anything
    } catch {
      continue;
    }
    if (argv.some((a) => resolve(cwd, a) === absMountpoint)) found.add(pid);
  }
  return [...found];
}
