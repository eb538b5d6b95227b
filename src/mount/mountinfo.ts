// What is mounted where, from /proc/self/mountinfo: reading it never touches a mount, so a
// serving process may poll it (to notice an external unmount) without risking a deadlock.
import { readFile } from 'node:fs/promises';

export interface MountEntry {
  mountPoint: string;
  /** e.g. 'fuse.stargz-get', 'ext4' */
  fsType: string;
  /** The mount source; for our mounts the image reference. */
  source: string;
  options: string;
}

/** Undoes the kernel's octal escapes (\040 for space, \011, \012, \134). */
function unescapeField(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Parses mountinfo text (see proc(5)); malformed lines are skipped. */
export function parseMountinfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const fields = line.split(' ');
    const dash = fields.indexOf('-', 6);
    if (dash < 0 || fields.length < dash + 3) continue;
    out.push({
      mountPoint: unescapeField(fields[4]!),
      options: fields[5]!,
      fsType: fields[dash + 1]!,
      source: unescapeField(fields[dash + 2]!),
    });
  }
  return out;
}

/** The topmost mount at exactly `absPath`, if any. */
export async function mountAt(absPath: string, file = '/proc/self/mountinfo'): Promise<MountEntry | undefined> {
  const entries = parseMountinfo(await readFile(file, 'utf8'));
  let found: MountEntry | undefined;
  for (const e of entries) if (e.mountPoint === absPath) found = e; // later lines are mounted on top
  return found;
}

export function isFuse(entry: MountEntry): boolean {
  return entry.fsType === 'fuse' || entry.fsType.startsWith('fuse.') || entry.fsType === 'fuseblk';
}
