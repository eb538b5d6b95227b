// Options every image command shares, and their translation into library options.
import { Command, Option } from 'commander';
import { dirname, resolve } from 'node:path';
import { CLIENT_DEFAULTS, COMMAND_DEFAULTS, DEFAULT_OPTIONS as D, LOG_DEFAULTS, parseDuration, parseSize, type Options } from '../config.js';
import type { OpenImageOptions } from '../image/open-image.js';
import { keychainFromFlags, type CredentialFlags } from './credentials.js';
import type { ImageReference } from '../reference/reference.js';
import { loadConfigFile, registrySettingsFor, type ConfigFile } from '../config-file.js';
import type { RegistryClientOptions } from '../registry/client.js';
import { defaultHostsDir, registryHosts } from '../registry/hosts.js';
import { certDirSettings } from '../registry/tls.js';
import { formatDuration, formatSize } from './format.js';
import { LOG_LEVELS, createLogger, type LogLevel, type Logger } from '../util/log.js';

const M = COMMAND_DEFAULTS.mount;

export interface CommonFlags extends CredentialFlags {
  platform?: string;
  plainHttp?: boolean;
  insecure?: boolean;
  certDir?: string;
  concurrency?: string;
  cacheDir?: string;
  cacheSize?: string;
  memoryCache?: string;
  memoryBudget?: string;
  offline?: boolean;
  quiet?: boolean;
  retries?: string;
  timeout?: string;
  minRate?: string;
  rateWindow?: string;
  maxRange?: string;
  insecureSkipTocVerify?: boolean;
  config?: string;
  hostsDir?: string;
  mirror?: string[];
  /** How many times -v was given. */
  verbose?: number;
  logLevel?: LogLevel;
}

export function addImageOptions(cmd: Command): Command {
  cmd
    .option('-u, --username <user>', 'registry user name')
    .option('-p, --password <password>', 'registry password (prefer --password-stdin)')
    .option('--password-stdin', 'read the registry password from standard input')
    .option('--credential <user:password>', 'registry credentials in one argument')
    // Resolved now: a detached mount's server runs in another directory.
    .option('--authfile <file>', "containers' auth.json to read before the other credential files", (v: string) => resolve(v))
    .option('--platform <os/arch[/variant]>', 'platform to pick from a multi-platform image (default: this host)')
    .option('--plain-http', 'talk HTTP, not HTTPS, to the registry')
    .option('--insecure', 'do not verify the registry TLS certificate')
    .option('--cert-dir <dir>', 'TLS for the registry: *.crt CA certificates (added to the system ones), NAME.cert + NAME.key client certificate (default: its certs.d directory)')
    .option('--concurrency <n>', `parallel range requests (default ${D.concurrency}; mount: ${M.concurrency})`);
  addTransferOptions(cmd)
    .addOption(new Option('--max-range <size>', `upper bound of one merged range request (default ${formatSize(D.maxRangeBytes)})`).hideHelp())
    .option('--cache-dir <dir>', 'on-disk chunk cache (default $XDG_CACHE_HOME/stargz-get)')
    .option('--cache-size <size>', `bound of the on-disk cache, e.g. 10G (default ${formatSize(D.cacheMaxBytes)})`)
    .option('--memory-cache <size>', `bound of the in-memory chunk cache, e.g. 256M (default ${formatSize(D.memoryCacheBytes)}; sync: ${formatSize(COMMAND_DEFAULTS.sync.memoryCacheBytes)}; cat: ${formatSize(COMMAND_DEFAULTS.cat.memoryCacheBytes)}; export: ${formatSize(COMMAND_DEFAULTS.export.memoryCacheBytes)})`)
    .option('--memory-budget <size>', `bound of chunk data and TOC in flight, on top of --memory-cache (default ${formatSize(D.memoryBudgetBytes)}; sync: ${formatSize(COMMAND_DEFAULTS.sync.memoryBudgetBytes)})`)
    .option('--offline', 'use only the cache: the last resolution of the tag, cached TOCs and chunks')
    .option('--insecure-skip-toc-verify', 'read layers without a TOC-digest annotation lazily, trusting the registry (unsafe)');
  return addOutputOptions(addMirrorOptions(cmd));
}

