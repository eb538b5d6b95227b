import { formatReference, parseReference } from '../../reference/reference.js';
import { openImage } from '../../image/open-image.js';
import { openOptionsFrom, type CommonFlags } from '../common.js';
import { formatBytes } from '../format.js';
import type { CliIo } from '../io.js';

export interface InfoFlags extends CommonFlags {
  json?: boolean;
}

export async function infoCommand(source: string, flags: InfoFlags, io: CliIo): Promise<void> {
  const ref = parseReference(source);
  // Plain layers are only probed here, never downloaded: info reads TOCs alone.
  const image = await openImage(ref, { ...(await openOptionsFrom(flags, ref, io.notice, io.signal)), probePlainLayers: true });
  try {
    const layers = image.layers.map((layer, i) => {
      let files = 0;
      let uncompressed = 0;
      for (const e of layer.index.entries.values()) {
        if (e.type === 'reg') {
          files++;
          uncompressed += e.size;
        }
      }
      const indexed = layer.lazy || layer.index.entries.size > 1;
      return {
        index: i,
        digest: layer.descriptor.digest,
        mediaType: layer.descriptor.mediaType,
        format: layer.format,
        lazy: layer.lazy,
        compressedSize: layer.descriptor.size,
        files: indexed ? files : null,
        fileBytes: indexed ? uncompressed : null,
        tocDigest: layer.descriptor.annotations?.['containerd.io/snapshot/stargz/toc.digest'] ?? null,
      };
    });
    const total = layers.reduce((n, l) => n + l.compressedSize, 0);
    if (flags.json) {
      io.out(JSON.stringify({ reference: formatReference(ref), manifestDigest: image.manifestDigest, platform: image.platform, compressedSize: total, layers }, null, 2));
      return;
    }
    io.out(`reference  ${formatReference(ref)}`);
    io.out(`manifest   ${image.manifestDigest}`);
    io.out(`platform   ${image.platform}`);
    io.out(`layers     ${layers.length}, ${formatBytes(total)} compressed; lazy: ${layers.filter((l) => l.lazy).length}/${layers.length}`);
    io.out('');
    io.out('  #  format           lazy  compressed      files   file bytes  digest');
    for (const l of layers) {
      io.out(
        `${String(l.index).padStart(3)}  ${l.format.padEnd(15)}  ${(l.lazy ? 'yes' : 'no').padEnd(4)}  ${formatBytes(l.compressedSize).padStart(10)}  ` +
          `${(l.files === null ? '?' : String(l.files)).padStart(9)}  ${(l.fileBytes === null ? '?' : formatBytes(l.fileBytes)).padStart(11)}  ${l.digest.slice(0, 19)}`,
      );
    }
  } finally {
    await image.close();
  }
}
