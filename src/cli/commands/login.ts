// `stargz-get login REGISTRY` and `logout REGISTRY`: what `docker login` / `docker logout`
// do to Docker's config.json (or its credential helper), so that every later command — and
// docker, podman, skopeo — finds the credentials. login checks them against the registry
// first: a typo is refused at login, not at the next mount.
import { parseDuration } from '../../config.js';
import { ErrorCodes, StargzError, registerCredentials } from '../../errors.js';
import { RegistryClient } from '../../registry/client.js';
import { staticKeychain } from '../../registry/keychain.js';
import { normalizeRegistry } from '../../registry/keychain-keys.js';
import { eraseCredentials, storeCredentials } from '../../registry/keychain-store.js';
import { readPasswordStdin } from '../credentials.js';
import type { CliIo } from '../io.js';

export interface LoginFlags {
  username?: string;
  password?: string;
  passwordStdin?: boolean;
  plainHttp?: boolean;
  insecure?: boolean;
  timeout?: string;
}

export async function loginCommand(registryArg: string, flags: LoginFlags, io: CliIo): Promise<void> {
  const registry = registryOf(registryArg);
  if (flags.password !== undefined && flags.passwordStdin) throw new StargzError(ErrorCodes.USAGE, '--password and --password-stdin are mutually exclusive');
  const tty = Boolean(process.stdin.isTTY);
  if (flags.passwordStdin && flags.username === undefined) throw new StargzError(ErrorCodes.USAGE, '--password-stdin needs --username');
  const username = flags.username ?? (tty ? await prompt('Username: ', true) : undefined);
  if (!username) throw new StargzError(ErrorCodes.USAGE, 'login needs --username (and --password-stdin when standard input is not a terminal)');
  let password = flags.password;
  if (password !== undefined) io.notice('--password shows the password to other users of this machine (ps, shell history); prefer --password-stdin');
  if (flags.passwordStdin) password = await readPasswordStdin();
  else if (password === undefined) {
    if (!tty) throw new StargzError(ErrorCodes.USAGE, 'no password: pass --password-stdin, or run login on a terminal');
    password = await prompt('Password: ', false);
  }
  if (password === '') throw new StargzError(ErrorCodes.USAGE, 'the password is empty');
  registerCredentials(username, password);

  const client = new RegistryClient(registry, {
    keychain: staticKeychain(username, password),
    plainHttp: flags.plainHttp ?? false,
    insecure: flags.insecure ?? false,
    signal: io.signal,
    ...(flags.timeout !== undefined ? { requestTimeoutMs: parseDuration(flags.timeout) } : {}),
  });
  try {
    await client.checkCredentials(io.signal);
  } finally {
    await client.close();
  }
  const stored = await storeCredentials(registry, username, password);
  io.out(`Login Succeeded (${registry}; stored in ${stored.helper ? `docker-credential-${stored.helper}` : stored.path})`);
}

export async function logoutCommand(registryArg: string, io: CliIo): Promise<void> {
  const registry = registryOf(registryArg);
  const r = await eraseCredentials(registry);
  io.out(r.removed ? `Removed login credentials for ${registry}` : `Not logged in to ${registry}`);
}

function registryOf(arg: string): string {
  const registry = normalizeRegistry(arg);
  if (!registry || /[\s/@]/.test(registry)) throw new StargzError(ErrorCodes.USAGE, `not a registry: ${JSON.stringify(arg)} (e.g. ghcr.io or 127.0.0.1:5000)`);
  return registry;
}

/** Reads one line from the terminal; without echo for a password. */
function prompt(question: string, echo: boolean): Promise<string> {
  const stdin = process.stdin;
  // Echo off before the question shows: nothing typed once it is on the screen is echoed.
  if (!echo) stdin.setRawMode(true);
  process.stderr.write(question);
  return new Promise((resolve, reject) => {
    let line = '';
    const done = (err?: Error): void => {
      stdin.off('data', onData);
      if (!echo) stdin.setRawMode(false);
      stdin.pause();
      if (!echo) process.stderr.write('\n');
      if (err) reject(err);
      else resolve(line);
    };
    const onData = (d: Buffer): void => {
      for (const c of d.toString('utf8')) {
        if (c === '\r' || c === '\n') return done();
        if (c === '\u0003') return done(new StargzError(ErrorCodes.ABORTED, 'interrupted'));
        if (c === '\u007f' || c === '\b') line = line.slice(0, -1);
        else line += c;
      }
    };
    stdin.on('data', onData);
    stdin.resume();
  });
}
