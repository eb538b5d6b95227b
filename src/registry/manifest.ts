// Manifest and index documents: media types, parsing and validation, platforms and the
// choice of one manifest from an index (containerd `platforms` matching). Pure: no I/O.
import { ErrorCodes, StargzError } from '../errors.js';

export const MediaTypes = {
  OCI_MANIFEST: 'application/vnd.oci.image.manifest.v1+json',
  OCI_INDEX: 'application/vnd.oci.image.index.v1+json',
  DOCKER_MANIFEST: 'application/vnd.docker.distribution.manifest.v2+json',
  DOCKER_MANIFEST_LIST: 'application/vnd.docker.distribution.manifest.list.v2+json',
  DOCKER_SCHEMA1: 'application/vnd.docker.distribution.manifest.v1+json',
  DOCKER_SCHEMA1_SIGNED: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
} as const;

const MANIFEST_TYPES = new Set<string>([MediaTypes.OCI_MANIFEST, MediaTypes.DOCKER_MANIFEST]);
const INDEX_TYPES = new Set<string>([MediaTypes.OCI_INDEX, MediaTypes.DOCKER_MANIFEST_LIST]);

/** What we ask a registry for; schema1 is left out so registries convert or refuse. */
export const MANIFEST_ACCEPT = [
  MediaTypes.OCI_INDEX,
  MediaTypes.OCI_MANIFEST,
  MediaTypes.DOCKER_MANIFEST_LIST,
  MediaTypes.DOCKER_MANIFEST,
].join(', ');

/** Manifests are small; anything bigger is refused before it is read (containerd uses 4 MiB too). */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
  'os.version'?: string;
  'os.features'?: string[];
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: Platform;
  urls?: string[];
}

export interface ImageManifest {
  mediaType: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
}

export interface ImageIndex {
  mediaType: string;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
}

export type ParsedManifest = { kind: 'manifest'; manifest: ImageManifest } | { kind: 'index'; index: ImageIndex };

const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;

function unsupported(message: string): StargzError {
  return new StargzError(ErrorCodes.MANIFEST_UNSUPPORTED, message);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function stringMap(v: unknown, what: string): Record<string, string> | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isRecord(v) || Object.values(v).some((x) => typeof x !== 'string')) throw unsupported(`${what}: annotations must map strings to strings`);
  return v as Record<string, string>;
}

function parsePlatformObject(v: unknown, what: string): Platform | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isRecord(v) || typeof v.os !== 'string' || typeof v.architecture !== 'string') throw unsupported(`${what}: malformed platform`);
  const p: Platform = { os: v.os, architecture: v.architecture };
  if (typeof v.variant === 'string' && v.variant !== '') p.variant = v.variant;
  if (typeof v['os.version'] === 'string') p['os.version'] = v['os.version'];
  if (Array.isArray(v['os.features'])) p['os.features'] = v['os.features'].filter((x): x is string => typeof x === 'string');
  return p;
}

/** Validates one descriptor: a sha256 digest (the only one we can verify) and a sane size. */
export function parseDescriptor(v: unknown, what: string): Descriptor {
  if (!isRecord(v)) throw unsupported(`${what}: not an object`);
  const { mediaType, digest, size } = v;
  if (typeof mediaType !== 'string' || mediaType === '') throw unsupported(`${what}: missing mediaType`);
  if (typeof digest !== 'string' || !DIGEST_RE.test(digest)) throw unsupported(`${what}: digest ${JSON.stringify(digest)} is not sha256:<64 hex>`);
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) throw unsupported(`${what}: invalid size ${JSON.stringify(size)}`);
  const d: Descriptor = { mediaType, digest, size };
  const annotations = stringMap(v.annotations, what);
  if (annotations) d.annotations = annotations;
  const platform = parsePlatformObject(v.platform, what);
  if (platform) d.platform = platform;
  if (Array.isArray(v.urls)) d.urls = v.urls.filter((x): x is string => typeof x === 'string');
  return d;
}

function isSchema1(mediaType: string): boolean {
  return mediaType === MediaTypes.DOCKER_SCHEMA1 || mediaType === MediaTypes.DOCKER_SCHEMA1_SIGNED;
}

/**
 * Parses manifest bytes. The media type comes from the document's `mediaType` field, else from
 * the response's Content-Type (Docker schema2 documents always carry the field; OCI ones may not).
 */
