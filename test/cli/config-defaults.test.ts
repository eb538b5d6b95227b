// `stargz-get config` states every default config.ts states, including a command's own
// (mount's concurrency and timeout, sync's memory cache), and drops one the file overrides.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { COMMAND_DEFAULTS, DEFAULT_OPTIONS } from '../../src/config.js';
import { formatDuration, formatSize } from '../../src/cli/format.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';
import { runCli } from '../helpers/cli.js';

let work: string;
before(async () => {
  work = await makeTempDir('cfgdef-');
});
after(async () => {
  await removeDir(work);
});

test("stargz-get config shows each command's own defaults, unless the file sets that option", async () => {
  const env = { XDG_CONFIG_HOME: join(work, 'none') };
  const r = await runCli(['config'], { env });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`^concurrency = ${DEFAULT_OPTIONS.concurrency}$`, 'm'));
  assert.match(r.stdout, /^hosts-dir = "\/etc\/containerd\/certs\.d"$/m, 'containerd\'s hosts directory is a default too');
  const mount = `concurrency = ${COMMAND_DEFAULTS.mount.concurrency}, timeout = "${formatDuration(COMMAND_DEFAULTS.mount.requestTimeoutMs)}"`;
  assert.ok(r.stdout.includes(`# mount uses its own defaults for what this file does not set: ${mount}`), r.stdout);
  assert.ok(r.stdout.includes(`# sync uses its own defaults for what this file does not set: memory-cache = "${formatSize(COMMAND_DEFAULTS.sync.memoryCacheBytes)}", memory-budget = "${formatSize(COMMAND_DEFAULTS.sync.memoryBudgetBytes)}"`), r.stdout);

  const file = join(work, 'c.toml');
  await writeFile(file, 'concurrency = 4\n');
  const j = await runCli(['config', '--config', file, '--json'], { env });
  assert.equal(j.code, 0, j.stderr);
  const doc = JSON.parse(j.stdout) as { config: Record<string, unknown>; commandDefaults: Record<string, Record<string, unknown>> };
  assert.equal(doc.config.concurrency, 4);
  assert.deepEqual(doc.commandDefaults.mount, { timeout: formatDuration(COMMAND_DEFAULTS.mount.requestTimeoutMs) }, 'the file wins over mount\'s own concurrency');
});

test('--help states the defaults config.ts states', async () => {
  const r = await runCli(['sync', '--help']);
  assert.equal(r.code, 0, r.stderr);
  const help = r.stdout.replace(/\s+/g, ' ');
  assert.ok(help.includes(`(default ${DEFAULT_OPTIONS.concurrency}; mount: ${COMMAND_DEFAULTS.mount.concurrency})`), help);
  assert.ok(help.includes(`(default ${formatSize(DEFAULT_OPTIONS.memoryCacheBytes)}; sync: ${formatSize(COMMAND_DEFAULTS.sync.memoryCacheBytes)}; cat: ${formatSize(COMMAND_DEFAULTS.cat.memoryCacheBytes)}; export: ${formatSize(COMMAND_DEFAULTS.export.memoryCacheBytes)})`), help);
});
