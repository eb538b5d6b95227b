// Where registry credentials come from. The client asks a Keychain each time it authenticates
// (a 401 challenge, a token refresh), never once at start: a long-running mount then picks up
// rotated credentials (ECR tokens expire every 12 hours) from the files and helpers it reads.
import { registerCredentials, registerSecret } from '../errors.js';
import { lookupInConfigFile } from './keychain-config.js';
import { configFilePaths, type KeychainEnv } from './keychain-files.js';
import { DEFAULT_HELPER_TIMEOUT_MS } from './keychain-helper.js';

/** What a keychain can give: a user name and password, or an OAuth2 refresh (identity) token. */
export type RegistryCredential =
  | { kind: 'basic'; username: string; password: string; source: string }
  | { kind: 'refresh-token'; refreshToken: string; source: string };

export interface Keychain {
  /** Credentials to pull `repository` ('' for the registry as a whole) from `registry`, or undefined: anonymous. */
  lookup(registry: string, repository: string): Promise<RegistryCredential | undefined>;
}

export interface KeychainOptions extends KeychainEnv {
  /** containers' --authfile: consulted before every other file. */
  authFile?: string;
  /** Told once per missing credential helper (a stale `"credsStore": "desktop"` is common). */
  warn?: (message: string) => void;
  /** How long a credential helper may take (default 10 s). */
  helperTimeoutMs?: number;
}

/** Nobody's credentials. */
export const anonymousKeychain: Keychain = { lookup: async () => undefined };

/** Fixed credentials, for library users who have them at hand (and the CLI's flags). */
export function staticKeychain(username: string, password: string, source = 'the given credentials'): Keychain {
  // Known as secrets before anything can print them.
  registerCredentials(username, password);
  const cred: RegistryCredential = { kind: 'basic', username, password, source };
  return { lookup: async () => cred };
}

/** A fixed identity token (an OAuth2 refresh token). */
export function identityTokenKeychain(refreshToken: string, source = 'the given identity token'): Keychain {
  registerSecret(refreshToken);
  const cred: RegistryCredential = { kind: 'refresh-token', refreshToken, source };
  return { lookup: async () => cred };
}

/**
 * What `docker`, `podman` and `skopeo` users expect, in order: STARGZ_GET_USERNAME and
 * STARGZ_GET_PASSWORD; containers' auth.json (authFile, $REGISTRY_AUTH_FILE,
 * $XDG_RUNTIME_DIR/containers/auth.json, ${XDG_CONFIG_HOME:-~/.config}/containers/auth.json);
 * Docker's $DOCKER_CONFIG/config.json (~/.docker/config.json). The first file that has
 * something for the registry decides; nothing anywhere is anonymous.
 */
export function defaultKeychain(options: KeychainOptions = {}): Keychain {
  const env = options.env ?? process.env;
  const helper = { timeoutMs: options.helperTimeoutMs ?? DEFAULT_HELPER_TIMEOUT_MS, warn: options.warn ?? (() => undefined), env };
  return {
    async lookup(registry, repository) {
      const user = env.STARGZ_GET_USERNAME;
      if (user) {
        const password = env.STARGZ_GET_PASSWORD ?? '';
        registerCredentials(user, password);
        return { kind: 'basic', username: user, password, source: 'STARGZ_GET_USERNAME/STARGZ_GET_PASSWORD' };
      }
      // Read now, not at start: see the top of this file.
      for (const path of configFilePaths({ ...options, env })) {
        const found = await lookupInConfigFile(path, registry, repository, helper);
        if (found.applies) return found.credential;
      }
      return undefined;
    },
  };
}