export function parseManifest(bytes: Buffer, contentType?: string): ParsedManifest {
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw unsupported('manifest is not valid JSON');
  }
  if (!isRecord(doc)) throw unsupported('manifest is not a JSON object');
  const headerType = contentType?.split(';')[0]?.trim().toLowerCase();
  if (doc.schemaVersion === 1 || (headerType !== undefined && isSchema1(headerType))) {
    throw unsupported('Docker image manifest schema 1 is not supported (deprecated; push the image again with a current client)');
  }
  if (doc.schemaVersion !== 2) throw unsupported(`unsupported manifest schemaVersion ${JSON.stringify(doc.schemaVersion)}`);

  let mediaType = typeof doc.mediaType === 'string' && doc.mediaType !== '' ? doc.mediaType : headerType;
  if (mediaType === undefined || mediaType === '' || mediaType === 'application/json' || mediaType === 'application/octet-stream') {
    // An OCI document without mediaType: its shape says which it is.
    if (Array.isArray(doc.manifests)) mediaType = MediaTypes.OCI_INDEX;
    else if (isRecord(doc.config)) mediaType = MediaTypes.OCI_MANIFEST;
    else throw unsupported('manifest has no media type');
  }
  const annotations = stringMap(doc.annotations, 'manifest');

  if (INDEX_TYPES.has(mediaType)) {
    if (!Array.isArray(doc.manifests)) throw unsupported('image index has no manifests list');
    const manifests = doc.manifests.map((m, i) => parseDescriptor(m, `index entry ${i}`));
    return { kind: 'index', index: { mediaType, manifests, ...(annotations ? { annotations } : {}) } };
  }
  if (MANIFEST_TYPES.has(mediaType)) {
    const config = parseDescriptor(doc.config, 'manifest config');
    if (!Array.isArray(doc.layers)) throw unsupported('image manifest has no layers list');
    const layers = doc.layers.map((l, i) => parseDescriptor(l, `layer ${i}`));
    return { kind: 'manifest', manifest: { mediaType, config, layers, ...(annotations ? { annotations } : {}) } };
  }
  throw unsupported(`unsupported manifest media type ${JSON.stringify(mediaType)}`);
}

/** The media type of manifest bytes: the document's own field, else the Content-Type, else ''. */
export function manifestMediaType(bytes: Buffer, contentType?: string): string {
  try {
    const doc = JSON.parse(bytes.toString('utf8')) as { mediaType?: unknown };
    if (isRecord(doc) && typeof doc.mediaType === 'string' && doc.mediaType !== '') return doc.mediaType;
  } catch {
    // Not JSON: parseManifest will say so.
  }
  return contentType?.split(';')[0]?.trim().toLowerCase() ?? '';
}

// ---- platforms ----

/** Node's process.arch -> OCI architecture (GOARCH names). */
const NODE_ARCH: Record<string, { architecture: string; variant?: string }> = {
  x64: { architecture: 'amd64' },
  arm64: { architecture: 'arm64', variant: 'v8' },
  arm: { architecture: 'arm', variant: 'v7' },
  ia32: { architecture: '386' },
  ppc64: { architecture: 'ppc64le' },
  s390x: { architecture: 's390x' },
  riscv64: { architecture: 'riscv64' },
  loong64: { architecture: 'loong64' },
  mips: { architecture: 'mips' },
  mipsel: { architecture: 'mipsle' },
  mips64el: { architecture: 'mips64le' },
};

/** The platform this host runs images of: linux/<arch>[/variant]. */
export function defaultPlatform(nodeArch: string = process.arch, armVersion?: string | number, endianness?: 'BE' | 'LE'): Platform {
  const m = NODE_ARCH[nodeArch] ?? { architecture: nodeArch };
  const p: Platform = { os: 'linux', architecture: m.architecture };
  if (nodeArch === 'arm') {
    const v = armVersion ?? (process.config.variables as { arm_version?: string | number }).arm_version;
    p.variant = v !== undefined && String(v) !== '' ? `v${v}` : 'v7';
  } else if (m.variant) p.variant = m.variant;
  if (nodeArch === 'ppc64' && endianness === 'BE') p.architecture = 'ppc64';
  return p;
}

