// Image references, parsed and normalized the way Docker and containerd do
// (distribution/reference `ParseNormalizedNamed`), plus an optional path inside the image
// (`alpine:3.19/etc`). Pure: no I/O.
import { ErrorCodes, StargzError } from '../errors.js';

export interface ImageReference {
  /** Registry host with optional port; 'docker.io' for Docker Hub. */
  registry: string;
  /** Repository path, e.g. 'library/alpine'. */
  repository: string;
  tag?: string;
  /** 'sha256:<64 hex>' */
  digest?: string;
}

export const DOCKER_HUB = 'docker.io';
const DOCKER_HUB_API = 'registry-1.docker.io';
const DOCKER_HUB_ALIASES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);
const DEFAULT_TAG = 'latest';
/** distribution/reference NameTotalLengthMax: applies to 'registry/repository'. */
const NAME_TOTAL_LENGTH_MAX = 255;

const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const IPV6 = '\\[[a-fA-F0-9:]+\\]';
const DOMAIN_RE = new RegExp(`^(?:${IPV6}|${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*)(?::[0-9]+)?$`);
const PATH_COMPONENT_RE = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG_RE = /^\w[\w.-]{0,127}$/;
const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;
const HEX64_RE = /^[a-f0-9]{64}$/;

function invalid(input: string, what: string): StargzError {
  return new StargzError(ErrorCodes.REFERENCE_INVALID, `invalid image reference ${JSON.stringify(input)}: ${what}`);
}

/**
 * Whether the first '/'-separated component names a registry rather than a repository:
 * Docker's rule (it contains '.' or ':', is 'localhost', or has upper case), and it must also
 * be a valid host[:port]. The last condition is ours: it lets `alpine:3.19/etc` mean a tag
 * followed by a path, while `alpine:5000/etc` still means registry 'alpine:5000' as in Docker.
 */
function isDomain(component: string): boolean {
  const looksLikeDomain =
    component.includes('.') || component.includes(':') || component === 'localhost' || component.toLowerCase() !== component;
  return looksLikeDomain && DOMAIN_RE.test(component);
}

interface Parsed {
  ref: ImageReference;
  /** What follows the reference: '' or '/...'. */
  rest: string;
}

function parse(input: string): Parsed {
  if (input === '') throw invalid(input, 'empty reference');

  let registry = DOCKER_HUB;
  let remainder = input;
  const slash = input.indexOf('/');
  if (slash > 0 && isDomain(input.slice(0, slash))) {
    registry = input.slice(0, slash);
    remainder = input.slice(slash + 1);
  }
  if (DOCKER_HUB_ALIASES.has(registry.toLowerCase())) registry = DOCKER_HUB;

  // The repository runs up to the first ':' (tag) or '@' (digest); without either,
  // everything is repository — a path needs a tag or a digest in front of it.
  const end = remainder.search(/[:@]/);
  const repoPart = end < 0 ? remainder : remainder.slice(0, end);
  let rest = end < 0 ? '' : remainder.slice(end);

  if (repoPart === '') throw invalid(input, 'missing repository name');
  if (repoPart.toLowerCase() !== repoPart) throw invalid(input, 'repository name must be lowercase');
  const components = repoPart.split('/');
  for (const c of components) {
    if (c === '') throw invalid(input, 'empty path component in repository name');
    if (!PATH_COMPONENT_RE.test(c)) throw invalid(input, `invalid repository name component ${JSON.stringify(c)}`);
  }
  let repository = repoPart;
  if (registry === DOCKER_HUB && components.length === 1) {
    // A bare 64-hex name would be confused with an image ID (Docker refuses it too).
    if (HEX64_RE.test(repoPart)) throw invalid(input, 'repository name cannot be a 64-character hexadecimal string');
    repository = `library/${repoPart}`;
  }
  if (registry.length + 1 + repository.length > NAME_TOTAL_LENGTH_MAX) {
    throw invalid(input, `repository name longer than ${NAME_TOTAL_LENGTH_MAX} characters`);
  }

  const ref: ImageReference = { registry, repository };
  if (rest.startsWith(':')) {
    const m = /^:([^@/]*)/.exec(rest)!;
    const tag = m[1]!;
    if (!TAG_RE.test(tag)) throw invalid(input, tag === '' ? 'empty tag' : `invalid tag ${JSON.stringify(tag)}`);
    ref.tag = tag;
    rest = rest.slice(m[0].length);
  }
  if (rest.startsWith('@')) {
    const m = /^@([^/]*)/.exec(rest)!;
    const digest = m[1]!;
    if (!DIGEST_RE.test(digest)) {
      const algo = digest.split(':')[0];
      if (digest.includes(':') && algo !== 'sha256') throw invalid(input, `unsupported digest algorithm ${JSON.stringify(algo)} (only sha256)`);
      throw invalid(input, `invalid digest ${JSON.stringify(digest)} (want sha256:<64 lowercase hex>)`);
    }
    ref.digest = digest;
    rest = rest.slice(m[0].length);
  }
  if (rest !== '' && !rest.startsWith('/')) throw invalid(input, `unexpected ${JSON.stringify(rest)} after the reference`);
  if (ref.tag === undefined && ref.digest === undefined) ref.tag = DEFAULT_TAG;
  return { ref, rest };
}

