// The stargz-get command line. Commands are thin: parse, call the library, print.
// Only this module exits the process.
import { Argument, Command, CommanderError, Option } from 'commander';
import { readFileSync } from 'node:fs';
import { setMaxListeners } from 'node:events';
import { DEFAULT_OPTIONS } from '../config.js';
import { ErrorCodes, StargzError, escapeControl, redact, scrub, toStargzError } from '../errors.js';
import { exitStatusFor, hintFor } from './exit-codes.js';
import { addImageOptions } from './common.js';
import { formatDuration } from './format.js';
import { errnoCode } from '../util/errno-code.js';
import type { CliIo } from './io.js';
// Commands are loaded when they run: a start-up that loads only what it uses is faster
// (a detached mount starts the CLI twice).
import type { LsFlags } from './commands/ls.js';
import type { CatFlags } from './commands/cat.js';
import type { SyncFlags } from './commands/sync.js';
import type { InfoFlags } from './commands/info.js';
import type { CacheFlags } from './commands/cache.js';
import type { MountFlags } from './commands/mount.js';
import type { ConfigFlags } from './commands/config.js';
import type { LoginFlags } from './commands/login.js';
import type { DiffFlags } from './commands/diff.js';
import type { ExportFlags } from './commands/export.js';
import { EXPORT_FORMATS } from '../export/formats.js';
import { PREFETCH_MODES } from '../prefetch/modes.js';
import { COMPLETION_SHELLS, completionScript, type CompletionShell } from './completion.js';
import { addCopyCommand } from './commands/copy.js';

