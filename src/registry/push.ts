// Pushing to a registry (distribution spec, "Push"): does the target have a blob (HEAD), a
// cross-repository mount, a chunked upload (POST, then PATCH with Content-Range per chunk, then
// PUT ?digest=) that resumes from the offset the registry acknowledged, and a manifest PUT of
// exact bytes. Every request goes through RegistryClient.pushRequest: one transport, auth and
// retry path with pulls.
import { ErrorCodes, StargzError, type ErrorCode } from '../errors.js';
import { sha256Digest } from '../util/digest.js';
import { pushScope, pullScope } from './auth.js';
import type { RegistryClient } from './client.js';
import { header, type HttpResponse } from './transport.js';

/**
 * The target no longer has the upload session, or cannot say how much of it it has (404
 * BLOB_UPLOAD_UNKNOWN; 400 BLOB_UPLOAD_INVALID, which distribution answers once a broken PATCH
 * reached it in part): the blob can only start over from byte 0.
 */
export class UploadLostError extends StargzError {
  constructor(message: string) {
    super(ErrorCodes.REGISTRY_PROTOCOL, message);
    this.name = 'UploadLostError';
  }
}

/** Reads an answer's small body to its end, so its connection is reused (destroying it would close the connection). */
function drain(res: HttpResponse): void {
  res.body.dump().catch(() => undefined);
}

/** Answers that mean the request itself was refused, not that the registry failed or wants credentials. */
function isRefusal(status: number): boolean {
  return status >= 400 && status < 500 && status !== 401 && status !== 403 && status !== 408 && status !== 429;
}

/** The error for an unwanted answer: a refusal under `refusedCode`, anything else as the client maps it. */
async function answerError(client: RegistryClient, res: HttpResponse, what: string, refusedCode: ErrorCode): Promise<StargzError> {
  const err = await client.responseError(res, what);
  return isRefusal(res.status) ? new StargzError(refusedCode, err.message, { status: res.status }) : err;
}

/** `location` with one query parameter set (a Location may be absolute or relative to the API root). */
function withQuery(location: string, name: string, value: string): string {
  const absolute = /^[a-z][a-z0-9+.-]*:/i.test(location);
  const url = new URL(location, 'http://relative.invalid');
  url.searchParams.set(name, value);
  return absolute ? url.href : `${url.pathname}${url.search}`;
}

/** The Location of an upload answer; a registry that sends none cannot be pushed to. */
function uploadLocation(res: HttpResponse, what: string): string {
  const location = header(res.headers, 'location');
  if (!location) throw new StargzError(ErrorCodes.REGISTRY_PROTOCOL, `${what}: the registry answered ${res.status} without a Location`);
  return location;
}

/**
 * The bytes a registry has of an upload, from `Range: 0-END` (inclusive). Undefined when it
 * cannot be told: no header, or `0-0`, which distribution sends for both 0 and 1 byte.
 */
export function uploadedBytes(range: string | undefined): number | undefined {
  const m = range === undefined ? null : /^\s*(?:bytes=)?0-(\d+)\s*$/.exec(range);
  if (!m) return undefined;
  const end = Number(m[1]);
  return Number.isSafeInteger(end) && end > 0 ? end + 1 : undefined;
}

/** One repository of a registry we push to. */
export class PushTarget {
  constructor(
    readonly client: RegistryClient,
    readonly repository: string,
  ) {}

  private get scope(): string {
    return pushScope(this.repository);
  }

  /** Whether the target already has the blob (HEAD 200). */
  async hasBlob(digest: string, signal?: AbortSignal): Promise<boolean> {
    const what = `blob ${this.repository}@${digest} on the target`;
    return this.client.retry(async () => {
      const res = await this.client.pushRequest({ path: `${this.repository}/blobs/${digest}` }, { method: 'HEAD', ...(signal ? { signal } : {}) }, this.scope, what);
      if (res.status === 200) {
        drain(res);
        return true;
      }
      if (res.status === 404) {
        drain(res);
        return false;
      }
      throw await this.client.responseError(res, what);
    }, signal);
  }

