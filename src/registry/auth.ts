// Registry authentication: anonymous, Basic, or Bearer tokens from the realm the registry
// names (distribution token spec) — asked for with Basic credentials (GET), or with an
// identity token through the spec's OAuth2 refresh-token grant (POST). Tokens are cached per
// scope until they expire, and one fetch serves every request that races for the same token.
// Credentials come from a Keychain, asked again at every 401 and every token fetch.
import { ErrorCodes, StargzError, registerSecret } from '../errors.js';
import { SingleFlight } from '../util/single-flight.js';
import { findChallenge, type Challenge } from './challenge.js';
import { httpStatusError, readBody, readBoundedText } from './errors.js';
import { withRetry, type RetryOptions } from './retry.js';
import { header, type HttpResponse, type Transport } from './transport.js';
import type { Keychain, RegistryCredential } from './keychain.js';

export interface Credentials {
  username: string;
  password: string;
}

/** The token spec's default lifetime when expires_in is missing. */
export const DEFAULT_TOKEN_TTL_SECONDS = 60;
/** Token responses are small; a bigger one is a broken server. */
const MAX_TOKEN_RESPONSE_BYTES = 1024 * 1024;

export interface CachedToken {
  header: string;
  expiresAt: number;
}

/** Identifies us to the token server in the OAuth2 flow, which requires a client_id. */
export const OAUTH_CLIENT_ID = 'stargz-get';

/** The scope of pulling one repository. */
export function pullScope(repository: string): string {
  return `repository:${repository}:pull`;
}

/** The scope of pushing to one repository (a push reads too: HEAD of blobs, mounts). */
export function pushScope(repository: string): string {
  return `repository:${repository}:pull,push`;
}

/** The repository a scope is about ('' for none): the keychain looks credentials up by it. */
export function repositoryOfScope(scope: string): string {
  const m = /^repository:(.+):[^:]*$/.exec(scope.split(' ')[0] ?? '');
  return m?.[1] ?? '';
}

/** The OAuth2 refresh-token grant's form (distribution docs/spec/auth/oauth.md). */
export function refreshTokenForm(refreshToken: string, service: string | undefined, scope: string): string {
  const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken });
  if (service) form.set('service', service);
  // The form takes the scopes space-separated, in one field.
  if (scope) form.set('scope', scope);
  form.set('client_id', OAUTH_CLIENT_ID);
  return form.toString();
}

export function basicAuthorization(c: Credentials): string {
  return 'Basic ' + Buffer.from(`${c.username}:${c.password}`, 'utf8').toString('base64');
}

/** Reads a token response: `token` or `access_token`, `expires_in` (seconds). Pure. */
export function parseTokenResponse(text: string, now = Date.now()): CachedToken {
  let doc: { token?: unknown; access_token?: unknown; refresh_token?: unknown; expires_in?: unknown };
  try {
    doc = JSON.parse(text) as typeof doc;
  } catch {
    throw new StargzError(ErrorCodes.REGISTRY_PROTOCOL, 'token server answered something that is not JSON');
  }
  const token = typeof doc.token === 'string' && doc.token !== '' ? doc.token : doc.access_token;
  if (typeof token !== 'string' || token === '') throw new StargzError(ErrorCodes.REGISTRY_PROTOCOL, 'token server answered without a token');
  // From now on the process holds these: no message may show them.
  registerSecret(token);
  if (typeof doc.refresh_token === 'string') registerSecret(doc.refresh_token);
  const ttl = typeof doc.expires_in === 'number' && doc.expires_in > 0 ? doc.expires_in : DEFAULT_TOKEN_TTL_SECONDS;
  // Renew a little early so a token does not expire on its way to the registry.
  const margin = Math.min(10, ttl / 10);
  return { header: `Bearer ${token}`, expiresAt: now + (ttl - margin) * 1000 };
}

export class Authenticator {
  private challenges: Challenge[] = [];
  private readonly tokens = new Map<string, CachedToken>();
  private readonly flights = new SingleFlight<string, CachedToken>();
  /** Basic headers per repository, looked up again after a 401. */
  private readonly basics = new Map<string, string | undefined>();
  private readonly lookups = new SingleFlight<string, RegistryCredential | undefined>();
  private found = false;
  /** Token fetches made (tests and logs). */
  tokenFetches = 0;

  constructor(
    private readonly transport: Transport,
    private readonly registry: string,
    private readonly keychain: Keychain,
    private readonly retry: RetryOptions,
  ) {}

  /** Whether the keychain had credentials the last time it was asked. */
  get hasCredentials(): boolean {
    return this.found;
  }

  /** The challenges from the ping: they say which scheme to use before any request fails. */
  setChallenges(challenges: Challenge[]): void {
    this.challenges = challenges;
  }

  /** The Authorization header to send for `scope`, or undefined to go anonymous. */
  async authorization(scope: string, signal?: AbortSignal): Promise<string | undefined> {
    const bearer = findChallenge(this.challenges, 'bearer');
    if (bearer) return (await this.token(bearer, scope, signal)).header;
    if (findChallenge(this.challenges, 'basic')) return this.basicHeader(scope, false);
    return undefined;
  }

