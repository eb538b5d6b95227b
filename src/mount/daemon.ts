// A mount served from a background process (`mount -d`): the parent starts the same command
// again as a detached child (its own session, cwd /, stdio to a log file), hands it the start
// options over an IPC channel (so a password never shows in argv or the environment), and
// returns once the child says the mount is ready, or fails with the child's error.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ErrorCodes, StargzError, redact, toStargzError, type ErrorCode } from '../errors.js';
import { mountName, mountsDir } from './mount-records.js';

/** Set in the environment of the detached child; its options arrive over IPC. */
const CHILD_ENV = 'STARGZ_GET_MOUNT_CHILD';
/** How long the child waits for its options before giving up. */
const START_TIMEOUT_MS = 30_000;

type ChildMessage = { type: 'ready'; pid: number } | { type: 'error'; code: ErrorCode; message: string };
type ParentMessage<T> = { type: 'start'; options: T };

/** Where a detached mount logs unless told otherwise: <cache-dir>/mounts/<name>.log. */
export function defaultDaemonLog(cacheDir: string, absMountpoint: string): string {
  return join(mountsDir(cacheDir), `${mountName(absMountpoint)}.log`);
}

/** Whether this process is the detached child of startDaemon (and its IPC channel is up). */
export function isDaemonChild(): boolean {
  return process.env[CHILD_ENV] === '1' && typeof process.send === 'function';
}

export interface StartDaemonOptions<T> {
  /** The script the child runs (with process.execPath) and its arguments. */
  entry: string;
  args: string[];
  /** Absolute; the child's stdout and stderr are appended to it. */
  logFile: string;
  /** Handed to the child over IPC: may hold secrets. */
  start: T;
  /** Aborting kills the child and rejects with ABORTED. */
  signal: AbortSignal;
}

/** Starts the child and resolves with its pid once it reports the mount ready. */
export async function startDaemon<T>(o: StartDaemonOptions<T>): Promise<number> {
  mkdirSync(dirname(o.logFile), { recursive: true });
  const fd = openSync(o.logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(process.execPath, [o.entry, ...o.args], {
      detached: true, // its own session: the terminal's Ctrl-C and hangup do not reach it
      cwd: '/', // keep no directory busy
      stdio: ['ignore', fd, fd, 'ipc'],
      env: { ...process.env, [CHILD_ENV]: '1' },
    });
  } finally {
    closeSync(fd);
  }
  return waitForReady(child, { type: 'start', options: o.start }, o.logFile, o.signal);
}

function waitForReady<T>(child: ChildProcess, start: ParentMessage<T>, logFile: string, signal: AbortSignal): Promise<number> {
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

/** A line of the log file: stamped, since a long-lived mount's log is read after the fact. */
export function logLine(line: string): string {
  return `${new Date().toISOString()} ${line}`;
}

/**
 * The child's side: receives the start options, runs `serve` (which calls ready() once the
 * mount is up), and reports ready or the error to the parent. Errors are rethrown, so the
 * caller logs them (into the log file) and sets the exit status.
 */
export async function runAsDaemon<T>(serve: (start: T, ready: () => void) => Promise<void>): Promise<void> {
  delete process.env[CHILD_ENV]; // whatever this process starts is not a daemon child
  const start = await receiveStart<T>();
  try {
    await serve(start, () => void tell({ type: 'ready', pid: process.pid }));
  } catch (err) {
    const e = toStargzError(err);
    // Only this process knows the secrets (the parent may never have read them): scrub here.
    await tell({ type: 'error', code: e.code, message: redact(e.message) });
    throw err;
  }
}

/** Sends one message and lets go of the channel, so the parent can return. */
function tell(m: ChildMessage): Promise<void> {
  return new Promise((r) => {
    if (!process.connected || !process.send) return r();
    process.send(m, undefined, {}, () => {
      if (process.connected) process.disconnect();
      r();
    });
  });
}

function receiveStart<T>(): Promise<T> {
  return new Promise((resolveStart, reject) => {
    const timer = setTimeout(() => reject(new StargzError(ErrorCodes.USAGE, 'no options received from the parent process')), START_TIMEOUT_MS);
    process.once('message', (m: ParentMessage<T>) => {
      clearTimeout(timer);
      if (m?.type === 'start') resolveStart(m.options);
      else reject(new StargzError(ErrorCodes.USAGE, 'unexpected message from the parent process'));
    });
  });
}