  /**
   * Mounts the blob from `fromRepository` of the same registry: true when mounted (201). A
   * registry that will not mount it answers 202 with an upload session, which is returned for
   * the upload instead (as the spec says to).
   */
  async mountBlob(digest: string, fromRepository: string, signal?: AbortSignal): Promise<{ mounted: true } | { mounted: false; upload: Upload }> {
    const what = `mount of ${digest} from ${fromRepository} into ${this.repository}`;
    const path = `${this.repository}/blobs/uploads/?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(fromRepository)}`;
    return this.client.retry(async () => {
      const res = await this.client.pushRequest({ path }, { method: 'POST', headers: { 'content-length': '0' }, ...(signal ? { signal } : {}) }, `${this.scope} ${pullScope(fromRepository)}`, what);
      if (res.status === 201) {
        drain(res);
        return { mounted: true };
      }
      if (res.status === 202) {
        drain(res);
        return { mounted: false, upload: new Upload(this, uploadLocation(res, what), digest) };
      }
      throw await answerError(this.client, res, what, ErrorCodes.BLOB_REFUSED);
    }, signal);
  }

  /** Opens an upload session for the blob `digest`. */
  async startUpload(digest: string, signal?: AbortSignal): Promise<Upload> {
    const what = `upload of ${digest} to ${this.repository}`;
    return this.client.retry(async () => {
      const res = await this.client.pushRequest({ path: `${this.repository}/blobs/uploads/` }, { method: 'POST', headers: { 'content-length': '0' }, ...(signal ? { signal } : {}) }, this.scope, what);
      if (res.status !== 202) throw await answerError(this.client, res, what, ErrorCodes.BLOB_REFUSED);
      drain(res);
      return new Upload(this, uploadLocation(res, what), digest);
    }, signal);
  }

  /** One request of an upload session (its Location), with this target's scope. */
  request(location: string, init: Parameters<RegistryClient['pushRequest']>[1], what: string): Promise<HttpResponse> {
    return this.client.pushRequest({ location }, init, this.scope, what);
  }

  /**
   * PUTs manifest bytes as they are under `reference` (a tag, or the digest they hash to) with
   * their media type; returns their digest. A registry that stores them under another digest
   * (it rewrote them) fails: a copy keeps digests.
   */
  async putManifest(reference: string, mediaType: string, bytes: Buffer, signal?: AbortSignal): Promise<string> {
    const digest = sha256Digest(bytes);
    const what = `manifest ${this.repository}${reference.includes(':') ? '@' : ':'}${reference} on the target`;
    return this.client.retry(async () => {
      const res = await this.client.pushRequest(
        { path: `${this.repository}/manifests/${reference}` },
        { method: 'PUT', headers: { 'content-type': mediaType }, body: bytes, ...(signal ? { signal } : {}) },
        this.scope,
        what,
      );
      if (res.status !== 201 && res.status !== 200 && res.status !== 202) throw await answerError(this.client, res, what, ErrorCodes.MANIFEST_REFUSED);
      drain(res);
      const stored = header(res.headers, 'docker-content-digest');
      if (stored !== undefined && stored !== digest) {
        throw new StargzError(ErrorCodes.MANIFEST_REFUSED, `${what}: the registry stored it as ${stored}, not as ${digest} (it rewrote the manifest)`);
      }
      return digest;
    }, signal);
  }
}

/**
 * One upload session of one blob, fed in order by append(). Each PATCH carries
 * `Content-Range: START-END` and streams its bytes as the caller reads them; after a failure
 * the registry is asked how much it has (GET of the session's Location) and the bytes are
 * asked for again from there, so a broken connection costs at most the part of one chunk
 * that was in flight.
 */
export class Upload {
  /** Bytes the registry has acknowledged. */
  offset = 0;

  constructor(
    private readonly target: PushTarget,
    /** The session's latest Location: every answer may move it (distribution keeps state in it). */
    private location: string,
    private readonly digest: string,
  ) {}

  private get what(): string {
    return `upload of ${this.digest} to ${this.target.repository}`;
  }

  /**
   * Sends the blob's next `length` bytes (from `offset` on), streamed from `bytes(from, n)`,
   * until the registry has all of them. `bytes` is asked again from the acknowledged offset
   * after a failure.
   */
  async append(length: number, bytes: (from: number, n: number) => AsyncIterable<Buffer>, signal?: AbortSignal): Promise<void> {
    const start = this.offset;
    const end = start + length;
    await this.target.client.retry(async (attempt) => {
      if (attempt > 0) await this.resync(start, end, signal);
      while (this.offset < end) await this.patch(end - this.offset, bytes(this.offset, end - this.offset), signal);
    }, signal);
  }

