// Where credentials come from, in order: --credential USER:PASSWORD, --username with
// --password or --password-stdin, STARGZ_GET_USERNAME/STARGZ_GET_PASSWORD, then the
// `auths` of Docker's config.json (what `docker login` wrote). Never logged.
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { ErrorCodes, StargzError, registerCredentials, registerSecret } from '../errors.js';
import type { Credentials } from '../registry/client.js';

export interface CredentialFlags {
  credential?: string;
  username?: string;
  password?: string;
  passwordStdin?: boolean;
}

export async function resolveCredentials(flags: CredentialFlags, registry: string, stdin: NodeJS.ReadableStream = process.stdin): Promise<Credentials | undefined> {
  const creds = await findCredentials(flags, registry, stdin);
  // Known as secrets before anything can print them.
  if (creds) registerCredentials(creds.username, creds.password);
  return creds;
}

async function findCredentials(flags: CredentialFlags, registry: string, stdin: NodeJS.ReadableStream): Promise<Credentials | undefined> {
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
    if (flags.passwordStdin) password = (await readAll(stdin)).replace(/\r?\n$/, '');
    if (password === undefined) throw new StargzError(ErrorCodes.USAGE, '--username needs --password or --password-stdin');
    return { username: flags.username, password };
  }
  if (flags.password !== undefined || flags.passwordStdin) throw new StargzError(ErrorCodes.USAGE, '--password needs --username');
  const envUser = process.env.STARGZ_GET_USERNAME;
  if (envUser) return { username: envUser, password: process.env.STARGZ_GET_PASSWORD ?? '' };
  return dockerConfigCredentials(registry);
}

function dockerConfigCredentials(registry: string): Credentials | undefined {
  const dir = process.env.DOCKER_CONFIG ?? join(homedir(), '.docker');
  let config: { auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string }> };
  try {
    config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  } catch {
    return undefined;
  }
  const keys = registry === 'docker.io' ? ['https://index.docker.io/v1/', 'index.docker.io', 'docker.io', 'registry-1.docker.io'] : [registry, `https://${registry}`, `http://${registry}`];
  for (const key of keys) {
    const entry = config.auths?.[key];
    if (!entry) continue;
    // Not used for the login flow, but held in memory now: never printed.
    registerSecret(entry.identitytoken);
    if (entry.username && entry.password) return { username: entry.username, password: entry.password };
    if (entry.auth) {
      const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
      const i = decoded.indexOf(':');
      if (i > 0) return { username: decoded.slice(0, i), password: decoded.slice(i + 1) };
    }
  }
  return undefined;
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string));
  return Buffer.concat(parts).toString('utf8');
}
