// The library's face: `openImage(ref, options)` gives an Image that answers paths with plain
// objects (Stat, DirEntry, Buffer, Readable) and hides the VFS nodes, layers and clients
// behind it. Every byte comes through the merged VFS (MergedFs.read), so the library reads
// exactly what `sync`, `cat` and `mount` read: cached, range-fetched, digest-verified.
import type { Readable } from 'node:stream';
import { ErrorCodes, StargzError } from '../errors.js';
import type { Options } from '../config.js';
import { formatReference, parseReference, type ImageReference } from '../reference/reference.js';
import type { RegistryClientOptions } from '../registry/client.js';
import { defaultKeychain, staticKeychain, type Keychain } from '../registry/keychain.js';
import { defaultHostsDir, registryHosts } from '../registry/hosts.js';
import { certDirSettings } from '../registry/tls.js';
import { openImage as openImageLayers, type OpenedImage } from '../image/open-image.js';
import { syncPath, type SyncOptions, type SyncSummary } from '../sync/sync.js';
import { diffTrees, type Change, type DiffOptions } from '../diff/diff.js';
import type { VNode } from '../vfs/node.js';
import type { FetchMetrics } from '../metrics/fetch-metrics.js';
import type { Logger } from '../util/log.js';
import { createFileReadStream, resolveRegularFile, type ReadStreamOptions } from './read-stream.js';

export interface ImageOptions extends Partial<Options> {
  /** Fixed registry credentials. Without them (and without `keychain`) the CLI's lookup is used: STARGZ_GET_USERNAME/PASSWORD, containers' auth.json, Docker's config.json and its credential helpers. */
  credentials?: { username: string; password: string };
  /** Where credentials come from, asked per registry and repository (overrides `credentials` and `authfile`). */
  keychain?: Keychain;
  /** containers' auth.json consulted before the other credential files (as `--authfile`). */
  authfile?: string;
  /** Talk HTTP, not HTTPS, to the registry. */
  plainHttp?: boolean;
  /** Do not verify the registry's TLS certificate. */
  insecure?: boolean;
  /** A directory of *.crt CAs and NAME.cert + NAME.key client certificate (as `--cert-dir`; default: the registry's certs.d). */
  certDir?: string;
  /** Mirrors tried before the registry, as `--mirror` (URLs). */
  mirrors?: string[];
  /** containerd hosts.toml directories (default /etc/containerd/certs.d when it exists), as `--hosts-dir`. */
  hostsDir?: string;
  /** Retries of a failed request (default 5). */
  retries?: number;
  /** Ends every request of the image: pending reads fail with ERR_ABORTED. */
  signal?: AbortSignal;
  /** Non-fatal notices (a layer that is not eStargz, a mirror passed over, a missing credential helper). */
  onNotice?: (message: string) => void;
  /**
   * Levelled diagnostics, as the CLI's --log-level: info is each registry request and retry, debug
   * also each chunk looked up in the cache. Its warnings are the notices when `onNotice` is not given.
   * Make one with `createLogger(level, write)`. Default: silent.
   */
  logger?: Logger;
  /** Anything else of the registry client (proxy, TLS settings, user agent); wins over the fields above. */
  registry?: RegistryClientOptions;
}

export type FileType = 'file' | 'directory' | 'symlink' | 'char-device' | 'block-device' | 'fifo';

/** What `stat`/`lstat` answer: a plain object, as the image's TOCs describe the entry. */
export interface Stat {
  /** The path asked for, normalized (for `stat` of a symlink: still the symlink's path). */
  path: string;
  type: FileType;
  /** File type bits | permission bits, as st_mode. */
  mode: number;
  /** Bytes (a symlink: its target's length; a directory: 4096). */
  size: number;
  uid: number;
  gid: number;
  mtime: Date;
  nlink: number;
  /** Stable for a given image; hardlinks share it. */
  ino: number;
  /** Device number (Linux encoding) of a char or block device, 0 otherwise. */
  rdev: number;
  /** A symlink's target (lstat only: stat follows it). */
  linkTarget?: string;
  /** sha256 of a regular file's content, as its TOC declares it. */
  digest?: string;
  /** Extended attributes (empty values dropped, as OCI unpackers do). */
  xattrs: Record<string, Buffer>;
}

export interface DirEntry {
  name: string;
  type: FileType;
}

export interface LayerInfo {
  digest: string;
  size: number;
  mediaType: string;
  /** 'estargz' | 'estargz-legacy' | 'estargz-zstd' are read lazily; 'tar+gzip' is fetched whole on first read. */
  format: 'estargz' | 'estargz-legacy' | 'estargz-zstd' | 'tar+gzip';
}

export interface ImageInfo {
  /** The reference as given, normalized (e.g. docker.io/library/alpine:3.20). */
  reference: string;
  /** The platform manifest's digest: pin it with REF@DIGEST. */
  manifestDigest: string;
  platform: string;
  layers: LayerInfo[];
}

const TYPES: Record<VNode['inode']['entry']['type'], FileType> = {
  dir: 'directory',
  reg: 'file',
  hardlink: 'file',
  symlink: 'symlink',
  char: 'char-device',
  block: 'block-device',
  fifo: 'fifo',
};

/** Made by openImage() only: the constructor stays out of the public types. */
let construct: (opened: OpenedImage) => Image;

export class Image {
  private closed = false;

  private constructor(private readonly opened: OpenedImage) {}

  static {
    construct = (opened) => new Image(opened);
  }

  /** What fetching for this image did, per layer (README "Metrics"): `metrics.text()` is the Prometheus text, `metrics.registry` prom-client's Registry. */
  get metrics(): FetchMetrics {
    return this.opened.metrics;
  }

