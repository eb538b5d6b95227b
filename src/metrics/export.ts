// Getting the metrics out: `mount --metrics-addr HOST:PORT` serves them over HTTP at /metrics
// for as long as the mount lives; `sync --metrics-file FILE` writes them once at the end, in
// node_exporter's textfile format (the same Prometheus text), atomically.
import { createServer, type Server } from 'node:http';
import { isIP } from 'node:net';
import { resolve } from 'node:path';
import { ErrorCodes, StargzError } from '../errors.js';
import type { FetchMetrics } from './fetch-metrics.js';
import { writeFileAtomically } from '../util/atomic-file.js';

export const METRICS_PATH = '/metrics';

export interface MetricsAddress {
  host: string;
  port: number;
}

/** `HOST:PORT` (`[::1]:9100` for IPv6); HOST is an IP address or `localhost`. A bad one is a usage error. */
export function parseMetricsAddr(text: string): MetricsAddress {
  const bad = (why: string): StargzError => new StargzError(ErrorCodes.USAGE, `--metrics-addr ${JSON.stringify(text)}: ${why} (example: 127.0.0.1:9100)`);
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text.trim());
  if (!m) throw bad('want HOST:PORT');
  const host = m[1] ?? m[2]!;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) throw bad('the port must be between 1 and 65535');
  if (host !== 'localhost' && isIP(host) === 0) throw bad('the host must be an IP address or localhost');
  if (m[1] !== undefined && isIP(host) !== 6) throw bad('brackets are for IPv6 addresses');
  return { host, port };
}

export interface MetricsServer {
  /** Where it listens (the port the kernel gave, for port 0). */
  readonly address: MetricsAddress;
  close(): Promise<void>;
}

/** Serves `metrics` at GET /metrics, 404 elsewhere, 405 for other methods. Fails (ERR_IO) when the address cannot be bound. */
export async function serveMetrics(metrics: FetchMetrics, addr: MetricsAddress): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== METRICS_PATH) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end(`not found; the metrics are at ${METRICS_PATH}\n`);
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    metrics.text().then(
      (text) => res.writeHead(200, { 'content-type': metrics.contentType }).end(req.method === 'HEAD' ? undefined : text),
      (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`cannot collect the metrics: ${err.message}\n`),
    );
  });
  // A scraper that keeps its connection open must not hold an unmount up.
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolveListen, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(new StargzError(ErrorCodes.IO, `cannot serve metrics at ${formatAddr(addr)}: ${err.code ?? err.message}`, { cause: err })),
    );
    server.listen(addr.port, addr.host, () => resolveListen());
  });
  const bound = server.address();
  const address = typeof bound === 'object' && bound ? { host: addr.host, port: bound.port } : addr;
  return {
    address,
    close: () =>
      new Promise<void>((resolveClose) => {
        server.close(() => resolveClose());
        server.closeAllConnections();
      }),
  };
}

export function formatAddr(addr: MetricsAddress): string {
  return isIP(addr.host) === 6 ? `[${addr.host}]:${addr.port}` : `${addr.host}:${addr.port}`;
}

/**
 * Writes the metrics to `file` as node_exporter's textfile collector wants it: written under a
 * temporary name in the same directory, then renamed over FILE, so a collector never reads half.
 */
export async function writeMetricsFile(metrics: FetchMetrics, file: string): Promise<void> {
  const target = resolve(file);
  try {
    await writeFileAtomically(target, await metrics.text(), { mode: 0o644 });
  } catch (err) {
    throw new StargzError(ErrorCodes.IO, `cannot write the metrics file ${target}: ${(err as Error).message}`, { cause: err });
  }
}
