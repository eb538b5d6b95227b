// Loads the small native addon (native/posix_extra.c): xattrs on the entry itself and
// device nodes — calls Node's fs does not offer.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface PosixExtra {
  lsetxattr(path: string, name: string, value: Buffer): void;
  mknod(path: string, mode: number, major: number, minor: number): void;
}

let loaded: PosixExtra | null | undefined;

/** The addon, or null when it was not built (then xattrs and device nodes are skipped with a warning). */
export function posixExtra(): PosixExtra | null {
  if (loaded !== undefined) return loaded;
  loaded = null;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, 'native', 'build', 'Release', 'posix_extra.node');
    if (existsSync(candidate)) {
      loaded = createRequire(import.meta.url)(candidate) as PosixExtra;
      break;
    }
    dir = dirname(dir);
  }
  return loaded;
}
