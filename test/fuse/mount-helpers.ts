// Real FUSE mounts for tests, started through the CLI as a user starts them, and torn down
// (lazy unmount, SIGKILL of the server) whatever happened in the test. Everything that looks
// at a mount runs in a child process or in this test process — never in the serving one.
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { cliPath } from '../helpers/paths.js';
import { runCli } from '../helpers/cli.js';
import { trackPid, untrackPid } from '../helpers/tmp.js';
import { recordPath, type MountRecord } from '../../src/mount/mount-records.js';

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs a command to completion (never rejects); killed after timeoutMs. */
export function run(cmd: string, args: string[], timeoutMs = 60_000): Promise<RunResult> {
  const started = Date.now();
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 64 << 20, env: { ...process.env, LC_ALL: 'C' } }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : null) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr), ms: Date.now() - started });
    });
  });
}

/** True when something is mounted exactly at dir (reads mountinfo: never touches the mount). */
export function isMounted(dir: string): boolean {
  const text = readFileSync('/proc/self/mountinfo', 'utf8');
  return text.split('\n').some((line) => line.split(' ')[4]?.replace(/\\040/g, ' ') === dir);
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Children of pid (e.g. the fusermount that watches a mount for auto_unmount). */
export function childrenOf(pid: number): Array<{ pid: number; comm: string }> {
  const out: Array<{ pid: number; comm: string }> = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      const comm = stat.slice(stat.indexOf('(') + 1, close);
      const ppid = Number(stat.slice(close + 2).split(' ')[1]);
      if (ppid === pid) out.push({ pid: Number(name), comm });
    } catch {
      /* gone */
    }
  }
  return out;
}

/**
 * The server's fd numbers of /dev/fuse and of its end of the socket the auto_unmount
 * fusermount3 watches (found as the peer of fusermount3's socket, from `ss -xp`).
 */
export function unmountWatchFds(pid: number): { fuse: number; socket: number } {
  const watcher = childrenOf(pid).find((c) => c.comm.startsWith('fusermount'));
  if (!watcher) throw new Error(`no fusermount watches server ${pid}`);
  const linkOf = (p: number, fd: string): string => readlinkSync(`/proc/${p}/fd/${fd}`);
  const fdsOf = (p: number): string[] => readdirSync(`/proc/${p}/fd`);
  const fuse = fdsOf(pid).find((fd) => linkOf(pid, fd) === '/dev/fuse');
  const watcherInodes = new Set(fdsOf(watcher.pid).map((fd) => /^socket:\[(\d+)\]$/.exec(linkOf(watcher.pid, fd))?.[1]).filter(Boolean));
  // `ss -xpn` lines: u_str ESTAB 0 0 * LOCAL_INODE * PEER_INODE users:(...)
  const ss = spawnSync('ss', ['-xan'], { encoding: 'utf8' });
  if (ss.status !== 0) throw new Error(`ss -xan: ${ss.stderr}`);
  const peers = new Set<string>();
  for (const line of ss.stdout.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length >= 8 && watcherInodes.has(f[5]!)) peers.add(f[7]!);
  }
  const socket = fdsOf(pid).find((fd) => peers.has(/^socket:\[(\d+)\]$/.exec(linkOf(pid, fd))?.[1] ?? ''));
  if (fuse === undefined || socket === undefined) throw new Error(`server ${pid}: /dev/fuse fd ${fuse}, watch socket fd ${socket}`);
  return { fuse: Number(fuse), socket: Number(socket) };
}

export async function waitFor(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 15_000, stepMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

export interface Mount {
  dir: string;
  cacheDir: string;
  pid: number;
  /** Foreground mounts only. */
  child?: ChildProcess;
  /** Foreground mounts only: settles when the process exits. */
  exited?: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Foreground mounts only: everything the process wrote to stderr so far. */
  stderr(): string;
}

/** The mounts a test suite started; cleanup() removes whatever is left of them. */
export class Mounts {
  private readonly all: Mount[] = [];

  /** `stargz-get mount -d`: returns once the CLI says the mount is ready. */
  async detached(ref: string, dir: string, cacheDir: string, extra: string[] = []): Promise<Mount> {
    const r = await runCli(['mount', '-d', '-q', '--plain-http', '--cache-dir', cacheDir, ...extra, ref, dir]);
    if (r.code !== 0) throw new Error(`mount -d exited ${r.code}: ${r.stderr}`);
    if (!r.stdout.includes(`mounted `)) throw new Error(`mount -d said: ${r.stdout} ${r.stderr}`);
    const rec = JSON.parse(readFileSync(recordPath(cacheDir, dir), 'utf8')) as MountRecord;
    trackPid(rec.pid);
    const m: Mount = { dir, cacheDir, pid: rec.pid, stderr: () => (rec.logFile && existsSync(rec.logFile) ? readFileSync(rec.logFile, 'utf8') : '') };
    this.all.push(m);
    return m;
  }

  /** `stargz-get mount` in the foreground, in a child process: resolves once it printed "mounted". */
  async foreground(ref: string, dir: string, cacheDir: string, extra: string[] = []): Promise<Mount> {
    const child = spawn(process.execPath, [cliPath, 'mount', '--plain-http', '--cache-dir', cacheDir, ...extra, ref, dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    trackPid(child.pid!);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.once('exit', (code, signal) => r({ code, signal })));
    const m: Mount = { dir, cacheDir, pid: child.pid!, child, exited, stderr: () => stderr };
    this.all.push(m);
    let gone = false;
    void exited.then(() => (gone = true));
    await waitFor('the mount to be ready', () => {
      if (gone) throw new Error(`mount exited before it was ready: ${stderr}`);
      return stdout.includes('mounted ');
    }, 60_000);
    return m;
  }

  async cleanup(): Promise<void> {
    for (const m of this.all.splice(0)) await forceDown(m);
  }
}

/** Lazy unmount and SIGKILL: for cleanup after a failed test. */
export async function forceDown(m: Mount): Promise<void> {
  if (isMounted(m.dir)) {
    for (const [cmd, args] of [['fusermount', ['-uz', m.dir]], ['fusermount3', ['-uz', m.dir]], ['umount', ['-l', m.dir]]] as const) {
      spawnSync(cmd, [...args], { stdio: 'ignore', timeout: 10_000 });
      if (!isMounted(m.dir)) break;
    }
  }
  if (isAlive(m.pid)) {
    try {
      process.kill(m.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  if (m.exited) await m.exited;
  untrackPid(m.pid);
}

/** sha256 of every regular file under root, keyed by root-relative path, via `find | sha256sum`. */
export async function sha256Tree(root: string): Promise<Map<string, string>> {
  const r = await run('sh', ['-c', 'cd "$1" && find . -type f -print0 | sort -z | xargs -0 -r sha256sum', 'sh', root]);
  if (r.code !== 0) throw new Error(`sha256sum under ${root} failed: ${r.stderr}`);
  const out = new Map<string, string>();
  for (const line of r.stdout.split('\n')) {
    const m = /^([0-9a-f]{64}) {2}\.\/(.*)$/.exec(line);
    if (m) out.set(m[2]!, m[1]!);
  }
  return out;
}
