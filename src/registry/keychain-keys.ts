// How a registry and repository match the keys of `auths` and `credHelpers`, and what a
// credential helper is told. Docker writes `host`, `host:port` or a URL
// (`https://index.docker.io/v1/`); containers' auth.json also allows a namespace
// (`host/ns/repo`), the most specific key winning. Pure.

/** Docker Hub's names for itself; its helpers and config keys use the legacy v1 URL. */
const DOCKER_HUB_ALIASES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);
export const DOCKER_HUB_SERVER_URL = 'https://index.docker.io/v1/';

function canonicalHost(host: string): string {
  const h = host.toLowerCase();
  return DOCKER_HUB_ALIASES.has(h) ? 'docker.io' : h;
}

/** `https://host/v1/` → `host`; `host/ns/` → `host/ns`; Docker Hub's aliases → `docker.io`. */
export function normalizeKey(key: string): string {
  let k = key.trim();
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(k);
  // A URL names a host: its path (`/v1/`) is the API's, not a namespace (as Docker reads it).
  if (scheme) k = k.slice(scheme[0].length).split('/')[0] ?? '';
  k = k.replace(/\/+$/, '');
  const slash = k.indexOf('/');
  return slash < 0 ? canonicalHost(k) : canonicalHost(k.slice(0, slash)) + k.slice(slash);
}

/** `host/a/b/c`, `host/a/b`, `host/a`, `host`: the keys that may hold credentials for a repository, most specific first. */
export function candidateKeys(registry: string, repository: string): string[] {
  const host = canonicalHost(registry);
  const out: string[] = [];
  const parts = repository.split('/').filter(Boolean);
  for (let n = parts.length; n > 0; n--) out.push(`${host}/${parts.slice(0, n).join('/')}`);
  out.push(host);
  return out;
}

/** The entry of `map` for the repository, most specific key first; keys are normalized. */
export function findEntry<T>(map: Record<string, T> | undefined, registry: string, repository: string): T | undefined {
  if (!map || typeof map !== 'object') return undefined;
  const byKey = new Map<string, T>();
  for (const [key, value] of Object.entries(map)) {
    const k = normalizeKey(key);
    // An exact spelling beats a URL spelling of the same host.
    if (!byKey.has(k) || key === k) byKey.set(k, value);
  }
  for (const k of candidateKeys(registry, repository)) {
    const v = byKey.get(k);
    if (v !== undefined) return v;
  }
  return undefined;
}

/** What Docker's helpers get on stdin and what `login` writes as the key: the host, or Docker Hub's URL. */
export function serverUrlFor(registry: string): string {
  return canonicalHost(registry) === 'docker.io' ? DOCKER_HUB_SERVER_URL : registry;
}

/** The keys of `auths` that are the registry itself (any spelling), for `logout`. */
export function isRegistryKey(key: string, registry: string): boolean {
  return normalizeKey(key) === canonicalHost(registry);
}

/** `https://host/`, `HOST`, `index.docker.io` → the registry as references name it. */
export function normalizeRegistry(input: string): string {
  const k = normalizeKey(input);
  return k.split('/')[0] ?? k;
}