/** How long and how slowly a registry may answer: every command that talks to one (copy too: both sides). */
export function addTransferOptions(cmd: Command): Command {
  return cmd
    .option('--retries <n>', `retries of a failed request before giving up (default ${CLIENT_DEFAULTS.retries})`)
    .option('--timeout <duration>', `deadline for response headers and for a whole manifest or token, e.g. 30s (default ${formatDuration(D.requestTimeoutMs)}; mount: ${formatDuration(M.requestTimeoutMs)})`)
    .option('--min-rate <size>', `slowest blob transfer accepted, per second, e.g. 10K (default ${formatSize(D.minTransferRate)})`)
    .option('--rate-window <duration>', `how long a transfer may stay below --min-rate, e.g. 30s (default ${formatDuration(D.rateWindowMs)})`);
}

/** Mirrors of the registry an image is pulled from (copy: its source). */
export function addMirrorOptions(cmd: Command): Command {
  return cmd
    .option('--hosts-dir <dir>', "containerd hosts.toml directories: mirrors per registry (default /etc/containerd/certs.d when it exists)")
    .option('--mirror <url>', 'a mirror tried before the registry (pull and resolve); repeatable', (v: string, acc: string[] = []) => [...acc, v]);
}

/** The configuration file and what a command prints on stderr. */
export function addOutputOptions(cmd: Command): Command {
  return cmd
    .option('--config <file>', 'configuration file (default $XDG_CONFIG_HOME/stargz-get/config.toml)')
    .addOption(new Option('-q, --quiet', 'no progress display and no summary'))
    .option('-v, --verbose', 'more detail on stderr: -v each registry request and retry (info), -vv also each chunk looked up in the cache (debug)', (_: string, n: number | undefined) => (n ?? 0) + 1)
    .addOption(new Option('--log-level <level>', `what is printed on stderr besides errors (default ${LOG_DEFAULTS.level}: notices only)`).choices(LOG_LEVELS));
}

/** --quiet, else the configuration file's `quiet`. */
export function quietFrom(flags: Pick<CommonFlags, 'quiet' | 'config'>): boolean {
  return flags.quiet ?? loadConfigFile(flags.config).cli.quiet ?? false;
}

/**
 * -v is info, -vv (or more) debug; --log-level names the level itself, so the two together
 * contradict. Either beats the configuration file's `log-level`, which beats the default.
 */
export function logLevelFrom(flags: Pick<CommonFlags, 'verbose' | 'logLevel' | 'config'>): LogLevel {
  if (flags.verbose !== undefined && flags.logLevel !== undefined) {
    throw Object.assign(new Error('-v and --log-level contradict each other: give one'), { usage: true });
  }
  if (flags.logLevel !== undefined) return flags.logLevel;
  if (flags.verbose !== undefined) return flags.verbose >= 2 ? 'debug' : 'info';
  return loadConfigFile(flags.config).cli.logLevel ?? LOG_DEFAULTS.level;
}

/** The command's logger: its lines go where its notices go (stderr, or a detached mount's log). */
export function loggerFrom(flags: Pick<CommonFlags, 'verbose' | 'logLevel' | 'config'>, notice: (line: string) => void): Logger {
  return createLogger(logLevelFrom(flags), notice);
}

function int(text: string | undefined, name: string): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isInteger(n)) throw Object.assign(new Error(`${name} must be an integer`), { usage: true });
  return n;
}

