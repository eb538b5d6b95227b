// GET /v2/ once per registry: learns which scheme answers and which auth the registry wants
// (go-containerregistry transport/ping.go). Pulls skip it where the scheme is known (client.ts baseUrl).
import { isLoopbackRegistry } from '../reference/reference.js';
import { ErrorCodes, isStargzError } from '../errors.js';
import { parseWwwAuthenticate, type Challenge } from './challenge.js';
import { httpStatusError, readBoundedText } from './errors.js';
import { serverSpeaksTls } from './tls.js';
import { header, type Transport } from './transport.js';

export interface PingResult {
  /** 'https://host:port' or 'http://host:port' */
  baseUrl: string;
  /** Empty when the registry lets anyone in. */
  challenges: Challenge[];
}

async function pingOnce(transport: Transport, baseUrl: string, signal?: AbortSignal): Promise<PingResult> {
  const res = await transport.send({ url: new URL('/v2/', baseUrl), signal });
  if (res.status === 401) {
    res.body.dump().catch(() => undefined);
    return { baseUrl, challenges: parseWwwAuthenticate(res.headers['www-authenticate']) };
  }
  // Some registries answer /v2/ with 404 yet serve the API: treat like 200 (no auth asked).
  if ((res.status >= 200 && res.status < 300) || res.status === 404) {
    res.body.dump().catch(() => undefined);
    return { baseUrl, challenges: [] };
  }
  const text = await readBoundedText(res.body);
  throw httpStatusError(res.status, `ping ${baseUrl}/v2/`, text, header(res.headers, 'retry-after'));
}

/**
 * The base URL of `apiHost` where no ping is needed to choose the scheme: HTTP with plainHttp,
 * HTTPS for a registry not on loopback. Undefined for loopback without plainHttp (ping decides).
 */
export function unpingedBaseUrl(apiHost: string, plainHttp: boolean): string | undefined {
  if (plainHttp) return `http://${apiHost}`;
  return isLoopbackRegistry(apiHost) ? undefined : `https://${apiHost}`;
}

/**
 * Pings `apiHost`. With plainHttp, HTTP only. Loopback registries are tried over HTTPS first
 * and then over plain HTTP, as Docker does for insecure registries; others need HTTPS.
 * The fallback is only for a loopback port where nothing speaks TLS: a TLS server there
 * (its certificate failed, it wants a client certificate) is reported as it is, since plain
 * HTTP to it could only fail with a misleading "HTTP request to an HTTPS server". A proxy's
 * refusal is the proxy's, not the registry's, and no fallback either.
 */
export async function ping(transport: Transport, apiHost: string, plainHttp: boolean, signal?: AbortSignal): Promise<PingResult> {
  if (plainHttp) return pingOnce(transport, `http://${apiHost}`, signal);
  if (!isLoopbackRegistry(apiHost)) return pingOnce(transport, `https://${apiHost}`, signal);
  try {
    return await pingOnce(transport, `https://${apiHost}`, signal);
  } catch (httpsErr) {
    if (signal?.aborted || serverSpeaksTls(httpsErr) || isStargzError(httpsErr, ErrorCodes.PROXY)) throw httpsErr;
    return pingOnce(transport, `http://${apiHost}`, signal);
  }
}
