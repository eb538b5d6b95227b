// Docker credential helpers: `docker-credential-NAME get|store|erase` on PATH, a server URL or
// a JSON document on stdin, JSON on stdout. A helper runs under a deadline in its own process
// group (killed whole, so a hung grandchild cannot hold us), and what it prints is never
// passed on raw: stdout is parsed, stderr only appears scrubbed and cut in an error.
import { spawn } from 'node:child_process';
import { ErrorCodes, StargzError, registerCredentials, registerSecret, scrub } from '../errors.js';
import { errnoCode } from '../util/errno-code.js';

export const DEFAULT_HELPER_TIMEOUT_MS = 10_000;
/** A helper's answer is a few hundred bytes; more is a broken helper. */
const MAX_OUTPUT_BYTES = 64 * 1024;
/** How much of a failing helper's message is shown. */
const MAX_MESSAGE_CHARS = 200;
/** A helper name comes from a config file: it must not be a path. */
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
/** docker-credential-helpers' wording (credentials.ErrCredentialsNotFound). */
const NOT_FOUND_RE = /credentials not found/i;

export interface HelperOptions {
  timeoutMs: number;
  warn: (message: string) => void;
  env?: NodeJS.ProcessEnv;
}

interface HelperRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Helpers already reported missing: one warning per helper and process, not one per request. */
const warnedMissing = new Set<string>();

function helperError(name: string, message: string): StargzError {
  return new StargzError(ErrorCodes.CREDENTIALS, `credential helper docker-credential-${name}: ${message}`);
}

/** The first line of a helper's complaint, safe to print. */
function complaint(text: string): string {
  const line = text.trim().split('\n')[0] ?? '';
  const cut = line.length > MAX_MESSAGE_CHARS ? line.slice(0, MAX_MESSAGE_CHARS) + '…' : line;
  return scrub(cut);
}

/** Runs the helper; undefined when there is no such program. */
function runHelper(name: string, action: 'get' | 'store' | 'erase', input: string, options: HelperOptions): Promise<HelperRun | undefined> {
  if (!NAME_RE.test(name)) return Promise.reject(helperError(name, 'not a valid helper name'));
  const program = `docker-credential-${name}`;
  return new Promise((resolve, reject) => {
    const child = spawn(program, [action], { stdio: ['pipe', 'pipe', 'pipe'], detached: true, env: options.env ?? process.env });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outBytes = 0;
    let errBytes = 0;
    let settled = false;
    const finish = (fn: () => void): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      fn();
    };
    const killGroup = (): void => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
      child.stdout.destroy();
      child.stderr.destroy();
      child.stdin.destroy();
    };
    const timer = setTimeout(() => {
      killGroup();
      finish(() => reject(helperError(name, `no answer within ${options.timeoutMs} ms (killed)`)));
    }, options.timeoutMs);
    timer.unref();
    child.stdout.on('data', (d: Buffer) => {
      outBytes += d.length;
      if (outBytes <= MAX_OUTPUT_BYTES) out.push(d);
      else {
        killGroup();
        finish(() => reject(helperError(name, `answered more than ${MAX_OUTPUT_BYTES} bytes`)));
      }
    });
    child.stderr.on('data', (d: Buffer) => {
      errBytes += d.length;
      if (errBytes <= MAX_OUTPUT_BYTES) err.push(d);
    });
    child.on('error', (e) => {
      if (errnoCode(e) === 'ENOENT') finish(() => resolve(undefined));
      else finish(() => reject(helperError(name, `cannot run ${program}: ${e.message}`)));
    });
    child.on('close', (code) => {
      finish(() => resolve({ code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') }));
    });
    // A helper that exits without reading its input must not crash us with EPIPE.
    child.stdin.on('error', () => undefined);
    child.stdin.end(input);
  });
}

function missing(name: string, options: HelperOptions): void {
  if (warnedMissing.has(name)) return;
  warnedMissing.add(name);
  options.warn(`credential helper docker-credential-${name} is not installed (named in a credential file); going on without credentials`);
}

/** The helper's credentials for serverUrl; undefined when it has none (or is not installed: one warning). */
export async function helperGet(name: string, serverUrl: string, options: HelperOptions): Promise<{ username: string; secret: string } | undefined> {
  const r = await runHelper(name, 'get', serverUrl, options);
  if (!r) {
    missing(name, options);
    return undefined;
  }
  if (r.code !== 0) {
    if (NOT_FOUND_RE.test(r.stdout) || NOT_FOUND_RE.test(r.stderr)) return undefined;
    throw helperError(name, `get failed (exit ${r.code ?? 'signal'}): ${complaint(r.stderr || r.stdout) || 'no message'}`);
  }
  let doc: { Username?: unknown; Secret?: unknown };
  try {
    doc = JSON.parse(r.stdout) as typeof doc;
  } catch {
    // Not quoted: stdout may hold the secret in some other shape.
    throw helperError(name, 'get answered something that is not JSON');
  }
  if (typeof doc.Secret !== 'string' || typeof doc.Username !== 'string') throw helperError(name, 'get answered without Username and Secret');
  // Before anything can print them.
  registerSecret(doc.Secret);
  registerCredentials(doc.Username, doc.Secret);
  if (doc.Secret === '') return undefined;
  return { username: doc.Username, secret: doc.Secret };
}

/** `store`: the helper keeps the secret (login). */
export async function helperStore(name: string, serverUrl: string, username: string, secret: string, options: HelperOptions): Promise<void> {
  registerCredentials(username, secret);
  const r = await runHelper(name, 'store', JSON.stringify({ ServerURL: serverUrl, Username: username, Secret: secret }), options);
  if (!r) throw helperError(name, 'is not installed; cannot store the credentials');
  if (r.code !== 0) throw helperError(name, `store failed (exit ${r.code ?? 'signal'}): ${complaint(r.stderr || r.stdout) || 'no message'}`);
}

/** `erase` (logout); false when the helper had nothing for serverUrl. */
export async function helperErase(name: string, serverUrl: string, options: HelperOptions): Promise<boolean> {
  const r = await runHelper(name, 'erase', serverUrl, options);
  if (!r) throw helperError(name, 'is not installed; cannot erase the credentials');
  if (r.code === 0) return true;
  if (NOT_FOUND_RE.test(r.stdout) || NOT_FOUND_RE.test(r.stderr)) return false;
  throw helperError(name, `erase failed (exit ${r.code ?? 'signal'}): ${complaint(r.stderr || r.stdout) || 'no message'}`);
}