/** Parses `[registry/]repository[:tag][@digest]`; throws REFERENCE_INVALID naming what is wrong. */
export function parseReference(input: string): ImageReference {
  const { ref, rest } = parse(input);
  if (rest !== '') throw invalid(input, `unexpected ${JSON.stringify(rest)} after the reference`);
  return ref;
}

/**
 * Parses a reference followed by an optional path inside the image:
 * `alpine:3.19/etc`, `alpine@sha256:…/etc`, `host:5000/repo:tag/a/b`. Without a tag or digest
 * there is no way to tell where the repository ends, so `repo/etc` is all repository.
 */
export function parseReferenceWithPath(input: string): { ref: ImageReference; path: string } {
  const { ref, rest } = parse(input);
  return { ref, path: normalizeImagePath(rest, input) };
}

/** Normalizes a path inside the image to an absolute one: collapses '//' and '.', resolves '..' without escaping '/'. */
export function normalizeImagePath(path: string, context = path): string {
  const out: string[] = [];
  for (const part of path.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (out.length === 0) throw invalid(context, "path escapes the image root with '..'");
      out.pop();
      continue;
    }
    if (part.includes('\0')) throw invalid(context, 'path contains a NUL byte');
    out.push(part);
  }
  return '/' + out.join('/');
}

/** The canonical form: 'docker.io/library/alpine:latest', 'host:5000/repo:tag@sha256:…'. */
export function formatReference(ref: ImageReference): string {
  let s = `${ref.registry}/${ref.repository}`;
  if (ref.tag !== undefined) s += `:${ref.tag}`;
  if (ref.digest !== undefined) s += `@${ref.digest}`;
  return s;
}

/** The host that serves the registry API: Docker Hub's API lives on another name than its references use. */
export function registryApiHost(registry: string): string {
  return DOCKER_HUB_ALIASES.has(registry.toLowerCase()) ? DOCKER_HUB_API : registry;
}

/** Strips the port: 'host:5000' -> 'host', '[::1]:5000' -> '::1'. */
export function registryHostname(registry: string): string {
  if (registry.startsWith('[')) {
    const close = registry.indexOf(']');
    return close < 0 ? registry : registry.slice(1, close);
  }
  const colons = registry.split(':').length - 1;
  if (colons === 1) return registry.slice(0, registry.indexOf(':'));
  return registry; // no port, or a bare IPv6 address
}

/** localhost, 127.0.0.0/8 or ::1, with or without a port. */
export function isLoopbackRegistry(registry: string): boolean {
  const host = registryHostname(registry).toLowerCase();
  if (host === 'localhost' || host.endsWith('.localhost')) return true;
  if (/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host)) return true;
  return host === '::1' || host === '0:0:0:0:0:0:0:1';
}
