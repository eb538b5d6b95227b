// The configuration file ($XDG_CONFIG_HOME/stargz-get/config.toml, or --config FILE): defaults
// for the CLI's options and per-registry settings. Precedence: flags > file > config.ts defaults.
// The schema lives here once; FILE_KEYS is typed against Options, so a new option in config.ts
// does not compile until it has a key (or is stated as not a file key).
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { ErrorCodes, StargzError, registerSecret } from './errors.js';
import { parseDuration, parseSize, type Options } from './config.js';
import type { RegistrySettings } from './registry/settings.js';
import { isTable, parseToml } from './util/toml.js';
import { errnoCode } from './util/errno-code.js';
import { LOG_LEVELS, isLogLevel, type LogLevel } from './util/log.js';

type Kind = 'int' | 'bool' | 'string' | 'size' | 'duration' | 'log-level';

/** Options key -> file key and value kind. Exhaustive over Options by its type. */
export const FILE_KEYS: { [K in keyof Options]-?: { key: string; kind: Kind } } = {
  concurrency: { key: 'concurrency', kind: 'int' },
  cacheDir: { key: 'cache-dir', kind: 'string' },
  cacheMaxBytes: { key: 'cache-size', kind: 'size' },
  memoryCacheBytes: { key: 'memory-cache', kind: 'size' },
  memoryBudgetBytes: { key: 'memory-budget', kind: 'size' },
  offline: { key: 'offline', kind: 'bool' },
  platform: { key: 'platform', kind: 'string' },
  maxGapBytes: { key: 'max-gap', kind: 'size' },
  maxRangeBytes: { key: 'max-range', kind: 'size' },
  requestTimeoutMs: { key: 'timeout', kind: 'duration' },
  minTransferRate: { key: 'min-rate', kind: 'size' },
  rateWindowMs: { key: 'rate-window', kind: 'duration' },
  insecureSkipTocVerify: { key: 'insecure-skip-toc-verify', kind: 'bool' },
};

/** CLI options that are not library Options (registry client and output). */
export interface CliFileSettings {
  retries?: number;
  quiet?: boolean;
  plainHttp?: boolean;
  insecure?: boolean;
  hostsDir?: string;
  logLevel?: LogLevel;
}
const CLI_KEYS: { [K in keyof CliFileSettings]-?: { key: string; kind: Kind } } = {
  retries: { key: 'retries', kind: 'int' },
  quiet: { key: 'quiet', kind: 'bool' },
  plainHttp: { key: 'plain-http', kind: 'bool' },
  insecure: { key: 'insecure', kind: 'bool' },
  hostsDir: { key: 'hosts-dir', kind: 'string' },
  logLevel: { key: 'log-level', kind: 'log-level' },
};
/** Per-registry keys of `[registry."host:port"]`. */
const REGISTRY_KEYS: { [K in keyof RegistrySettings]-?: { key: string; kind: Kind | 'string[]' } } = {
  plainHttp: { key: 'plain-http', kind: 'bool' },
  insecure: { key: 'insecure', kind: 'bool' },
  certDir: { key: 'cert-dir', kind: 'string' },
  mirrors: { key: 'mirrors', kind: 'string[]' },
  authfile: { key: 'authfile', kind: 'string' },
};

export interface ConfigFile {
  /** The file read, or undefined when the default file does not exist. */
  path: string | undefined;
  options: Partial<Options>;
  cli: CliFileSettings;
  /** By registry host as written in the reference (`host:port`). */
  registries: Record<string, RegistrySettings>;
}

export function defaultConfigPath(): string {
  const base = process.env.XDG_CONFIG_HOME || join(homedir(), '.config');
  return join(base, 'stargz-get', 'config.toml');
}

/** The files read by this process, by path: a command asks for its file in several places. */
const loaded = new Map<string, ConfigFile>();

/**
 * Loads `explicit` (must exist) or the default file (may be missing), once per process: the
 * CLI runs one command a process, and its log level, quiet flag and options each consult the
 * file. (A failure is not remembered: it ends the command.)
 */
export function loadConfigFile(explicit?: string): ConfigFile {
  const path = explicit ?? defaultConfigPath();
  const known = loaded.get(path);
  if (known) return known;
  const file = readConfigFile(path, explicit !== undefined);
  loaded.set(path, file);
  return file;
}

function readConfigFile(path: string, explicit: boolean): ConfigFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = errnoCode(err);
    if (!explicit && code === 'ENOENT') return { path: undefined, options: {}, cli: {}, registries: {} };
    throw new StargzError(ErrorCodes.CONFIG, `${path}: cannot read the configuration file (${code ?? String(err)})`, { cause: err });
  }
  return parseConfigText(text, path);
}

