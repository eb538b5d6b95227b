// One credential file (Docker's config.json or containers' auth.json): which store answers
// for a registry — `credHelpers[registry]`, else the global `credsStore`, else `auths` — and
// what the answer is. The store that applies decides: a helper that knows nothing means
// anonymous, as in Docker.
import { readFile } from 'node:fs/promises';
import { ErrorCodes, StargzError, registerCredentials, registerSecret } from '../errors.js';
import { errnoCode } from '../util/errno-code.js';
import { findEntry, serverUrlFor } from './keychain-keys.js';
import { helperGet, type HelperOptions } from './keychain-helper.js';
import type { RegistryCredential } from './keychain.js';

export interface AuthEntry {
  auth?: unknown;
  username?: unknown;
  password?: unknown;
  identitytoken?: unknown;
}

export interface ConfigFile {
  auths?: Record<string, AuthEntry>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
  [other: string]: unknown;
}

/** Docker's marker for "the secret is an identity token". */
export const TOKEN_USERNAME = '<token>';

/** The file's JSON, undefined when it does not exist. */
export async function readConfigFile(path: string): Promise<ConfigFile | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return undefined;
    throw new StargzError(ErrorCodes.CREDENTIALS, `cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new StargzError(ErrorCodes.CREDENTIALS, `${path} is not valid JSON`);
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw new StargzError(ErrorCodes.CREDENTIALS, `${path} is not a JSON object`);
  return doc as ConfigFile;
}

/** A user name and secret, as an entry or a helper gives them: `<token>` means the secret is an identity token. */
export function credentialFrom(username: string, secret: string, source: string): RegistryCredential {
  registerCredentials(username, secret);
  if (username === TOKEN_USERNAME) return { kind: 'refresh-token', refreshToken: secret, source };
  return { kind: 'basic', username, password: secret, source };
}

/** An `auths` entry's credential; an empty entry (`{}`, what `docker login` leaves beside a credsStore) has none. */
export function entryCredential(entry: AuthEntry, source: string): RegistryCredential | undefined {
  if (typeof entry.identitytoken === 'string' && entry.identitytoken !== '') {
    registerSecret(entry.identitytoken);
    return { kind: 'refresh-token', refreshToken: entry.identitytoken, source };
  }
  if (typeof entry.username === 'string' && typeof entry.password === 'string' && entry.username !== '') {
    return credentialFrom(entry.username, entry.password, source);
  }
  if (typeof entry.auth === 'string' && entry.auth !== '') {
    const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
    registerSecret(entry.auth);
    const i = decoded.indexOf(':');
    if (i <= 0) throw new StargzError(ErrorCodes.CREDENTIALS, `${source}: an "auth" value is not base64 of user:password`);
    return credentialFrom(decoded.slice(0, i), decoded.slice(i + 1), source);
  }
  return undefined;
}

/** `applies`: this file has a store for the registry, so later files are not consulted. */
export async function lookupInConfigFile(
  path: string,
  registry: string,
  repository: string,
  helper: HelperOptions,
): Promise<{ applies: boolean; credential?: RegistryCredential }> {
  const config = await readConfigFile(path);
  if (!config) return { applies: false };
  const name = findEntry(config.credHelpers, registry, repository) ?? (typeof config.credsStore === 'string' && config.credsStore !== '' ? config.credsStore : undefined);
  if (typeof name === 'string' && name !== '') {
    const got = await helperGet(name, serverUrlFor(registry), helper);
    return got ? { applies: true, credential: credentialFrom(got.username, got.secret, `credential helper docker-credential-${name}`) } : { applies: true };
  }
  const entry = findEntry(config.auths, registry, repository);
  if (!entry || typeof entry !== 'object') return { applies: false };
  const credential = entryCredential(entry, path);
  return credential ? { applies: true, credential } : { applies: false };
}
