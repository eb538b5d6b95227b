// `stargz-get mount` and `stargz-get umount`.
// mount serves in the foreground until SIGINT/SIGTERM or an unmount; with -d it starts itself
// again as a detached child (stdio to a log file), hands it the options over an IPC channel
// (so a password never shows in argv), and returns once the child says the mount is ready.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ErrorCodes, StargzError, redact, toStargzError, type ErrorCode } from '../../errors.js';
import { formatReference, parseReference } from '../../reference/reference.js';
import { openImage, type OpenedImage } from '../../image/open-image.js';
import { defaultCacheDir } from '../../cache/disk-cache.js';
import { parsePrefetchMode, type PrefetchResult } from '../../prefetch/prefetch.js';
import { prepareMountpoint } from '../../mount/mountpoint.js';
import { serveImage } from '../../mount/serve.js';
import { isFuse, mountAt } from '../../mount/mountinfo.js';
import { unmountPath } from '../../mount/unmount.js';
import { findServers, isAlive, mountName, mountsDir, removeMountRecord, writeMountRecord } from '../../mount/mount-records.js';
import { openOptionsFrom, type CommonFlags } from '../common.js';
import { resolveCredentials } from '../credentials.js';
import { formatBytes } from '../format.js';
import type { CliIo } from '../io.js';

export interface MountFlags extends CommonFlags {
  detach?: boolean;
  allowOther?: boolean;
  prefetch?: string;
  logFile?: string;
}

/** Set in the environment of the detached child; its options arrive over IPC. */
const CHILD_ENV = 'STARGZ_GET_MOUNT_CHILD';
/** Per-request deadline while mounted: with the client's bounded retries, a read gives up in time. */
const MOUNT_REQUEST_TIMEOUT_MS = 10_000;
/** Range requests in flight unless --concurrency says otherwise (sync's default is 8). */
const MOUNT_CONCURRENCY = 16;

type ChildMessage = { type: 'ready'; pid: number } | { type: 'error'; code: ErrorCode; message: string };
type ParentMessage = { type: 'start'; flags: MountFlags };

export async function mountCommand(ref: string, mountpoint: string, flags: MountFlags, io: CliIo): Promise<void> {
  const abs = resolve(mountpoint);
  try {
    if (process.env[CHILD_ENV] === '1' && process.send) {
      delete process.env[CHILD_ENV];
      await serveAsDetachedChild(ref, abs, io);
    } else {
      parsePrefetchMode(flags.prefetch); // a bad mode fails here, not in a background process
      if (flags.detach) await detach(ref, abs, flags, io);
      else await runMount(ref, abs, flags, io, () => undefined);
    }
  } finally {
    exitSafetyNet();
  }
}

/** Mounts, serves until told to stop or unmounted from outside, and cleans up. */
async function runMount(ref: string, abs: string, flags: MountFlags, io: CliIo, onReady: () => void): Promise<void> {
  const mode = parsePrefetchMode(flags.prefetch);
  const imageRef = parseReference(ref);
  const notice = (m: string): void => io.notice(m);
  await prepareMountpoint(abs, notice);
  const opts = await openOptionsFrom(flags, imageRef, notice, io.signal);
  opts.requestTimeoutMs ??= MOUNT_REQUEST_TIMEOUT_MS;
  // A mount fetches ahead of readers walking many files: more connections keep a long link busy.
  opts.concurrency ??= MOUNT_CONCURRENCY;
  const image = await openImage(imageRef, opts);
  let record: string | undefined;
  try {
    if (io.signal.aborted) throw new StargzError(ErrorCodes.ABORTED, 'interrupted before the mount was ready');
    const serving = await serveImage(image, {
      mountpoint: abs,
      fsName: formatReference(imageRef),
      allowOther: flags.allowOther ?? false,
      prefetch: mode,
      debug: Boolean(process.env.STARGZ_GET_FUSE_DEBUG),
      log: notice,
    });
    try {
      record = writeMountRecord(image.disk.dir, {
        pid: process.pid,
        ref: formatReference(imageRef),
        mountpoint: abs,
        ...(flags.logFile ? { logFile: flags.logFile } : {}),
        startedAt: new Date().toISOString(),
      });
    } catch (err) {
      notice(`cannot write the mount record: ${(err as Error).message}`);
    }
    io.out(`mounted ${formatReference(imageRef)} at ${abs}`);
    onReady();
    // The inflate workers take a while to start: not before the mount is ready, but before the first read.
    image.ctx.inflater?.warm();
    if (mode !== 'none') void serving.prefetched.then((r) => notice(prefetchSummary(r)));
    const how = await Promise.race([serving.ended, whenAborted(io.signal)]);
    await serving.stop();
    notice(how === 'unmounted' ? `${abs} was unmounted` : `unmounted ${abs}`);
    notice(fetchSummary(image));
  } finally {
    if (record) removeMountRecord(record);
    await image.close();
  }
}