/** Parses a configuration file's text. Pure apart from remembering secrets for redaction. */
export function parseConfigText(text: string, path: string): ConfigFile {
  const { doc, fail } = parseToml(text, path);
  const out: ConfigFile = { path, options: {}, cli: {}, registries: {} };
  const byKey = new Map<string, { set: (v: unknown) => void; kind: Kind }>();
  for (const [name, spec] of Object.entries(FILE_KEYS)) byKey.set(spec.key, { kind: spec.kind, set: (v) => ((out.options as Record<string, unknown>)[name] = v) });
  for (const [name, spec] of Object.entries(CLI_KEYS)) byKey.set(spec.key, { kind: spec.kind, set: (v) => ((out.cli as Record<string, unknown>)[name] = v) });
  for (const [key, raw] of Object.entries(doc)) {
    if (key === 'registry') {
      if (!isTable(raw)) fail(undefined, key, 'must be a table of [registry."host:port"] tables');
      for (const [host, settings] of Object.entries(raw as Record<string, unknown>)) {
        const table = `registry.${JSON.stringify(host)}`;
        if (!isTable(settings)) fail(undefined, table, 'must be a table');
        out.registries[host] = registrySettings(settings as Record<string, unknown>, (k, why) => fail(table, k, why));
      }
      continue;
    }
    const spec = byKey.get(key);
    if (!spec) fail(undefined, key, `unknown key (known: ${[...byKey.keys(), 'registry'].join(', ')})`);
    spec!.set(convert(raw, spec!.kind, (why) => fail(undefined, key, why)));
  }
  return out;
}

function registrySettings(table: Record<string, unknown>, fail: (key: string, why: string) => never): RegistrySettings {
  const out: Record<string, unknown> = {};
  const specs = Object.entries(REGISTRY_KEYS);
  for (const [key, raw] of Object.entries(table)) {
    const found = specs.find(([, s]) => s.key === key);
    if (!found) fail(key, `unknown key (known: ${specs.map(([, s]) => s.key).join(', ')})`);
    const [name, spec] = found!;
    if (spec.kind === 'string[]') {
      if (!Array.isArray(raw) || raw.some((v) => typeof v !== 'string')) fail(key, 'must be an array of strings');
      for (const url of raw as string[]) registerUrlSecret(url);
      out[name] = raw;
    } else out[name] = convert(raw, spec.kind, (why) => fail(key, why));
  }
  return out as RegistrySettings;
}

/** A mirror URL may carry user:password: that password is a secret from now on. */
function registerUrlSecret(url: string): void {
  try {
    const u = new URL(url);
    if (u.password) registerSecret(decodeURIComponent(u.password));
  } catch {
    // Not a URL: hosts.ts reports it when it is used.
  }
}

function convert(v: unknown, kind: Kind, fail: (why: string) => never): unknown {
  switch (kind) {
    case 'bool':
      return typeof v === 'boolean' ? v : fail(`must be true or false, got ${describe(v)}`);
    case 'string':
      return typeof v === 'string' && v !== '' ? v : fail(`must be a non-empty string, got ${describe(v)}`);
    case 'int':
      return typeof v === 'number' && Number.isInteger(v) ? v : fail(`must be an integer, got ${describe(v)}`);
    case 'size':
      if (typeof v === 'number' && Number.isInteger(v) && v >= 0) return v;
      if (typeof v === 'string') return parseOr(() => parseSize(v), fail);
      return fail(`must be a size like "512M" or a number of bytes, got ${describe(v)}`);
    case 'duration':
      if (typeof v === 'number' && v > 0) return Math.round(v * 1000);
      if (typeof v === 'string') return parseOr(() => parseDuration(v), fail);
      return fail(`must be a duration like "30s" or a number of seconds, got ${describe(v)}`);
    case 'log-level':
      return typeof v === 'string' && isLogLevel(v) ? v : fail(`must be one of ${LOG_LEVELS.join(', ')}, got ${describe(v)}`);
  }
}

function parseOr(fn: () => number, fail: (why: string) => never): number {
  try {
    return fn();
  } catch (err) {
    return fail((err as Error).message);
  }
}

function describe(v: unknown): string {
  if (Array.isArray(v)) return 'an array';
  if (isTable(v)) return 'a table';
  return `${typeof v} ${JSON.stringify(v)}`;
}

/** The file's settings for `registry` (as the reference names it), or none. */
export function registrySettingsFor(file: ConfigFile, registry: string): RegistrySettings {
  return file.registries[registry] ?? {};
}

/** Every key the file may hold at its top level, with its kind: for `stargz-get config`. */
export function topLevelKeys(): { key: string; kind: Kind; group: 'options' | 'cli'; name: string }[] {
  return [
    ...Object.entries(FILE_KEYS).map(([name, s]) => ({ ...s, group: 'options' as const, name })),
    ...Object.entries(CLI_KEYS).map(([name, s]) => ({ ...s, group: 'cli' as const, name })),
  ];
}

export { REGISTRY_KEYS };
