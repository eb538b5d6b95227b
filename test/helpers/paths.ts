// Paths the tests share. Tests are compiled to dist/test/..., so the project root is found
// by walking up to the directory holding package.json rather than by a fixed depth.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(start: string): string {
  let dir = start;
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('package.json not found above ' + start);
    dir = parent;
  }
  return dir;
}

export const projectRoot = findRoot(dirname(fileURLToPath(import.meta.url)));
export const fixturesDir = join(projectRoot, 'test', 'fixtures');
/** OCI image layouts made by the reference estargz writer: edge, legacy, mixed, zstd, multi. */
export const layoutsDir = join(fixturesDir, 'layouts');
export const cliPath = join(projectRoot, 'bin', 'stargz-get');
/**
 * The reference estargz converter (scripts/tools/esgz-ref, which .ci/run builds): $ESGZ_REF,
 * else /usr/local/bin/esgz-ref, else undefined (tests that need it then skip, saying so).
 */
export const esgzRefPath: string | undefined = [process.env.ESGZ_REF, '/usr/local/bin/esgz-ref'].find((p): p is string => !!p && existsSync(p));