  info(): ImageInfo {
    this.check();
    const o = this.opened;
    return {
      reference: formatReference(o.ref),
      manifestDigest: o.manifestDigest,
      platform: o.platform,
      layers: o.layers.map((l) => ({ digest: l.descriptor.digest, size: l.descriptor.size, mediaType: l.descriptor.mediaType, format: l.format })),
    };
  }

  /** The entry at `path`, symlinks followed (inside the image, never above its root). */
  stat(path: string): Stat {
    return this.describe(this.node(path, true), path);
  }

  /** The entry at `path`; a symlink itself when the last component is one. */
  lstat(path: string): Stat {
    return this.describe(this.node(path, false), path);
  }

  readlink(path: string): string {
    const node = this.node(path, false);
    const target = this.opened.fs.readlink(node);
    if (target === undefined) throw new StargzError(ErrorCodes.USAGE, `${path}: not a symbolic link`);
    return target;
  }

  /** A directory's entries sorted by name (symlinks to a directory followed). */
  readdir(path: string): DirEntry[] {
    const node = this.node(path, true);
    if (!node.children) throw new StargzError(ErrorCodes.PATH_NOT_FOUND, `${path}: not a directory`);
    return this.opened.fs.readdir(node).map((c) => ({ name: c.name, type: TYPES[c.inode.entry.type] }));
  }

  /** A regular file's bytes, whole: for big files use createReadStream. */
  async readFile(path: string, options: { signal?: AbortSignal } = {}): Promise<Buffer> {
    this.check();
    const fs = this.opened.fs;
    const node = resolveRegularFile(fs, path);
    return fs.read(node, 0, fs.size(node), options.signal);
  }

  /**
   * A regular file's bytes as a Readable, one window (1 MiB) at a time as its chunks verify:
   * memory stays bounded whatever the size, and nothing is read ahead of the consumer.
   * `start`/`end` are inclusive byte offsets, as fs.createReadStream's.
   */
  createReadStream(path: string, options: ReadStreamOptions = {}): Readable {
    this.check();
    const fs = this.opened.fs;
    return createFileReadStream(fs, resolveRegularFile(fs, path), options);
  }

  /** Materializes `path` into `dest` as the CLI's `sync` does (owners when root, DEST reused). */
  async sync(path: string, dest: string, options: SyncOptions = {}): Promise<SyncSummary> {
    this.check();
    return syncPath(this.opened.fs, path, dest, options);
  }

  /**
   * What changed from this image to `other`, from the two TOCs alone (no chunk fetched): docker
   * diff's A/C/D per path, sorted by path in byte order; [] when equal (as `stargz-get diff`).
   */
  async diff(other: Image, options: DiffOptions = {}): Promise<Change[]> {
    this.check();
    other.check();
    return diffTrees(this.opened.fs, other.opened.fs, options);
  }

  /** Ends the inflate workers, the registry connections and the cache database, so the process can exit. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.opened.close();
  }

  private check(): void {
    if (this.closed) throw new StargzError(ErrorCodes.USAGE, 'the image is closed');
  }

  private node(path: string, follow: boolean): VNode {
    this.check();
    if (typeof path !== 'string') throw new StargzError(ErrorCodes.USAGE, 'a path must be a string');
    return this.opened.fs.resolve(path, follow);
  }

  private describe(node: VNode, asked: string): Stat {
    const fs = this.opened.fs;
    const st = fs.stat(node);
    const entry = node.inode.entry;
    const target = fs.readlink(node);
    return {
      path: '/' + asked.split('/').filter((p) => p !== '' && p !== '.').join('/'),
      type: TYPES[entry.type],
      mode: st.mode,
      size: st.size,
      uid: st.uid,
      gid: st.gid,
      mtime: new Date(st.mtimeMs),
      nlink: st.nlink,
      ino: st.ino,
      rdev: st.rdev,
      ...(target !== undefined ? { linkTarget: target } : {}),
      ...(entry.digest && !node.children && target === undefined ? { digest: entry.digest } : {}),
      xattrs: { ...fs.xattrs(node) },
    };
  }
}

/**
 * Opens `ref` (a string such as `ghcr.io/org/img:tag` or an ImageReference): resolves it, fetches
 * every layer's TOC and merges them. Nothing else is fetched until a file's bytes are read.
 * Credentials are looked up as the CLI looks them up unless `credentials` or `keychain` is given.
 */
export async function openImage(ref: string | ImageReference, options: ImageOptions = {}): Promise<Image> {
  const parsed = typeof ref === 'string' ? parseReference(ref) : ref;
  const { credentials, keychain, authfile, plainHttp, insecure, certDir, mirrors, hostsDir, retries, signal, onNotice, logger, registry, ...rest } = options;
  const notice = onNotice ?? (logger ? (m: string): void => logger.warn(m) : () => undefined);
  const chain =
    keychain ?? (credentials ? staticKeychain(credentials.username, credentials.password) : defaultKeychain({ ...(authfile !== undefined ? { authFile: authfile } : {}), warn: notice }));
  const opened = await openImageLayers(parsed, {
    ...rest,
    notice,
    ...(logger ? { log: logger } : {}),
    registry: {
      keychain: chain,
      plainHttp: plainHttp ?? false,
      insecure: insecure ?? false,
      ...(certDir !== undefined ? { tls: certDirSettings(certDir) } : {}),
      ...(retries !== undefined ? { retries } : {}),
      hosts: registryHosts(parsed.registry, { mirrors: mirrors ?? [], hostsDir: hostsDir ?? defaultHostsDir() }),
      notice,
      ...(logger ? { log: logger } : {}),
      ...(signal !== undefined ? { signal } : {}),
      ...registry,
    },
  });
  return construct(opened);
}