function fetchSummary(image: OpenedImage): string {
  const c = image.client.stats;
  const l = image.ctx.stats;
  return `fetched ${formatBytes(c.blobBytesReceived)} in ${c.requests} requests (${l.rangeRequests} ranges, ${l.chunksFetched} chunks; ${l.chunkCacheHits} chunks from cache)`;
}

function prefetchSummary(r: PrefetchResult): string {
  const what = `prefetch (${r.mode}): ${r.chunks} chunks, ${formatBytes(r.bytes)} in ${(r.ms / 1000).toFixed(1)}s`;
  return r.stopped ? `${what}, stopped early` : r.failedBatches > 0 ? `${what}, ${r.failedBatches} batches failed` : what;
}

function whenAborted(signal: AbortSignal): Promise<'signal'> {
  return new Promise((resolveAbort) => {
    if (signal.aborted) return resolveAbort('signal');
    signal.addEventListener('abort', () => resolveAbort('signal'), { once: true });
  });
}

// ---- -d/--detach: the parent side ----

function cliEntry(): string {
  const bin = fileURLToPath(new URL('../../../../bin/stargz-get', import.meta.url));
  return existsSync(bin) ? bin : process.argv[1]!;
}

async function detach(ref: string, abs: string, flags: MountFlags, io: CliIo): Promise<void> {
  const cacheDir = resolve(flags.cacheDir ?? defaultCacheDir());
  const logFile = resolve(flags.logFile ?? join(mountsDir(cacheDir), `${mountName(abs)}.log`));
  mkdirSync(dirname(logFile), { recursive: true });
  let childFlags: MountFlags = { ...flags, detach: false, cacheDir, logFile };
  if (flags.passwordStdin) {
    // The child has no stdin: read the password here and hand it over the IPC channel.
    const creds = await resolveCredentials(flags, parseReference(ref).registry);
    childFlags = { ...childFlags, passwordStdin: false, username: creds?.username, password: creds?.password };
  }
  const fd = openSync(logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(process.execPath, [cliEntry(), 'mount', ref, abs], {
      detached: true, // its own session: the terminal's Ctrl-C and hangup do not reach it
      cwd: '/', // keep no directory busy
      stdio: ['ignore', fd, fd, 'ipc'],
      env: { ...process.env, [CHILD_ENV]: '1' },
    });
  } finally {
    closeSync(fd);
  }
  const pid = await waitForReady(child, { type: 'start', flags: childFlags }, logFile, io.signal);
  io.out(`mounted ${formatReference(parseReference(ref))} at ${abs}`);
  if (!flags.quiet) io.err(`serving from process ${pid}, log in ${logFile}; stop with: stargz-get umount ${abs}`);
}

