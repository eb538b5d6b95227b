// `login` and `logout`: entries of Docker's config.json written and erased the way
// `docker login` does — through the credential helper the file names for the registry
// (credHelpers, then credsStore) when there is one, else as `auths[server].auth`. The file is
// replaced atomically (a temporary in the same directory, mode 0600, renamed) and every key
// we do not own is kept as it was.
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ErrorCodes, StargzError, registerCredentials } from '../errors.js';
import { readConfigFile, type ConfigFile } from './keychain-config.js';
import { writeFileAtomically } from '../util/atomic-file.js';
import { dockerConfigPath, type KeychainEnv } from './keychain-files.js';
import { DEFAULT_HELPER_TIMEOUT_MS, helperErase, helperStore, type HelperOptions } from './keychain-helper.js';
import { findEntry, isRegistryKey, serverUrlFor } from './keychain-keys.js';

export interface StoreOptions extends KeychainEnv {
  helperTimeoutMs?: number;
}

export interface StoreResult {
  /** The config file written (or that would have been). */
  path: string;
  /** The helper that holds the secret, if one does. */
  helper?: string;
}

function helperOptions(options: StoreOptions): HelperOptions {
  return { timeoutMs: options.helperTimeoutMs ?? DEFAULT_HELPER_TIMEOUT_MS, warn: () => undefined, env: options.env ?? process.env };
}

function helperFor(config: ConfigFile, registry: string): string | undefined {
  const name = findEntry(config.credHelpers, registry, '') ?? config.credsStore;
  return typeof name === 'string' && name !== '' ? name : undefined;
}

/** Writes `config` to `path` all at once: readers see the old file or the new one, never half of one. */
export async function writeConfigAtomically(path: string, config: ConfigFile): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  try {
    await writeFileAtomically(path, JSON.stringify(config, null, '\t') + '\n', { mode: 0o600 });
  } catch (err) {
    throw new StargzError(ErrorCodes.IO, `cannot replace ${path}: ${(err as Error).message}`, { cause: err });
  }
}

/** Stores verified credentials for `registry` (login). */
export async function storeCredentials(registry: string, username: string, password: string, options: StoreOptions = {}): Promise<StoreResult> {
  registerCredentials(username, password);
  const path = dockerConfigPath(options);
  const config: ConfigFile = (await readConfigFile(path)) ?? {};
  const server = serverUrlFor(registry);
  const auths: Record<string, unknown> = { ...(config.auths ?? {}) };
  // Other spellings of this registry would shadow or contradict the new entry.
  for (const key of Object.keys(auths)) if (isRegistryKey(key, registry)) delete auths[key];
  const helper = helperFor(config, registry);
  if (helper) {
    await helperStore(helper, server, username, password, helperOptions(options));
    auths[server] = {}; // as docker login: the registry is listed, the secret is in the helper
  } else {
    auths[server] = { auth: Buffer.from(`${username}:${password}`, 'utf8').toString('base64') };
  }
  await writeConfigAtomically(path, { ...config, auths } as ConfigFile);
  return helper ? { path, helper } : { path };
}

/** Removes the credentials of `registry` (logout); `removed` false when there were none. */
export async function eraseCredentials(registry: string, options: StoreOptions = {}): Promise<StoreResult & { removed: boolean }> {
  const path = dockerConfigPath(options);
  const config = await readConfigFile(path);
  if (!config) return { path, removed: false };
  const helper = helperFor(config, registry);
  let removed = helper ? await helperErase(helper, serverUrlFor(registry), helperOptions(options)) : false;
  const auths: Record<string, unknown> = { ...(config.auths ?? {}) };
  for (const key of Object.keys(auths)) {
    if (!isRegistryKey(key, registry)) continue;
    delete auths[key];
    removed = true;
  }
  if (config.auths && Object.keys(auths).length !== Object.keys(config.auths).length) await writeConfigAtomically(path, { ...config, auths } as ConfigFile);
  return { path, removed, ...(helper ? { helper } : {}) };
}
