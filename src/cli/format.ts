// Human-readable numbers and `ls -l` style lines.
import type { VStat } from '../vfs/node.js';

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}

/** Sizes as the CLI takes them (10G, 256M): the largest binary unit that divides exactly. */
export function formatSize(n: number): string {
  for (const [unit, mult] of [['T', 1024 ** 4], ['G', 1024 ** 3], ['M', 1024 ** 2], ['K', 1024]] as const) {
    if (n >= mult && n % mult === 0) return `${n / mult}${unit}`;
  }
  return String(n);
}

/** Durations as the CLI takes them (2m, 30s, 500ms). */
export function formatDuration(ms: number): string {
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

const TYPE_CHARS: Record<number, string> = { 0o040000: 'd', 0o100000: '-', 0o120000: 'l', 0o020000: 'c', 0o060000: 'b', 0o010000: 'p' };

export function modeString(mode: number): string {
  const t = TYPE_CHARS[mode & 0o170000] ?? '?';
  const rwx = (bits: number, special: boolean, ch: string): string =>
    (bits & 4 ? 'r' : '-') + (bits & 2 ? 'w' : '-') + (special ? (bits & 1 ? ch : ch.toUpperCase()) : bits & 1 ? 'x' : '-');
  return (
    t +
    rwx((mode >> 6) & 7, (mode & 0o4000) !== 0, 's') +
    rwx((mode >> 3) & 7, (mode & 0o2000) !== 0, 's') +
    rwx(mode & 7, (mode & 0o1000) !== 0, 't')
  );
}

export function formatTime(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').slice(0, 19);
}

export function longListing(st: VStat, name: string, linkTarget?: string): string {
  const size = (st.mode & 0o170000) === 0o020000 || (st.mode & 0o170000) === 0o060000
    ? `${(st.rdev >> 8) & 0xfff}, ${(st.rdev & 0xff) | ((st.rdev >> 12) & ~0xff)}`
    : String(st.size);
  const link = linkTarget !== undefined ? ` -> ${linkTarget}` : '';
  return `${modeString(st.mode)} ${String(st.nlink).padStart(3)} ${String(st.uid).padStart(5)} ${String(st.gid).padStart(5)} ${size.padStart(10)} ${formatTime(st.mtimeMs)} ${name}${link}`;
}

// ---- names on a terminal ----

const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const CONTROL_RUNS = /([\u0000-\u001f\u007f-\u009f]+)/;
/** Characters a shell would interpret: GNU ls quotes names holding them. */
const SHELL_SPECIAL = /[\s!"#$&'()*;<>?[\\\]^`{|}~]/;
const C_ESCAPES: Record<string, string> = { '\x07': '\\a', '\b': '\\b', '\f': '\\f', '\n': '\\n', '\r': '\\r', '\t': '\\t', '\v': '\\v' };

/**
 * A file name as GNU `ls` shows it on a terminal (--quoting-style=shell-escape): as is when
 * harmless, in single quotes when a shell would interpret it, control characters as $'\ooo'
 * so that a name can never drive the terminal and can be pasted back into a shell.
 */
export function shellEscapeName(name: string): string {
  const hasControl = CONTROL.test(name);
  if (!hasControl && !SHELL_SPECIAL.test(name)) return name;
  const single = (text: string): string => `'${text.replace(/'/g, "'\\''")}'`;
  if (!hasControl) return name.includes("'") && !/["$`\\!]/.test(name) ? `"${name}"` : single(name);
  let out = '';
  for (const part of name.split(CONTROL_RUNS)) {
    if (part === '') continue;
    if (!CONTROL.test(part)) {
      out += single(part);
      continue;
    }
    let esc = '';
    for (const c of part) {
      esc += C_ESCAPES[c] ?? [...Buffer.from(c, 'utf8')].map((b) => '\\' + b.toString(8).padStart(3, '0')).join('');
    }
    out += `$'${esc}'`;
  }
  return out;
}
