// `stargz-get config`: the effective configuration — the file's values over the defaults —
// as TOML one could paste into the file. Secrets (a mirror URL's password) are redacted.
import { stringify } from 'smol-toml';
import { DEFAULT_OPTIONS, type Options } from '../../config.js';
import { redact } from '../../errors.js';
import { loadConfigFile, topLevelKeys, REGISTRY_KEYS, type CliFileSettings } from '../../config-file.js';
import { defaultCacheDir } from '../../cache/defaults.js';
import { defaultPlatform, formatPlatform } from '../../registry/manifest.js';
import { CLIENT_DEFAULTS } from '../../registry/client.js';
import type { CliIo } from '../io.js';

export interface ConfigFlags {
  config?: string;
  json?: boolean;
}

const CLI_DEFAULTS: Required<Omit<CliFileSettings, 'hostsDir'>> = { retries: CLIENT_DEFAULTS.retries, quiet: false, plainHttp: false, insecure: false };

export function configCommand(flags: ConfigFlags, io: CliIo): void {
  const file = loadConfigFile(flags.config);
  const defaults: Record<string, unknown> = { ...DEFAULT_OPTIONS, cacheDir: defaultCacheDir(), platform: formatPlatform(defaultPlatform()) } satisfies Partial<Options>;
  const top: Record<string, unknown> = {};
  for (const { key, kind, group, name } of topLevelKeys()) {
    const given = (group === 'options' ? file.options : file.cli) as Record<string, unknown>;
    const v = given[name] ?? (group === 'options' ? defaults[name] : (CLI_DEFAULTS as Record<string, unknown>)[name]);
    if (v === undefined) continue;
    top[key] = kind === 'size' ? formatSize(v as number) : kind === 'duration' ? formatDuration(v as number) : v;
  }
  const registry: Record<string, Record<string, unknown>> = {};
  for (const [host, settings] of Object.entries(file.registries)) {
    const t: Record<string, unknown> = {};
    for (const [name, spec] of Object.entries(REGISTRY_KEYS)) {
      const v = (settings as Record<string, unknown>)[name];
      if (v !== undefined) t[spec.key] = v;
    }
    registry[host] = t;
  }
  const doc = Object.keys(registry).length > 0 ? { ...top, registry } : top;
  if (flags.json) {
    io.out(redact(JSON.stringify({ file: file.path ?? null, config: doc }, null, 2)));
    return;
  }
  io.out(`# ${file.path ? `from ${file.path}` : 'no configuration file'}; flags on the command line override these`);
  io.out(redact(stringify(doc)));
}

/** Sizes as the CLI takes them: the largest binary unit that divides exactly. */
function formatSize(n: number): string {
  for (const [unit, mult] of [['T', 1024 ** 4], ['G', 1024 ** 3], ['M', 1024 ** 2], ['K', 1024]] as const) {
    if (n >= mult && n % mult === 0) return `${n / mult}${unit}`;
  }
  return String(n);
}

function formatDuration(ms: number): string {
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}