function version(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/** What a command that ran to the end asks main to exit with (diff: 1 when the images differ, as diff(1)). */
export interface CommandResult {
  status: number;
}

/**
 * `--json` on the command line (before a `--`): errors are printed as one JSON document too,
 * usage errors included, which is why this reads argv rather than the parsed options.
 */
export function wantsJsonErrors(argv: readonly string[]): boolean {
  const args = argv.slice(2);
  const end = args.indexOf('--');
  return (end < 0 ? args : args.slice(0, end)).includes('--json');
}

/**
 * The one way a failure reaches stderr: `stargz-get: CODE: message (hint)`, or with --json
 * `{"error":{"code","message","hint"?}}` on one line. Scrubbed either way (no secret, no
 * control character); the exit status does not depend on the form.
 */
export function errorText(e: StargzError, json: boolean, stack?: string): string {
  const message = scrub(e.message);
  const hint = hintFor(e.code);
  const safeStack = stack === undefined ? undefined : redact(stack).split('\n').map(escapeControl).join('\n');
  if (json) return JSON.stringify({ error: { code: e.code, message, ...(hint ? { hint } : {}), ...(safeStack ? { stack: safeStack } : {}) } }) + '\n';
  const text = `stargz-get: ${e.code}: ${message}${hint ? ` (${hint})` : ''}\n`;
  return safeStack === undefined ? text : `${text}${safeStack}\n`;
}

export function buildProgram(io: CliIo, result: CommandResult = { status: 0 }, jsonErrors = false): Command {
  const program = new Command('stargz-get')
    .description('Get files out of eStargz container images without pulling them.')
    .version(version())
    // Help after a usage error is for people; a script that asked for JSON gets the document alone.
    .showHelpAfterError(!jsonErrors)
    .exitOverride()
    .configureOutput({
      writeOut: (s) => process.stdout.write(s),
      writeErr: (s) => process.stderr.write(s),
      outputError: (s, write) =>
        jsonErrors
          ? write(errorText(new StargzError(ErrorCodes.USAGE, s.replace(/^error: /, '').trim()), true))
          : write(`stargz-get: ${ErrorCodes.USAGE}: ${s.replace(/^error: /, '')}`),
    });

  addImageOptions(
    program
      .command('sync')
      .description('materialize REF[/PATH] into DEST exactly as an OCI unpacker would, fetching only what PATH needs')
      .argument('<source>', 'image reference with an optional path, e.g. ghcr.io/org/img:tag/etc')
      .argument('<dest>', 'destination (a directory PATH becomes DEST; a file lands in DEST if it is a directory)')
      .option('--delete', 'remove entries of DEST that PATH does not have (never following a symlink out of DEST)')
      .option('--quick', "reuse a file DEST has when size and mtime match (rsync's quick check) instead of when its sha256 matches the TOC")
      .option('-n, --dry-run', 'print what would be fetched, written and deleted; change nothing')
      .option('--json', 'print the summary (or the dry run) as one JSON document on stdout; progress and notices stay on stderr')
      .option('--no-cache', 'do not write fetched chunks to the disk cache (a one-off sync: each chunk is written once, to DEST); chunks already cached are still used')
      .option('--metrics-file <file>', "write the fetch metrics to FILE at the end, atomically, in Prometheus text (node_exporter's textfile format: name it *.prom)"),
  ).action(async (source: string, dest: string, flags: SyncFlags) => (await import('./commands/sync.js')).syncCommand(source, dest, flags, io));

  addImageOptions(
    program
      .command('ls')
      .description('list REF[/PATH] from the TOCs alone')
      .argument('<source>', 'image reference with an optional path')
      .option('-l, --long', 'long listing: mode, links, owner, size, mtime')
      .option('-R, --recursive', 'list the whole subtree')
      .option('--json', 'machine-readable output'),
  ).action(async (source: string, flags: LsFlags) => (await import('./commands/ls.js')).lsCommand(source, flags, io));

  addImageOptions(
    program
      .command('cat')
      .description('print the bytes of files REF/PATH (symlinks followed inside the image), streamed as their chunks verify')
      .argument('<source...>', 'image reference with a path to a regular file; several are printed one after another')
      .option('-o, --output <file>', 'write to FILE instead of stdout, atomically: complete or not there at all'),
  ).action(async (sources: string[], flags: CatFlags) => (await import('./commands/cat.js')).catCommand(sources, flags, io));

  addImageOptions(
    program
      .command('info')
      .description('show the image: manifest, platform, layers (format, lazy or not, sizes, file counts)')
      .argument('<ref>', 'image reference')
      .option('--json', 'machine-readable output'),
  ).action(async (ref: string, flags: InfoFlags) => (await import('./commands/info.js')).infoCommand(ref, flags, io));

  addImageOptions(
    program
      .command('diff')
      .description(
        "what changed from REF_A to REF_B, from the TOCs alone: docker diff's A/C/D lines, sorted; exit status 0 when equal, 1 when they differ " +
          '(plain tar+gzip layers have no TOC: they are fetched whole once, then the cache serves them)',
      )
      .argument('<ref_a>', 'the image compared from')
      .argument('<ref_b>', 'the image compared to')
      .argument('[path]', 'compare this subtree only (an exact path in both images)')
      .option('--ignore-mtime', "do not count modification times (a directory's never counts)")
      .option('--json', 'machine-readable output: an array of {path, change, fields?}'),
  ).action(async (refA: string, refB: string, path: string | undefined, flags: DiffFlags) => {
    result.status = await (await import('./commands/diff.js')).diffCommand(refA, refB, path, flags, io);
  });

  addImageOptions(
    program
      .command('export')
      .description('write the image as a docker-archive tar or an OCI layout (blobs streamed and verified), or with --rootfs REF[/PATH] as one flattened tar of its files')
      .argument('<source>', 'image reference (with --rootfs, an optional path in it)')
      .argument('<output>', "a file (docker-archive, or an OCI layout as tar, when it ends in .tar), a directory (an OCI layout), or - for stdout")
      .addOption(new Option('--format <format>', 'docker-archive (default for a .tar file or -) or oci (default for a directory)').choices(EXPORT_FORMATS))
      .option('--rootfs', 'one tar of the merged files below PATH (whiteouts applied, hardlinks, xattrs), fetching only their chunks')
      .option('--json', 'print the summary as one JSON document on stdout'),
  ).action(async (source: string, output: string, flags: ExportFlags) => (await import('./commands/export.js')).exportCommand(source, output, flags, io));

  addImageOptions(
    program
      .command('mount')
      .description('mount the image read-only at MOUNTPOINT; reads fetch only the chunks they touch')
      .argument('<ref>', 'image reference')
      .argument('<mountpoint>', 'an existing empty directory')
      .option('-d, --detach', 'return once the mount is ready; serve it from a background process')
      .option('--allow-other', 'let other users see the mount (needs user_allow_other in /etc/fuse.conf unless root)')
      .addOption(
        new Option('--prefetch <mode>', "background prefetch: none, landmark (the image author's prioritized files) or all").choices(PREFETCH_MODES).default('landmark'),
      )
      .option('--log-file <file>', 'where a detached mount logs (default: <cache-dir>/mounts/<name>.log)')
      .option('--json', 'once the mount is ready, print {reference, mountpoint, pid, detached, logFile} as one JSON document on stdout')
      .option('--metrics-addr <host:port>', 'serve Prometheus metrics at http://HOST:PORT/metrics while mounted, e.g. 127.0.0.1:9100'),
  ).action(async (ref: string, mountpoint: string, flags: MountFlags) => {
    // Loaded on demand: fuse-native is only needed by mount.
    const { mountCommand } = await import('./commands/mount.js');
    await mountCommand(ref, mountpoint, flags, io);
  });

  addCopyCommand(program, io);

  program
    .command('umount')
    .alias('unmount')
    .description('unmount a stargz-get mount')
    .argument('<mountpoint>')
    .action(async (mountpoint: string) => {
      const { umountCommand } = await import('./commands/mount.js');
      await umountCommand(mountpoint, io);
    });

  program
    .command('config')
    .description('print the effective configuration (the file over the defaults; secrets redacted)')
    .option('--config <file>', 'configuration file (default $XDG_CONFIG_HOME/stargz-get/config.toml)')
    .option('--json', 'machine-readable output')
    .action(async (flags: ConfigFlags) => (await import('./commands/config.js')).configCommand(flags, io));

  program
    .command('login')
    .description("check credentials against REGISTRY and store them in Docker's config.json (or its credential helper)")
    .argument('<registry>', 'e.g. ghcr.io or 127.0.0.1:5000')
    .option('-u, --username <user>', 'registry user name (asked on a terminal)')
    .option('-p, --password <password>', 'registry password (prefer --password-stdin; asked without echo on a terminal)')
    .option('--password-stdin', 'read the password from standard input')
    .option('--plain-http', 'talk HTTP, not HTTPS, to the registry')
    .option('--insecure', 'do not verify the registry TLS certificate')
    .option('--timeout <duration>', `deadline for each request, e.g. 30s (default ${formatDuration(DEFAULT_OPTIONS.requestTimeoutMs)})`)
    .action(async (registry: string, flags: LoginFlags) => (await import('./commands/login.js')).loginCommand(registry, flags, io));

  program
    .command('logout')
    .description("remove REGISTRY's credentials from Docker's config.json (or its credential helper)")
    .argument('<registry>')
    .action(async (registry: string) => (await import('./commands/login.js')).logoutCommand(registry, io));

  program
    .command('completion')
    .description('print a shell completion script: eval "$(stargz-get completion bash)", or see the README for zsh and fish')
    .addArgument(new Argument('<shell>', 'the shell').choices(COMPLETION_SHELLS))
    .action((shell: CompletionShell) => {
      process.stdout.write(completionScript(program, shell));
    });

  program.addHelpText(
    'after',
    '\nImage commands take -v (each registry request and retry), -vv (also each chunk cache lookup) or --log-level.\n' +
      'With --json, output is one JSON document on stdout and a failure one line {"error":{"code","message"}} on stderr,\n' +
      'with the same exit status (README, Errors).',
  );

  const cache = program.command('cache').description('inspect and manage the on-disk chunk cache');
  cache
    .command('info')
    .description('what the cache holds')
    .option('--cache-dir <dir>', 'cache directory')
    .option('--config <file>', 'configuration file (its cache-dir)')
    .option('--json', 'machine-readable output')
    .action(async (flags: CacheFlags) => (await import('./commands/cache.js')).cacheInfoCommand(flags, io));
  cache
    .command('prune')
    .description('evict least-recently-used chunks until the cache holds at most --max-size')
    .option('--cache-dir <dir>', 'cache directory')
    .option('--config <file>', 'configuration file (its cache-dir)')
    .requiredOption('--max-size <size>', 'e.g. 2G')
    .action(async (flags: CacheFlags) => (await import('./commands/cache.js')).cachePruneCommand(flags, io));
  cache
    .command('clear')
    .description('remove everything from the cache')
    .option('--cache-dir <dir>', 'cache directory')
    .option('--config <file>', 'configuration file (its cache-dir)')
    .action(async (flags: CacheFlags) => (await import('./commands/cache.js')).cacheClearCommand(flags, io));
  return program;
}

/** stdout could not be written any more; its `cause` is the stream's error. */
class StdoutFailed extends StargzError {
  constructor(cause: Error) {
    super(ErrorCodes.IO, `cannot write to stdout: ${cause.message}`, { cause });
  }
}

/** After a signal, the command gets this long to clean up (unmount, remove temporaries) before we exit anyway. */
const SHUTDOWN_GRACE_MS = 10_000;
/** Once the command has returned after a signal, what still holds the event loop gets this long. */
const DRAIN_AFTER_SIGNAL_MS = 300;
const SIGNAL_STATUS: Partial<Record<NodeJS.Signals, number>> = { SIGINT: 130, SIGTERM: 143 };

export async function main(argv: string[]): Promise<void> {
  const json = wantsJsonErrors(argv);
  const controller = new AbortController();
  // Every in-flight request listens on this one signal.
  setMaxListeners(0, controller.signal);
  let caught: NodeJS.Signals | undefined;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (controller.signal.aborted) process.exit(SIGNAL_STATUS[sig] ?? 130);
    caught = sig;
    controller.abort(new StargzError(ErrorCodes.ABORTED, `interrupted by ${sig}`));
    // Cleanup is bounded too: a stuck unmount or close must not keep us alive.
    setTimeout(() => {
      process.stderr.write(errorText(new StargzError(ErrorCodes.ABORTED, `did not stop within ${SHUTDOWN_GRACE_MS / 1000} s of ${sig}; exiting`), json));
      process.exit(SIGNAL_STATUS[sig] ?? 130);
    }, SHUTDOWN_GRACE_MS).unref();
  };
  // Messages carry text from images and servers: no secret and no control character reaches
  // stderr or a mount log. stdout is data (listings, JSON): escaped on a terminal only.
  const outIsTTY = Boolean(process.stdout.isTTY);
  // `ls | head`: once stdout fails (EPIPE when the reader went away), the next line ends the
  // command: quietly with status 0 for EPIPE, as ls(1) ends under SIGPIPE. Byte streams (cat,
  // export -) see the error themselves (util/stdout.ts) and decide.
  let stdoutFailed: Error | undefined;
  process.stdout.on('error', (err) => (stdoutFailed ??= err));
  const io: CliIo = {
    out: (line) => {
      if (stdoutFailed) throw new StdoutFailed(stdoutFailed);
      process.stdout.write((outIsTTY ? escapeControl(line) : line) + '\n');
    },
    err: (line) => process.stderr.write(scrub(line) + '\n'),
    notice: (line) => process.stderr.write(`stargz-get: ${scrub(line)}\n`),
    errStream: process.stderr,
    outIsTTY,
    signal: controller.signal,
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const result: CommandResult = { status: 0 };
    await buildProgram(io, result, json).parseAsync(argv);
    // Lines written last may fail after the command returned (a full disk under `> FILE`).
    await new Promise<void>((resolve) => process.stdout.write('', () => resolve()));
    if (stdoutFailed) throw new StdoutFailed(stdoutFailed);
    process.exitCode = result.status;
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode === 0 ? 0 : 2;
      return;
    }
    if (err instanceof StdoutFailed && errnoCode(err.cause) === 'EPIPE') {
      process.exitCode = 0;
      return;
    }
    const e = (err as { usage?: boolean }).usage ? new StargzError(ErrorCodes.USAGE, (err as Error).message) : toStargzError(err);
    process.stderr.write(errorText(e, json, process.env.STARGZ_GET_DEBUG ? String((err as Error).stack) : undefined));
    process.exitCode = e.code === ErrorCodes.ABORTED && caught ? (SIGNAL_STATUS[caught] ?? 130) : exitStatusFor(e.code);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    // Told to stop and done cleaning up: whatever still holds the loop (a worker thread, an
    // idle socket) must not make Ctrl-C feel ignored.
    if (caught) setTimeout(() => process.exit(), DRAIN_AFTER_SIGNAL_MS).unref();
  }
}