function waitForReady(child: ChildProcess, start: ParentMessage, logFile: string, signal: AbortSignal): Promise<number> {
  return new Promise<number>((resolveReady, reject) => {
    // No deadline of our own: opening the image may download a big non-eStargz layer whole,
    // and every step of the child is bounded (request timeouts, retries); if it dies, 'exit' fires.
    const done = (err: StargzError | undefined, pid?: number): void => {
      signal.removeEventListener('abort', onAbort);
      child.removeAllListeners('message').removeAllListeners('exit').removeAllListeners('error');
      if (child.connected) child.disconnect();
      child.unref();
      if (err) reject(err);
      else resolveReady(pid!);
    };
    const onAbort = (): void => {
      child.kill('SIGTERM');
      done(new StargzError(ErrorCodes.ABORTED, 'interrupted before the mount was ready'));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    child.on('message', (m: ChildMessage) => {
      if (m.type === 'ready') done(undefined, m.pid);
      else if (m.type === 'error') done(new StargzError(m.code, m.message));
    });
    child.on('exit', (code, sig) => {
      done(new StargzError(ErrorCodes.FUSE, `the mount process exited (${sig ?? `status ${code}`}) before the mount was ready: ${lastLine(logFile)}`));
    });
    child.on('error', (err) => done(new StargzError(ErrorCodes.FUSE, `cannot start the mount process: ${err.message}`, { cause: err })));
    child.send(start);
  });
}

function lastLine(file: string): string {
  try {
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    return lines[lines.length - 1] ?? '';
  } catch {
    return `see ${file}`;
  }
}

// ---- -d/--detach: the child side ----

async function serveAsDetachedChild(ref: string, abs: string, io: CliIo): Promise<void> {
  const flags = await receiveStart();
  const stamped: CliIo = { ...io, notice: (line) => io.err(`${new Date().toISOString()} ${line}`) };
  const tell = (m: ChildMessage): Promise<void> =>
    new Promise((r) => {
      if (!process.connected || !process.send) return r();
      process.send(m, undefined, {}, () => {
        if (process.connected) process.disconnect();
        r();
      });
    });
  try {
    await runMount(ref, abs, flags, stamped, () => void tell({ type: 'ready', pid: process.pid }));
  } catch (err) {
    const e = toStargzError(err);
    // Only this process knows the secrets (the parent may never have read them): scrub here.
    await tell({ type: 'error', code: e.code, message: redact(e.message) });
    throw err; // main logs it (into the log file) and sets the exit status
  }
}

function receiveStart(): Promise<MountFlags> {
  return new Promise((resolveStart, reject) => {
    const timer = setTimeout(() => reject(new StargzError(ErrorCodes.USAGE, 'no options received from the parent process')), 30_000);
    process.once('message', (m: ParentMessage) => {
      clearTimeout(timer);
      if (m?.type === 'start') resolveStart(m.flags);
      else reject(new StargzError(ErrorCodes.USAGE, 'unexpected message from the parent process'));
    });
  });
}

/**
 * The mount is gone and everything is closed; if a library handle still holds the event
 * loop (fuse-native's thread bookkeeping), do not linger as a zombie server.
 */
function exitSafetyNet(): void {
  setTimeout(() => process.exit(process.exitCode ?? 0), 3000).unref();
}

// ---- umount ----

export async function umountCommand(mountpoint: string, io: CliIo): Promise<void> {
  const abs = resolve(mountpoint);
  const m = await mountAt(abs);
  if (!m) throw new StargzError(ErrorCodes.FUSE, `${abs} is not mounted`);
  if (!isFuse(m)) throw new StargzError(ErrorCodes.FUSE, `${abs} is not a FUSE mount (it is ${m.fsType})`);
  const servers = findServers(abs, defaultCacheDir());
  await unmountPath(abs);
  // The server notices the unmount by itself; wait for it so the cache is quiet when we return.
  for (const pid of servers) {
    if (await waitForExit(pid, 10_000)) continue;
    io.notice(`process ${pid} still serving after the unmount; sending SIGTERM`);
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      /* gone meanwhile */
    }
    await waitForExit(pid, 5_000);
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
