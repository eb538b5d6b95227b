// `stargz-get copy SRC_REF DST_REF`: the options (named per side as skopeo names them) and the
// command. Registered by main.ts; the copy itself (src/copy/) and the registry client load
// only when it runs.
import { Command } from 'commander';
import { resolve } from 'node:path';
import { ErrorCodes, StargzError } from '../../errors.js';
import { addMirrorOptions, addOutputOptions, addTransferOptions, loggerFrom, quietFrom, registryOptionsFrom, transferOptionsFrom, type CommonFlags } from '../common.js';
import { formatBytes } from '../format.js';
import type { CliIo } from '../io.js';

/** One side's flags: --src-* or --dest-*. */
interface SideFlags {
  creds?: string;
  authfile?: string;
  tlsVerify?: boolean;
  certDir?: string;
  plainHttp?: boolean;
}

/** The transfer, mirror and output flags are the image commands' own (common.ts). */
export interface CopyFlags extends Pick<CommonFlags, 'retries' | 'timeout' | 'minRate' | 'rateWindow' | 'mirror' | 'hostsDir' | 'config' | 'quiet' | 'verbose' | 'logLevel'> {
  allPlatforms?: boolean;
  platform?: string;
  srcCreds?: string;
  destCreds?: string;
  authfile?: string;
  srcAuthfile?: string;
  destAuthfile?: string;
  srcTlsVerify?: boolean;
  destTlsVerify?: boolean;
  srcCertDir?: string;
  destCertDir?: string;
  srcPlainHttp?: boolean;
  destPlainHttp?: boolean;
  json?: boolean;
}

/** skopeo's `--src-tls-verify=false`: a boolean option that also takes `=true` / `=false`. */
function bool(name: string): (v: string) => boolean {
  return (v) => {
    if (v === 'true') return true;
    if (v === 'false') return false;
    throw new StargzError(ErrorCodes.USAGE, `${name} takes true or false, got ${JSON.stringify(v)}`);
  };
}

function sideOptions(cmd: Command, side: 'src' | 'dest', which: string): Command {
  return cmd
    .option(`--${side}-creds <user:password>`, `credentials for the ${which} registry`)
    .option(`--${side}-authfile <file>`, `containers' auth.json for the ${which} registry (before the other credential files)`, (v: string) => resolve(v))
    .option(`--${side}-tls-verify [bool]`, `verify the ${which} registry's TLS certificate (default true; =false skips verification)`, bool(`--${side}-tls-verify`))
    .option(`--${side}-cert-dir <dir>`, `TLS for the ${which} registry: *.crt CAs, NAME.cert + NAME.key client certificate (default: its certs.d directory)`)
    .option(`--${side}-plain-http`, `talk HTTP, not HTTPS, to the ${which} registry`);
}

export function addCopyCommand(program: Command, io: CliIo): void {
  const cmd = program
    .command('copy')
    .description(
      'copy an image from one registry to another, digests kept byte for byte (eStargz annotations survive): ' +
        "the platform's manifest, or the whole index with --all-platforms; blobs the target has are skipped, blobs of the same registry mounted, " +
        'the others streamed in chunked uploads that resume where a broken connection left them',
    )
    .argument('<src_ref>', 'the image to copy, e.g. ghcr.io/org/app:1.2')
    .argument('<dst_ref>', 'where to, e.g. registry.internal:5000/mirror/app:1.2 (default tag latest)')
    .option('--all-platforms', 'copy the whole index: every manifest it names, then the index itself')
    .option('--platform <os/arch[/variant]>', 'which manifest of an index to copy (default: this host)');
  sideOptions(cmd, 'src', 'source');
  sideOptions(cmd, 'dest', 'destination');
  cmd.option('--authfile <file>', "containers' auth.json for both registries (the --src-/--dest- ones win)", (v: string) => resolve(v));
  // Both sides' clients take the transfer options; mirrors serve the source only.
  addOutputOptions(addMirrorOptions(addTransferOptions(cmd)))
    .option('--json', 'print the summary as one JSON document on stdout')
    .action(async (src: string, dst: string, flags: CopyFlags) => copyCommand(src, dst, flags, io));
}

function side(flags: CopyFlags, s: 'src' | 'dest'): SideFlags {
  return s === 'src'
    ? { creds: flags.srcCreds, authfile: flags.srcAuthfile ?? flags.authfile, tlsVerify: flags.srcTlsVerify, certDir: flags.srcCertDir, plainHttp: flags.srcPlainHttp }
    : { creds: flags.destCreds, authfile: flags.destAuthfile ?? flags.authfile, tlsVerify: flags.destTlsVerify, certDir: flags.destCertDir, plainHttp: flags.destPlainHttp };
}

