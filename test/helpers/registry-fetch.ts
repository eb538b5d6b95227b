// fetch() against a registry with the Docker auth dance done for you (401 → Basic, or Bearer
// token from the realm), so harness tests can check what a registry or proxy serves.
import { createHash } from 'node:crypto';

export interface RegistryFetchOptions {
  method?: string;
  headers?: Record<string, string>;
  /** 'user:pass' sent to the Basic challenge or to the token realm. */
  creds?: string;
  redirect?: 'follow' | 'manual' | 'error';
}

function parseChallenge(h: string): { scheme: string; params: Record<string, string> } {
  const sp = h.indexOf(' ');
  const scheme = (sp < 0 ? h : h.slice(0, sp)).toLowerCase();
  const params: Record<string, string> = {};
  for (const m of h.slice(sp + 1).matchAll(/(\w+)="([^"]*)"/g)) params[m[1] as string] = m[2] as string;
  return { scheme, params };
}

/** GET baseUrl+path; on a 401 challenge authenticates once and retries. */
export async function registryFetch(baseUrl: string, path: string, opts: RegistryFetchOptions = {}): Promise<Response> {
  const init = (auth?: string): RequestInit => ({
    method: opts.method ?? 'GET',
    headers: { ...opts.headers, ...(auth ? { authorization: auth } : {}) },
    redirect: opts.redirect ?? 'follow',
  });
  const first = await fetch(baseUrl + path, init());
  if (first.status !== 401) return first;
  const challenge = first.headers.get('www-authenticate') ?? '';
  await first.arrayBuffer();
  const { scheme, params } = parseChallenge(challenge);
  const basic = opts.creds ? 'Basic ' + Buffer.from(opts.creds).toString('base64') : undefined;
  if (scheme === 'basic') return basic ? fetch(baseUrl + path, init(basic)) : first;
  if (scheme !== 'bearer' || !params.realm) return first;
  const q = new URLSearchParams();
  if (params.service) q.set('service', params.service);
  if (params.scope) q.set('scope', params.scope);
  const tr = await fetch(`${params.realm}?${q}`, { headers: basic ? { authorization: basic } : {} });
  if (tr.status !== 200) {
    await tr.arrayBuffer();
    return tr;
  }
  const tok = (await tr.json()) as { token?: string; access_token?: string };
  return fetch(baseUrl + path, init('Bearer ' + (tok.token ?? tok.access_token)));
}

export const OCI_ACCEPT =
  'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, ' +
  'application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json';

export function sha256Digest(b: Uint8Array): string {
  return 'sha256:' + createHash('sha256').update(b).digest('hex');
}
