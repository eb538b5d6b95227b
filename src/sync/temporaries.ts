// Leftovers of a killed run. Every temporary sync makes is named by tempName() and exists only
// until it is renamed to its final name (or removed when a run fails cleanly); one still there
// when a run starts was left by a run that was killed (SIGKILL, power loss). Before writing
// into a directory a run removes those — only names isTempName() accepts, by the directory's
// descriptor, never following a symlink (a leftover temporary can be a symlink). Two syncs
// into one DEST at once are not supported: the second would remove the first's temporaries.
import { isTempName } from './dest-path.js';
import type { DestFs, DirHandle } from './dest-fs.js';
import type { DestListing } from './dest-scan.js';

/** Removes the leftover temporaries `listing` shows in dir, and drops them from the listing; returns how many. */
export async function removeStaleTemps(disk: DestFs, dir: DirHandle, listing: DestListing): Promise<number> {
  let removed = 0;
  for (const name of [...listing.keys()]) {
    if (!isTempName(name)) continue;
    await disk.removeEntry(dir, name);
    listing.delete(name);
    removed++;
  }
  return removed;
}