  /**
   * After a 401 that came with `used`: the header to try once more, or undefined when another
   * try cannot help (the caller then reports REGISTRY_AUTH).
   */
  async retryAuthorization(scope: string, challenges: Challenge[], used: string | undefined, signal?: AbortSignal): Promise<string | undefined> {
    if (challenges.length > 0) this.challenges = challenges;
    const bearer = findChallenge(this.challenges, 'bearer');
    if (bearer) {
      // insufficient_scope answers name the scope they want.
      const wanted = bearer.params.scope || scope;
      const key = this.key(bearer, wanted);
      const cached = this.tokens.get(key);
      if (cached && cached.header === used) this.tokens.delete(key); // the registry no longer takes it
      const fresh = await this.token(bearer, wanted, signal);
      return fresh.header === used ? undefined : fresh.header;
    }
    if (findChallenge(this.challenges, 'basic')) {
      // The credentials may have changed since (rotated in the file or the helper).
      const basic = await this.basicHeader(scope, true);
      return basic === used ? undefined : basic;
    }
    return undefined;
  }

  /** Asks the keychain, once for all racing requests of one repository. */
  private async lookup(repository: string): Promise<RegistryCredential | undefined> {
    const cred = await this.lookups.run(repository, () => this.keychain.lookup(this.registry, repository));
    this.found = cred !== undefined;
    return cred;
  }

  private async basicHeader(scope: string, fresh: boolean): Promise<string | undefined> {
    const repository = repositoryOfScope(scope);
    if (!fresh && this.basics.has(repository)) return this.basics.get(repository);
    const cred = await this.lookup(repository);
    // An identity token is only good for the token flow; a Basic registry gets nothing from it.
    const h = cred?.kind === 'basic' ? basicAuthorization(cred) : undefined;
    this.basics.set(repository, h);
    return h;
  }

  private key(challenge: Challenge, scope: string): string {
    return `${challenge.params.realm ?? ''}\n${challenge.params.service ?? ''}\n${scope}`;
  }

  private async token(challenge: Challenge, scope: string, signal?: AbortSignal): Promise<CachedToken> {
    const key = this.key(challenge, scope);
    const cached = this.tokens.get(key);
    if (cached && cached.expiresAt > Date.now()) return cached;
    // Every racing request waits for one fetch; that fetch must not die with one caller's signal.
    const t = await this.flights.run(key, () => this.fetchToken(challenge, scope));
    this.tokens.set(key, t);
    if (signal?.aborted) throw new StargzError(ErrorCodes.ABORTED, 'operation aborted');
    return t;
  }

  private async fetchToken(challenge: Challenge, scope: string): Promise<CachedToken> {
    const realm = challenge.params.realm;
    let url: URL;
    try {
      url = new URL(realm ?? '');
    } catch {
      throw new StargzError(ErrorCodes.REGISTRY_PROTOCOL, `registry asked for a Bearer token with an invalid realm ${JSON.stringify(realm)}`);
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      throw new StargzError(ErrorCodes.REGISTRY_PROTOCOL, `token realm has unsupported scheme ${url.protocol}`);
    }
    // Asked at every fetch, i.e. whenever a token expires: rotated credentials are picked up.
    const cred = await this.lookup(repositoryOfScope(scope));
    const what = `token from ${url.origin}${url.pathname} for ${scope || 'the registry'}`;
    const send = cred?.kind === 'refresh-token' ? () => this.refreshGrant(url, challenge, scope, cred.refreshToken) : () => this.basicGet(url, challenge, scope, cred);
    return withRetry(async () => {
      this.tokenFetches++;
      const res = await send();
      if (res.status === 200) return parseTokenResponse((await readBody(res.body, MAX_TOKEN_RESPONSE_BYTES, what)).toString('utf8'));
      const text = await readBoundedText(res.body);
      const err = httpStatusError(res.status, what, text, header(res.headers, 'retry-after'));
      if (err.code === ErrorCodes.REGISTRY_AUTH || (cred?.kind === 'refresh-token' && res.status === 400)) {
        const why = !cred
          ? 'anonymous access refused; give credentials'
          : `${cred.kind === 'refresh-token' ? 'identity token' : 'credentials'} from ${cred.source} refused`;
        throw new StargzError(ErrorCodes.REGISTRY_AUTH, `${err.message} (${why})`, { status: res.status });
      }
      throw err;
    }, this.retry);
  }

  /** The token spec's GET, with Basic credentials or none. No caller's signal: the fetch is shared. */
  private basicGet(realm: URL, challenge: Challenge, scope: string, cred: RegistryCredential | undefined): Promise<HttpResponse> {
    const url = new URL(realm);
    if (challenge.params.service) url.searchParams.set('service', challenge.params.service);
    for (const s of scope.split(' ')) if (s) url.searchParams.append('scope', s);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (cred?.kind === 'basic') headers.authorization = basicAuthorization(cred);
    return this.transport.request({ url, headers });
  }

  /** The OAuth2 refresh-token grant: a POST, never redirected (that would resend the token elsewhere). */
  private refreshGrant(realm: URL, challenge: Challenge, scope: string, refreshToken: string): Promise<HttpResponse> {
    return this.transport.send({
      url: realm,
      method: 'POST',
      headers: { accept: 'application/json', 'content-type': 'application/x-www-form-urlencoded' },
      body: refreshTokenForm(refreshToken, challenge.params.service, scope),
    });
  }
}