/** Normalizes aliases the way containerd does: x86_64 -> amd64, aarch64 -> arm64, armhf -> arm/v7, ... */
export function normalizePlatform(p: Platform): Platform {
  const os = p.os.toLowerCase();
  let architecture = p.architecture.toLowerCase();
  let variant = p.variant?.toLowerCase();
  switch (architecture) {
    case 'x86_64':
    case 'x86-64':
      architecture = 'amd64';
      break;
    case 'i386':
      architecture = '386';
      break;
    case 'aarch64':
      architecture = 'arm64';
      break;
    case 'armhf':
      architecture = 'arm';
      variant = 'v7';
      break;
    case 'armel':
      architecture = 'arm';
      variant = 'v6';
      break;
  }
  if (variant && /^\d+$/.test(variant)) variant = `v${variant}`;
  // arm64's only variant in practice is v8, amd64's baseline is v1: both mean "no variant".
  if ((architecture === 'arm64' && variant === 'v8') || (architecture === 'amd64' && variant === 'v1')) variant = undefined;
  if (architecture === 'arm' && !variant) variant = 'v7';
  const out: Platform = { os, architecture };
  if (variant) out.variant = variant;
  return out;
}

/** Parses 'os/arch[/variant]', e.g. 'linux/arm64/v8'. Throws USAGE when malformed. */
export function parsePlatform(text: string): Platform {
  const parts = text.trim().split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((x) => !/^[A-Za-z0-9_.-]+$/.test(x))) {
    throw new StargzError(ErrorCodes.USAGE, `invalid platform ${JSON.stringify(text)}: want os/arch[/variant], e.g. linux/arm64`);
  }
  const p: Platform = { os: parts[0]!, architecture: parts[1]! };
  if (parts[2]) p.variant = parts[2];
  return p;
}

export function formatPlatform(p: Platform): string {
  return p.variant ? `${p.os}/${p.architecture}/${p.variant}` : `${p.os}/${p.architecture}`;
}

/**
 * Variants acceptable for a wanted platform, best first: an arm/v7 host runs v6 and v5 images,
 * an amd64/v3 host runs v2 and v1 ones (containerd's compatibility lists).
 */
function acceptableVariants(want: Platform): Array<string | undefined> {
  const n = normalizePlatform(want);
  const v = n.variant;
  const level = v ? Number(v.slice(1)) : NaN;
  if (n.architecture === 'arm' && Number.isInteger(level)) {
    const out: string[] = [];
    for (let i = level; i >= 5; i--) out.push(`v${i}`);
    return out;
  }
  if (n.architecture === 'amd64' && Number.isInteger(level)) {
    const out: Array<string | undefined> = [];
    for (let i = level; i >= 2; i--) out.push(`v${i}`);
    out.push(undefined);
    return out;
  }
  return [v];
}

/** How well `have` fits `want`: 0 is exact, higher is a worse but compatible fit, -1 no fit. */
export function platformRank(want: Platform, have: Platform): number {
  const w = normalizePlatform(want);
  const h = normalizePlatform(have);
  if (w.os !== h.os || w.architecture !== h.architecture) return -1;
  return acceptableVariants(w).indexOf(h.variant);
}

/** Picks the best manifest for `want` from an index; PLATFORM_NOT_FOUND lists what there is. */
export function selectManifest(index: ImageIndex, want: Platform): Descriptor {
  let best: Descriptor | undefined;
  let bestRank = Infinity;
  for (const d of index.manifests) {
    if (!d.platform || !MANIFEST_TYPES.has(d.mediaType)) continue;
    const r = platformRank(want, d.platform);
    if (r >= 0 && r < bestRank) {
      best = d;
      bestRank = r;
    }
  }
  if (best) return best;
  const available = [
    ...new Set(index.manifests.filter((d) => d.platform && d.platform.os !== 'unknown').map((d) => formatPlatform(d.platform!))),
  ];
  throw new StargzError(
    ErrorCodes.PLATFORM_NOT_FOUND,
    `no manifest for platform ${formatPlatform(want)}; available: ${summarizePlatforms(available)}`,
  );
}

/** Platforms listed in a message: a few, then how many more (an index may name thousands). */
const LISTED_PLATFORMS = 8;

export function summarizePlatforms(platforms: string[]): string {
  if (platforms.length === 0) return 'none';
  const shown = platforms.slice(0, LISTED_PLATFORMS).map((p) => (p.length > 60 ? p.slice(0, 60) + '…' : p));
  const rest = platforms.length - shown.length;
  return rest > 0 ? `${shown.join(', ')} and ${rest} more (${platforms.length} platforms)` : shown.join(', ');
}
