// `stargz-get config`: the effective configuration — the file's values over the defaults —
// as TOML one could paste into the file. Secrets (a mirror URL's password) are redacted.
import { stringify } from 'smol-toml';
import { CLIENT_DEFAULTS, COMMAND_DEFAULTS, DEFAULT_OPTIONS, LOG_DEFAULTS, type Options } from '../../config.js';
import { redact } from '../../errors.js';
import { FILE_KEYS, loadConfigFile, topLevelKeys, REGISTRY_KEYS, type CliFileSettings } from '../../config-file.js';
import { defaultCacheDir } from '../../cache/defaults.js';
import { defaultPlatform, formatPlatform } from '../../registry/manifest.js';
import { DEFAULT_HOSTS_DIR } from '../../registry/hosts.js';
import { formatDuration, formatSize } from '../format.js';
import type { CliIo } from '../io.js';

export interface ConfigFlags {
  config?: string;
  json?: boolean;
}

// hosts-dir: containerd's directory, read when it exists (hosts.ts), so shown as the default.
const CLI_DEFAULTS: Required<CliFileSettings> = { retries: CLIENT_DEFAULTS.retries, quiet: false, plainHttp: false, insecure: false, hostsDir: DEFAULT_HOSTS_DIR, logLevel: LOG_DEFAULTS.level };

export function configCommand(flags: ConfigFlags, io: CliIo): void {
  const file = loadConfigFile(flags.config);
  const defaults: Record<string, unknown> = { ...DEFAULT_OPTIONS, cacheDir: defaultCacheDir(), platform: formatPlatform(defaultPlatform()) } satisfies Partial<Options>;
  const top: Record<string, unknown> = {};
  for (const { key, kind, group, name } of topLevelKeys()) {
    const given = (group === 'options' ? file.options : file.cli) as Record<string, unknown>;
    const v = given[name] ?? (group === 'options' ? defaults[name] : (CLI_DEFAULTS as Record<string, unknown>)[name]);
    if (v === undefined) continue;
    top[key] = fileValue(v, kind);
  }
  // A command's own default applies where neither the file nor a flag sets the option.
  const byCommand: Record<string, Record<string, unknown>> = {};
  for (const [command, overrides] of Object.entries(COMMAND_DEFAULTS)) {
    for (const [name, v] of Object.entries(overrides)) {
      if ((file.options as Record<string, unknown>)[name] !== undefined) continue;
      const spec = FILE_KEYS[name as keyof Options];
      (byCommand[command] ??= {})[spec.key] = fileValue(v, spec.kind);
    }
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
    io.out(redact(JSON.stringify({ file: file.path ?? null, config: doc, commandDefaults: byCommand }, null, 2)));
    return;
  }
  io.out(`# ${file.path ? `from ${file.path}` : 'no configuration file'}; flags on the command line override these`);
  for (const [command, values] of Object.entries(byCommand)) {
    const list = Object.entries(values).map(([k, v]) => `${k} = ${JSON.stringify(v)}`).join(', ');
    io.out(`# ${command} uses its own defaults for what this file does not set: ${list}`);
  }
  io.out(redact(stringify(doc)));
}

function fileValue(v: unknown, kind: string): unknown {
  return kind === 'size' ? formatSize(v as number) : kind === 'duration' ? formatDuration(v as number) : v;
}
