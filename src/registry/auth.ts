// Registry authentication: anonymous, Basic, or Bearer tokens from the realm the registry
// names (distribution token spec). Tokens are cached per scope until they expire, and one
// fetch serves every request that races for the same token.
import { ErrorCodes, StargzError, registerCredentials, registerSecret } from '../errors.js';
import { SingleFlight } from '../util/single-flight.js';
import { findChallenge, type Challenge } from './challenge.js';
import { httpStatusError, readBody, readBoundedText } from './errors.js';
import { withRetry, type RetryOptions } from './retry.js';
import { header, type Transport } from './transport.js';

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

/** The scope of pulling one repository. */
export function pullScope(repository: string): string {
  return `repository:${repository}:pull`;
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
  /** Token fetches made (tests and logs). */
  tokenFetches = 0;

  constructor(
    private readonly transport: Transport,
    private readonly credentials: Credentials | undefined,
    private readonly retry: RetryOptions,
  ) {
    if (credentials) registerCredentials(credentials.username, credentials.password);
  }

  get hasCredentials(): boolean {
    return this.credentials !== undefined;
  }

  /** The challenges from the ping: they say which scheme to use before any request fails. */
  setChallenges(challenges: Challenge[]): void {
    this.challenges = challenges;
  }

  /** The Authorization header to send for `scope`, or undefined to go anonymous. */
  async authorization(scope: string, signal?: AbortSignal): Promise<string | undefined> {
    const bearer = findChallenge(this.challenges, 'bearer');
    if (bearer) return (await this.token(bearer, scope, signal)).header;
    if (findChallenge(this.challenges, 'basic') && this.credentials) return basicAuthorization(this.credentials);
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
    if (findChallenge(this.challenges, 'basic') && this.credentials) {
      const basic = basicAuthorization(this.credentials);
      return basic === used ? undefined : basic;
    }
    return undefined;
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
    if (challenge.params.service) url.searchParams.set('service', challenge.params.service);
    for (const s of scope.split(' ')) if (s) url.searchParams.append('scope', s);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.credentials) headers.authorization = basicAuthorization(this.credentials);
    const what = `token from ${url.origin}${url.pathname} for ${scope}`;
    return withRetry(async () => {
      this.tokenFetches++;
      // No caller's signal: the fetch is shared. The transport's own signal still ends it.
      const res = await this.transport.request({ url, headers });
      if (res.status === 200) return parseTokenResponse((await readBody(res.body, MAX_TOKEN_RESPONSE_BYTES, what)).toString('utf8'));
      const text = await readBoundedText(res.body);
      const err = httpStatusError(res.status, what, text, header(res.headers, 'retry-after'));
      if (err.code === ErrorCodes.REGISTRY_AUTH) {
        throw new StargzError(
          ErrorCodes.REGISTRY_AUTH,
          this.credentials ? `${err.message} (credentials refused)` : `${err.message} (anonymous access refused; give credentials)`,
          { status: res.status },
        );
      }
      throw err;
    }, this.retry);
  }
}