export async function copyCommand(src: string, dst: string, flags: CopyFlags, io: CliIo): Promise<void> {
  const [{ parseReference, formatReference }, { loadConfigFile }, { RegistryClient }, { copyImage }, { parsePlatform }, { TransferProgress }] = await Promise.all([
    import('../../reference/reference.js'),
    import('../../config-file.js'),
    import('../../registry/client.js'),
    import('../../copy/copy.js'),
    import('../../registry/manifest.js'),
    import('../progress.js'),
  ]);
  const from = parseReference(src);
  const to = parseReference(dst);
  if (flags.allPlatforms && flags.platform !== undefined) throw new StargzError(ErrorCodes.USAGE, '--all-platforms copies every platform: it contradicts --platform');
  const log = loggerFrom(flags, io.notice);
  const file = loadConfigFile(flags.config);
  const transfer = transferOptionsFrom(flags, file);
  const client = async (s: 'src' | 'dest', registry: string, mirrors: string[] | undefined) => {
    const f = side(flags, s);
    const options = await registryOptionsFrom(
      {
        ...(f.creds !== undefined ? { credential: f.creds } : {}),
        ...(f.authfile !== undefined ? { authfile: f.authfile } : {}),
        ...(f.plainHttp !== undefined ? { plainHttp: f.plainHttp } : {}),
        ...(f.tlsVerify !== undefined ? { insecure: !f.tlsVerify } : {}),
        ...(f.certDir !== undefined ? { certDir: f.certDir } : {}),
        ...(flags.retries !== undefined ? { retries: flags.retries } : {}),
        ...(mirrors !== undefined ? { mirror: mirrors } : {}),
        ...(flags.hostsDir !== undefined ? { hostsDir: flags.hostsDir } : {}),
      },
      registry,
      file,
      log,
      io.signal,
    );
    // Pushes go to the registry itself: its mirrors (from the file) serve pulls only.
    return { client: new RegistryClient(registry, { ...options, ...transfer, ...(s === 'dest' ? { hosts: undefined } : {}) }), retries: options.retries };
  };
  const { client: source, retries: sourceRetries } = await client('src', from.registry, flags.mirror);
  const { client: target } = await client('dest', to.registry, undefined);
  const quiet = quietFrom(flags);
  const blobs: string[] = [];
  const moved = { done: 0, total: 0, note: '' };
  const progress = new TransferProgress({ quiet, images: [{ metrics: source.metrics, layers: blobs, noun: 'blob' }], total: () => moved }, io.errStream);
  const say = (line: string): void => {
    if (quiet || flags.json) return;
    if (!progress.notice(line)) io.notice(line);
  };
  const reads = new Map<string, ReturnType<typeof source.metrics.readStarted>>();
  const started = Date.now();
  try {
    progress.start();
    const summary = await copyImage({
      source,
      target,
      from,
      to,
      allPlatforms: flags.allPlatforms ?? false,
      ...(flags.platform !== undefined ? { platform: parsePlatform(flags.platform) } : {}),
      ...(sourceRetries !== undefined ? { sourceReopens: sourceRetries } : {}),
      signal: io.signal,
      observer: {
        uploadStarted: (b) => {
          blobs.push(b.digest);
          moved.total += b.size;
          // The bars read the metrics: bytes asked for (the blob) and delivered (acknowledged by the target).
          reads.set(b.digest, source.metrics.readStarted(b.digest, b.size));
        },
        uploaded: (b, n) => {
          moved.done += n;
          reads.get(b.digest)?.delivered(n);
        },
        restarted: (b, why) => say(`${b.digest}: ${why}`),
        blobDone: (b) => {
          reads.get(b.digest)?.done();
          moved.note = `blobs ${reads.size} uploading or done`;
          say(`${b.action === 'copied' ? 'copied ' : b.action === 'mounted' ? 'mounted' : 'skipped'} ${b.digest} (${formatBytes(b.size)})${b.action === 'skipped' ? ', the target has it' : b.action === 'mounted' ? ` from ${from.repository}` : ''}`);
        },
      },
    }).finally(() => progress.stop());
    const seconds = (Date.now() - started) / 1000;
    if (flags.json) {
      io.out(JSON.stringify({ ...summary, seconds }, null, 2));
      return;
    }
    if (quiet) return;
    const { blobs: n, bytes } = summary;
    io.err(
      `copied ${formatReference(from)} -> ${formatReference(to)} (${summary.digest}): ${summary.manifests} manifest${summary.manifests === 1 ? '' : 's'}; ` +
        `blobs: ${n.copied} copied (${formatBytes(bytes.copied)}), ${n.mounted} mounted (${formatBytes(bytes.mounted)}), ${n.skipped} skipped (${formatBytes(bytes.skipped)}) in ${seconds.toFixed(2)}s`,
    );
  } finally {
    await Promise.all([source.close(), target.close()]);
  }
}