  /** Before sending again: the registry's offset, or for a first chunk a fresh session when it lost this one (nothing is lost with it). */
  private async resync(start: number, end: number, signal?: AbortSignal): Promise<void> {
    try {
      await this.askOffset(start, end, signal);
    } catch (err) {
      if (!(err instanceof UploadLostError) || start !== 0) throw err;
      const fresh = await this.target.startUpload(this.digest, signal);
      this.location = fresh.location;
      this.offset = 0;
    }
  }

  /** One PATCH of `length` bytes at `offset`; moves offset to what the registry acknowledged. */
  private async patch(length: number, body: AsyncIterable<Buffer>, signal?: AbortSignal): Promise<void> {
    const first = this.offset;
    const last = first + length - 1;
    const what = `${this.what} bytes ${first}-${last}`;
    const res = await this.target.request(
      this.location,
      {
        method: 'PATCH',
        headers: { 'content-type': 'application/octet-stream', 'content-range': `${first}-${last}`, 'content-length': String(length) },
        body,
        bodyBytes: length,
        ...(signal ? { signal } : {}),
      },
      what,
    );
    if (res.status === 416) {
      // The registry has another offset than we think: ask it, then send from there.
      drain(res);
      throw new StargzError(ErrorCodes.REGISTRY_PROTOCOL, `${what}: the registry is at another offset (416)`, { retryable: true, status: 416 });
    }
    if (res.status === 404) throw new UploadLostError(`${what}: the registry no longer knows the upload (404)`);
    if (res.status !== 202 && res.status !== 204) throw await answerError(this.target.client, res, what, ErrorCodes.BLOB_REFUSED);
    drain(res);
    this.location = uploadLocation(res, what);
    const acked = uploadedBytes(header(res.headers, 'range')) ?? first + length;
    if (acked <= first || acked > first + length) {
      throw new StargzError(ErrorCodes.REGISTRY_PROTOCOL, `${what}: the registry acknowledged ${acked} bytes, outside ${first + 1}-${first + length}`, { retryable: true });
    }
    this.offset = acked;
  }

  /** After a failed PATCH: how much of [start, end) the registry has (GET of the session). */
  private async askOffset(start: number, end: number, signal?: AbortSignal): Promise<void> {
    const what = `status of the ${this.what}`;
    const res = await this.target.request(this.location, { method: 'GET', ...(signal ? { signal } : {}) }, what);
    if (res.status === 404 || res.status === 400) {
      const err = await this.target.client.responseError(res, what);
      throw new UploadLostError(`${err.message}; starting the blob again`);
    }
    if (res.status !== 204 && res.status !== 200) throw await this.target.client.responseError(res, what);
    drain(res);
    this.location = header(res.headers, 'location') ?? this.location;
    const have = start === 0 && header(res.headers, 'range') === undefined ? 0 : uploadedBytes(header(res.headers, 'range'));
    if (have === undefined || have < start || have > end) {
      throw new UploadLostError(`${what}: the registry has ${have ?? 'an unknown number of'} bytes, not between ${start} and ${end}; starting the blob again`);
    }
    this.offset = have;
  }

  /** Closes the session with the blob's digest (PUT ?digest=): the registry verifies it and stores the blob. */
  async complete(signal?: AbortSignal): Promise<void> {
    const what = `completion of the ${this.what}`;
    await this.target.client.retry(async (attempt) => {
      const res = await this.target.request(withQuery(this.location, 'digest', this.digest), { method: 'PUT', headers: { 'content-length': '0' }, ...(signal ? { signal } : {}) }, what);
      if (res.status === 201 || res.status === 204) {
        drain(res);
        const stored = header(res.headers, 'docker-content-digest');
        if (stored !== undefined && stored !== this.digest) throw new StargzError(ErrorCodes.BLOB_REFUSED, `${what}: the registry stored the blob as ${stored}`);
        return;
      }
      // A retried PUT whose first try went through finds the session closed: the blob is there.
      if (attempt > 0 && res.status === 404 && (await this.target.hasBlob(this.digest, signal))) {
        drain(res);
        return;
      }
      throw await answerError(this.target.client, res, what, ErrorCodes.BLOB_REFUSED);
    }, signal);
  }

  /** Ends the session without a blob (DELETE), best effort: the source failed. */
  async cancel(): Promise<void> {
    try {
      const res = await this.target.request(this.location, { method: 'DELETE' }, `cancel of the ${this.what}`);
      drain(res);
    } catch {
      // Best effort: the registry purges abandoned uploads anyway.
    }
  }
}