/** `signal` ends every request of the image (Ctrl-C, SIGTERM). The keychain looks credentials up per registry and repository when asked. */
export async function openOptionsFrom(flags: CommonFlags, ref: ImageReference, sink: (m: string) => void, signal: AbortSignal): Promise<OpenImageOptions> {
  // Notices are the logger's warnings: --log-level error silences them too.
  const log = loggerFrom(flags, sink);
  const file = loadConfigFile(flags.config);
  const fromFlags: Partial<Options> = {
    concurrency: int(flags.concurrency, '--concurrency'),
    cacheDir: flags.cacheDir,
    cacheMaxBytes: flags.cacheSize !== undefined ? parseSize(flags.cacheSize) : undefined,
    memoryCacheBytes: flags.memoryCache !== undefined ? parseSize(flags.memoryCache) : undefined,
    memoryBudgetBytes: flags.memoryBudget !== undefined ? parseSize(flags.memoryBudget) : undefined,
    offline: flags.offline,
    platform: flags.platform,
    ...transferFlags(flags),
    maxRangeBytes: flags.maxRange !== undefined ? parseSize(flags.maxRange) : undefined,
    insecureSkipTocVerify: flags.insecureSkipTocVerify,
  };
  // Flags beat the file, the file beats config.ts defaults (filled by resolveOptions).
  const options: Partial<Options> = { ...file.options };
  for (const [k, v] of Object.entries(fromFlags)) if (v !== undefined) (options as Record<string, unknown>)[k] = v;
  const registry = await registryOptionsFrom(flags, ref.registry, file, log, signal);
  return { ...options, notice: registry.notice!, log, registry };
}

type TransferOptions = Pick<Options, 'requestTimeoutMs' | 'minTransferRate' | 'rateWindowMs'>;
type TransferFlags = Pick<CommonFlags, 'timeout' | 'minRate' | 'rateWindow'>;

function transferFlags(flags: TransferFlags): { [K in keyof TransferOptions]: TransferOptions[K] | undefined } {
  return {
    requestTimeoutMs: flags.timeout !== undefined ? parseDuration(flags.timeout) : undefined,
    minTransferRate: flags.minRate !== undefined ? parseSize(flags.minRate) : undefined,
    rateWindowMs: flags.rateWindow !== undefined ? parseDuration(flags.rateWindow) : undefined,
  };
}

/**
 * --timeout, --min-rate and --rate-window over the file's `timeout`, `min-rate`, `rate-window`,
 * for a command that builds its registry clients itself (copy); what neither sets is left to
 * the client's defaults (config.ts). Image commands get them through openOptionsFrom.
 */
export function transferOptionsFrom(flags: TransferFlags, file: ConfigFile): Partial<TransferOptions> {
  const out: Partial<TransferOptions> = {};
  const fromFlags = transferFlags(flags);
  for (const k of Object.keys(fromFlags) as Array<keyof TransferOptions>) {
    const v = fromFlags[k] ?? file.options[k];
    if (v !== undefined) out[k] = v;
  }
  return out;
}

/**
 * How to reach one registry, from the flags, the configuration file's settings for it and the
 * shared files: credentials (the keychain), plain HTTP, TLS verification and certificates,
 * mirrors, retries. Commands with two registries (copy) build one per side.
 */
export async function registryOptionsFrom(
  flags: Pick<CommonFlags, keyof CredentialFlags | 'plainHttp' | 'insecure' | 'certDir' | 'retries' | 'mirror' | 'hostsDir'>,
  registry: string,
  file: ConfigFile,
  log: Logger,
  signal: AbortSignal,
): Promise<RegistryClientOptions> {
  const notice = (m: string): void => log.warn(m);
  const settings = registrySettingsFor(file, registry);
  // The file's paths are relative to the file (a detached mount's server runs elsewhere).
  const fromFile = (p: string | undefined): string | undefined => (p === undefined || file.path === undefined ? p : resolve(dirname(file.path), p));
  const authfile = flags.authfile ?? fromFile(settings.authfile);
  const keychain = await keychainFromFlags({ ...flags, ...(authfile !== undefined ? { authfile } : {}) }, notice);
  const certDir = flags.certDir ?? fromFile(settings.certDir);
  const retries = int(flags.retries, '--retries') ?? file.cli.retries;
  return {
    keychain,
    plainHttp: flags.plainHttp ?? settings.plainHttp ?? file.cli.plainHttp ?? false,
    insecure: flags.insecure ?? settings.insecure ?? file.cli.insecure ?? false,
    ...(certDir !== undefined ? { tls: certDirSettings(certDir) } : {}),
    ...(retries !== undefined ? { retries } : {}),
    settings,
    hosts: registryHosts(registry, {
      mirrors: [...(flags.mirror ?? []), ...(settings.mirrors ?? [])],
      hostsDir: flags.hostsDir ?? file.cli.hostsDir ?? defaultHostsDir(),
    }),
    notice,
    log,
    signal,
  };
}
