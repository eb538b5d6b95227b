// The two ways this project talks to the kernel's FUSE, behind one mount/unmount: libfuse 3's
// low-level API through our addon (lowlevel.ts: metadata answered in C) and fuse-native's
// libfuse 2 high-level API (adapter.ts: every request through JS), which stays for hosts
// where the addon could not be built. STARGZ_GET_FUSE_BACKEND picks one by name; the default
// is FUSE_DEFAULTS.backend.
import { promisify } from 'node:util';
import { FUSE_DEFAULTS, type FuseBackendName } from '../config.js';
import { ErrorCodes, StargzError } from '../errors.js';
import type { MergedFs } from '../vfs/merged-fs.js';
import { createFuseAdapter } from './adapter.js';
import { posixExtra } from '../util/native.js';
import { loadFuse, readOnlyTimeouts, type FuseNativeOptions } from './fuse-native.js';
import { fuseLowLevel, mountLowLevel, type SessionStats } from './lowlevel.js';
import type { ReaderOptions } from './reader.js';

export const BACKEND_ENV = 'STARGZ_GET_FUSE_BACKEND';
/** How long an unmount waits for the kernel to end a lazily detached session before letting go. */
const SESSION_END_WAIT_MS = 2_000;

export interface FuseMountOptions extends Omit<ReaderOptions, 'fail'> {
  mountpoint: string;
  /** The mount's source in /proc/mounts (commas, blanks and backslashes already replaced). */
  fsName: string;
  allowOther: boolean;
  /** fusermount unmounts when this process dies. */
  autoUnmount: boolean;
  debug: boolean;
  /** Seconds the kernel keeps names, attributes and failed lookups. */
  cacheSeconds: number;
  /** libfuse3: list directories into C ahead of the kernel's requests (default true). */
  listAhead?: boolean;
  log: (line: string) => void;
  /** Detaches whatever is mounted at a path (mount/unmount.ts); resolves once nothing is. */
  unmountPath: (mountpoint: string) => Promise<void>;
}

export interface MountedFuse {
  readonly backend: FuseBackendName;
  /** Settles when the kernel ended the session, where the backend can tell (libfuse3). */
  readonly ended?: Promise<void>;
  /** Requests answered by kind (libfuse3 only). */
  stats(): SessionStats | undefined;
  /** Drops background fetches, unmounts (lazily) and lets go of the session. */
  unmount(): Promise<void>;
}

/** The backend to use: the environment's choice, else the default; fuse-native where the addon is missing. */
export function chooseBackend(log: (line: string) => void): FuseBackendName {
  const asked = process.env[BACKEND_ENV];
  if (asked !== undefined && asked !== 'libfuse3' && asked !== 'fuse-native') {
    throw new StargzError(ErrorCodes.USAGE, `${BACKEND_ENV}=${asked}: expected libfuse3 or fuse-native`);
  }
  const want = asked ?? FUSE_DEFAULTS.backend;
  if (want === 'libfuse3' && !fuseLowLevel()) {
    log('the libfuse 3 addon is not built (libfuse3-dev was missing at install): serving through fuse-native');
    return 'fuse-native';
  }
  return want;
}

export async function mountFuse(fs: MergedFs, backend: FuseBackendName, o: FuseMountOptions): Promise<MountedFuse> {
  return backend === 'libfuse3' ? mountThroughLibfuse3(fs, o) : mountThroughFuseNative(fs, o);
}

async function mountThroughLibfuse3(fs: MergedFs, o: FuseMountOptions): Promise<MountedFuse> {
  const options = ['ro', 'default_permissions', `fsname=${o.fsName}`, 'subtype=stargz-get'];
  if (o.allowOther) options.push('allow_other');
  if (o.autoUnmount) options.push('auto_unmount');
  let m;
  try {
    m = mountLowLevel(fs, { ...o, options });
  } catch (err) {
    throw err instanceof StargzError ? err : new StargzError(ErrorCodes.FUSE, (err as Error).message, { cause: err });
  }
  const mounted = m;
  return {
    backend: 'libfuse3',
    ended: mounted.ended,
    stats: () => mounted.stats(),
    unmount: async () => {
      fs.scheduler.clear();
      try {
        await o.unmountPath(o.mountpoint);
        // Detached: the kernel ends the session once no file of it is open any more.
        await Promise.race([mounted.ended, new Promise((r) => setTimeout(r, SESSION_END_WAIT_MS).unref())]);
      } finally {
        mounted.close();
      }
    },
  };
}

async function mountThroughFuseNative(fs: MergedFs, o: FuseMountOptions): Promise<MountedFuse> {
  const adapter = createFuseAdapter(fs, o);
  const fuseOptions: FuseNativeOptions = {
    fsname: o.fsName,
    subtype: 'stargz-get',
    allowOther: o.allowOther,
    autoUnmount: o.autoUnmount,
    defaultPermissions: true,
    kernelCache: true,
    attrTimeout: o.cacheSeconds,
    entryTimeout: o.cacheSeconds,
    debug: o.debug,
    // fuse-native's own last-resort timeout: after ours, so a read answers EIO, not ETIMEDOUT.
    timeout: readOnlyTimeouts(adapter.ops, o.readDeadlineMs + 10_000),
    extraOptions: ['ro', 'use_ino', 'readdir_ino', `negative_timeout=${o.cacheSeconds}`],
  };
  let Fuse;
  try {
    Fuse = loadFuse(o.unmountPath);
  } catch (err) {
    throw new StargzError(ErrorCodes.FUSE, `cannot load fuse-native: ${(err as Error).message}`, { cause: err });
  }
  const fuse = new Fuse(o.mountpoint, adapter.ops, fuseOptions);
  // libfuse 2 leaves fusermount's socket above /dev/fuse, where a kill -9 can leave a dead mount.
  const extra = o.autoUnmount ? posixExtra() : null;
  const guard = extra?.unmountSocketGuard();
  try {
    await promisify(fuse.mount.bind(fuse))();
  } finally {
    if (guard) extra!.placeUnmountSocket(guard);
  }
  return {
    backend: 'fuse-native',
    stats: () => undefined,
    unmount: async () => {
      adapter.stop();
      // fuse-native's unmount also releases the handle that keeps the event loop alive.
      await promisify(fuse.unmount.bind(fuse))();
    },
  };
}
