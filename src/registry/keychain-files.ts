// The credential files, in the order containers/image and Docker read them. Pure.
import { homedir } from 'node:os';
import { join } from 'node:path';

export interface KeychainEnv {
  /** The environment to read (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** The home directory (default os.homedir()). */
  home?: string;
}

/** Docker's config.json: $DOCKER_CONFIG/config.json, else ~/.docker/config.json. `login` writes it. */
export function dockerConfigPath(options: KeychainEnv = {}): string {
  const env = options.env ?? process.env;
  return join(env.DOCKER_CONFIG || join(options.home ?? homedir(), '.docker'), 'config.json');
}

/** Every file to consult, most important first. */
export function configFilePaths(options: KeychainEnv & { authFile?: string } = {}): string[] {
  const env = options.env ?? process.env;
  const home = options.home ?? homedir();
  const paths: string[] = [];
  if (options.authFile) paths.push(options.authFile);
  if (env.REGISTRY_AUTH_FILE) paths.push(env.REGISTRY_AUTH_FILE);
  if (env.XDG_RUNTIME_DIR) paths.push(join(env.XDG_RUNTIME_DIR, 'containers', 'auth.json'));
  paths.push(join(env.XDG_CONFIG_HOME || join(home, '.config'), 'containers', 'auth.json'));
  paths.push(dockerConfigPath(options));
  return paths;
}
