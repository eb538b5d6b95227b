// user.* extended attributes of every entry under a directory, read by ONE child process
// (Node's fs has no xattr calls). Prefers python3 (exact, JSON out); falls back to getfattr
// (Debian package `attr`), whose file names are octal-escaped.
import { execFile } from 'node:child_process';
import { relative } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** relative path ('' = root) → { 'user.name': hex value }; entries without user xattrs are absent. */
export type XattrMap = Map<string, Record<string, string>>;

const PY = `
import json, os, sys
root = sys.argv[1]
out = {}
def scan(p):
    try:
        names = [n for n in os.listxattr(p, follow_symlinks=False) if n.startswith('user.')]
    except OSError:
        return
    if names:
        out[os.path.relpath(p, root) if p != root else ''] = {n: os.getxattr(p, n, follow_symlinks=False).hex() for n in sorted(names)}
scan(root)
for d, dirs, files in os.walk(root):
    for n in dirs + files:
        scan(os.path.join(d, n))
json.dump(out, sys.stdout)
`;

async function has(cmd: string): Promise<boolean> {
  try {
    await run('sh', ['-c', `command -v ${cmd}`]);
    return true;
  } catch {
    return false;
  }
}

let tool: Promise<'python3' | 'getfattr' | null> | undefined;
function pickTool(): Promise<'python3' | 'getfattr' | null> {
  tool ??= (async () => ((await has('python3')) ? 'python3' : (await has('getfattr')) ? 'getfattr' : null))();
  return tool;
}

/** Undoes getfattr's quoting: \\ooo octal escapes of bytes, then UTF-8. */
export function unescapeGetfattr(s: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < s.length; ) {
    if (s[i] === '\\' && /^[0-7]{3}$/.test(s.slice(i + 1, i + 4))) {
      bytes.push(parseInt(s.slice(i + 1, i + 4), 8));
      i += 4;
    } else {
      const cp = s.codePointAt(i) as number;
      const ch = String.fromCodePoint(cp);
      bytes.push(...Buffer.from(ch, 'utf8'));
      i += ch.length;
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

/** Parses `getfattr -R -P -h -d -m ^user\\. -e hex --absolute-names ROOT` output. */
export function parseGetfattr(out: string, root: string): XattrMap {
  const map: XattrMap = new Map();
  let cur: Record<string, string> | undefined;
  for (const line of out.split('\n')) {
    if (line.startsWith('# file: ')) {
      const rel = relative(root, unescapeGetfattr(line.slice(8)));
      cur = {};
      map.set(rel, cur);
    } else if (cur && line.startsWith('user.')) {
      const eq = line.indexOf('=');
      const name = unescapeGetfattr(eq < 0 ? line : line.slice(0, eq));
      const val = eq < 0 ? '' : line.slice(eq + 1);
      cur[name] = val.startsWith('0x') ? val.slice(2).toLowerCase() : val === '""' || val === '' ? '' : Buffer.from(val.replace(/^"|"$/g, '')).toString('hex');
    }
  }
  for (const [k, v] of map) if (Object.keys(v).length === 0) map.delete(k);
  return map;
}

export async function readUserXattrs(root: string): Promise<XattrMap> {
  const t = await pickTool();
  if (t === 'python3') {
    const { stdout } = await run('python3', ['-c', PY, root], { maxBuffer: 256 << 20 });
    return new Map(Object.entries(JSON.parse(stdout) as Record<string, Record<string, string>>));
  }
  if (t === 'getfattr') {
    // exit status 1 just means some entry had none / was unreadable; the output is still complete
    const res = await run('getfattr', ['-R', '-P', '-h', '-d', '-m', '^user\\.', '-e', 'hex', '--absolute-names', root], {
      maxBuffer: 256 << 20,
    }).catch((e: { stdout?: string }) => ({ stdout: e.stdout ?? '' }));
    return parseGetfattr(res.stdout, root);
  }
  throw new Error('reading xattrs needs python3 or getfattr (apt-get install attr)');
}
