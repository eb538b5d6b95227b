// Runs a command with a resolver that answers nothing: in a private mount namespace,
// /etc/resolv.conf is replaced by one naming 127.0.0.1 (where no DNS server listens), so a
// host name not in /etc/hosts fails at once and no query ever leaves the machine. Needs root
// (unshare -m). The system's own /etc/resolv.conf is untouched.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** The prefix for runCli({prefix}) (or spawn); `dir` receives the replacement resolv.conf. */
export function noDnsPrefix(dir: string): string[] {
  const resolv = join(dir, 'resolv.conf');
  writeFileSync(resolv, 'nameserver 127.0.0.1\noptions attempts:1 timeout:1\n');
  return ['unshare', '-m', '--propagation', 'private', 'sh', '-c', 'mount --bind "$0" /etc/resolv.conf && exec "$@"', resolv];
}
