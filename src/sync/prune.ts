// `--delete` (issue 11): the entries of DEST's directories that the synced path does not have.
// With --delete they are removed — by the directory's descriptor, a symlink itself and never
// what it points at, a directory with everything below it through O_NOFOLLOW descriptors
// (dest-fs.ts removeEntry) — so that DEST ends up equal to what an unpacker gives for the
// path; without it they stay and are counted. Only directories that are image directories
// are pruned: a single file synced into an existing directory leaves its neighbours alone.
import { mapConcurrent } from '../util/concurrent.js';
import type { DestFs } from './dest-fs.js';
import type { DestListing } from './dest-scan.js';
import { isTempName } from './dest-path.js';
import type { ScanDir } from './reuse.js';

/** The names in listing that dir's image directory lacks. */
export function extraNames(dir: ScanDir, listing: DestListing): string[] {
  const children = dir.node?.children;
  if (!children) return [];
  return [...listing.keys()].filter((name) => !children.has(name) && !isTempName(name)).sort();
}

export async function pruneExtras(
  disk: DestFs,
  dirs: readonly ScanDir[],
  listings: ReadonlyMap<ScanDir, DestListing>,
  remove: boolean,
): Promise<{ deleted: number; extra: number }> {
  let deleted = 0;
  let extra = 0;
  await mapConcurrent(dirs, 8, async (dir) => {
    const listing = listings.get(dir);
    if (!listing) return;
    for (const name of extraNames(dir, listing)) {
      if (!remove) {
        extra++;
        continue;
      }
      await disk.removeEntry(dir, name);
      deleted++;
    }
  });
  return { deleted, extra };
}
