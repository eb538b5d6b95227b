import { parseReference, type ImageReference } from '../../reference/reference.js';
import { openImage, type OpenedImage, type OpenImageOptions } from '../../image/open-image.js';
import { resolveOptions } from '../../config.js';
import { RegistryClient } from '../../registry/client.js';
import { defaultPlatform, parsePlatform } from '../../registry/manifest.js';
import { diffTrees, sameLayers } from '../../diff/diff.js';
import { openOptionsFrom, type CommonFlags } from '../common.js';
import type { CliIo } from '../io.js';

export interface DiffFlags extends CommonFlags {
  json?: boolean;
  ignoreMtime?: boolean;
}

/** Exit statuses of a diff that ran: as diff(1), 1 means "they differ", not an error. */
export const DIFF_EQUAL = 0;
export const DIFF_DIFFERENT = 1;

/**
 * Prints the changes from REF_A to REF_B (PATH only, when given) and answers the exit status.
 * Both manifests are resolved first: equal layer lists answer "equal" without any TOC fetched.
 */
export async function diffCommand(sourceA: string, sourceB: string, path: string | undefined, flags: DiffFlags, io: CliIo): Promise<number> {
  const refA = parseReference(sourceA);
  const refB = parseReference(sourceB);
  const optionsA = await openOptionsFrom(flags, refA, io.notice, io.signal);
  const optionsB = await openOptionsFrom(flags, refB, io.notice, io.signal);
  let pinnedA = refA;
  let pinnedB = refB;
  if (!resolveOptions(optionsA).offline) {
    const [a, b] = await Promise.all([resolveLayers(refA, optionsA, io.signal), resolveLayers(refB, optionsB, io.signal)]);
    if (sameLayers(a.layers, b.layers) && (path === undefined || path.split('/').every((p) => p === '' || p === '.'))) {
      if (flags.json) io.out('[]');
      return DIFF_EQUAL;
    }
    // The images just compared, even if a tag moves meanwhile.
    pinnedA = { ...refA, digest: a.manifestDigest };
    pinnedB = { ...refB, digest: b.manifestDigest };
  }
  const images: OpenedImage[] = [];
  try {
    images.push(await openImage(pinnedA, optionsA));
    images.push(await openImage(pinnedB, optionsB));
    const changes = await diffTrees(images[0]!.fs, images[1]!.fs, { path: path ?? '/', ignoreMtime: flags.ignoreMtime ?? false, signal: io.signal });
    if (flags.json) io.out(JSON.stringify(changes, null, 2));
    else for (const c of changes) io.out(`${c.change} ${c.path}`);
    return changes.length > 0 ? DIFF_DIFFERENT : DIFF_EQUAL;
  } finally {
    for (const image of images) await image.close();
  }
}

/** The manifest's layer digests, as openImage would resolve them (manifest requests only). */
async function resolveLayers(ref: ImageReference, options: OpenImageOptions, signal: AbortSignal): Promise<{ manifestDigest: string; layers: string[] }> {
  const opts = resolveOptions(options);
  const client = new RegistryClient(ref.registry, {
    requestTimeoutMs: opts.requestTimeoutMs,
    minTransferRate: opts.minTransferRate,
    rateWindowMs: opts.rateWindowMs,
    ...options.registry,
  });
  try {
    const resolved = await client.resolveImage(ref, opts.platform ? parsePlatform(opts.platform) : defaultPlatform(), signal);
    return { manifestDigest: resolved.manifestDigest, layers: resolved.manifest.layers.map((l) => l.digest) };
  } finally {
    await client.close();
  }
}
