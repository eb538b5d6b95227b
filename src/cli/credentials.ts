// The credential flags: --credential USER:PASSWORD, or --username with --password or
// --password-stdin, and --authfile. Flags beat everything; without them the library's
// keychain looks in the environment and the credential files (src/registry/keychain.ts).
import { ErrorCodes, StargzError, registerCredentials } from '../errors.js';
import type { Credentials } from '../registry/client.js';
import { defaultKeychain, staticKeychain, type Keychain } from '../registry/keychain.js';

export interface CredentialFlags {
  credential?: string;
  username?: string;
  password?: string;
  passwordStdin?: boolean;
  /** containers' auth.json to read first (an absolute path: the option's parser resolves it). */
  authfile?: string;
}

/**
 * The credentials the flags give, or undefined when they give none. `_registry` is unused:
 * flags name one registry's credentials, whichever it is.
 */
export async function resolveCredentials(flags: CredentialFlags, _registry?: string, stdin: NodeJS.ReadableStream = process.stdin): Promise<Credentials | undefined> {
  const creds = await fromFlags(flags, stdin);
  // Known as secrets before anything can print them.
  if (creds) registerCredentials(creds.username, creds.password);
  return creds;
}

/** The flags' credentials if any, else the keychain of environment and files (warnings go to `warn`). */
export async function keychainFromFlags(flags: CredentialFlags, warn: (message: string) => void): Promise<Keychain> {
  const creds = await resolveCredentials(flags);
  if (creds) return staticKeychain(creds.username, creds.password, 'the command line');
  return defaultKeychain({ ...(flags.authfile ? { authFile: flags.authfile } : {}), warn });
}

async function fromFlags(flags: CredentialFlags, stdin: NodeJS.ReadableStream): Promise<Credentials | undefined> {
  if (flags.credential !== undefined) {
    if (flags.username !== undefined || flags.password !== undefined || flags.passwordStdin) {
      throw new StargzError(ErrorCodes.USAGE, '--credential cannot be combined with --username/--password');
    }
    const i = flags.credential.indexOf(':');
    if (i <= 0) throw new StargzError(ErrorCodes.USAGE, '--credential takes USER:PASSWORD');
    return { username: flags.credential.slice(0, i), password: flags.credential.slice(i + 1) };
  }
  if (flags.password !== undefined && flags.passwordStdin) {
    throw new StargzError(ErrorCodes.USAGE, '--password and --password-stdin are mutually exclusive');
  }
  if (flags.username !== undefined) {
    let password = flags.password;
    if (flags.passwordStdin) password = await readPasswordStdin(stdin);
    if (password === undefined) throw new StargzError(ErrorCodes.USAGE, '--username needs --password or --password-stdin');
    return { username: flags.username, password };
  }
  if (flags.password !== undefined || flags.passwordStdin) throw new StargzError(ErrorCodes.USAGE, '--password needs --username');
  return undefined;
}

/** All of stdin, without the final newline `echo` adds. */
export async function readPasswordStdin(stream: NodeJS.ReadableStream = process.stdin): Promise<string> {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string));
  return Buffer.concat(parts).toString('utf8').replace(/\r?\n$/, '');
}
