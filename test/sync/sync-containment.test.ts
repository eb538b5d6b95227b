// Issue 7, "nothing is ever written outside DEST": hostile images (crafted TOCs over blobs
// the reference writer made) and hostile DEST contents, synced by the CLI from a real
// registry. Each case keeps a sentinel directory outside DEST and checks that it is
// exactly as it was: same entries, inodes, modes, mtimes, ctimes and contents.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstat, mkdir, readFile, readdir, readlink, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fixtureLayers } from '../estargz/fixture-layers.js';
import { pushCraftedImage, rewriteToc, writeLayout, type CraftToc } from '../helpers/craft-image.js';
import { startRegistry, pushLayout, type TestRegistry } from '../helpers/registry.js';
import { oracleUnpack, compareTrees, formatDiffs } from '../helpers/oracle.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';
import { runCli, type CliResult } from '../helpers/cli.js';
import { cliPath } from '../helpers/paths.js';

/** Everything observable about a tree, keyed by path ('' = the root itself). */
async function snapshot(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const visit = async (rel: string): Promise<void> => {
    const p = join(root, rel);
    const st = await lstat(p, { bigint: true });
    let extra = '';
    if (st.isFile()) extra = createHash('sha256').update(await readFile(p)).digest('hex');
    else if (st.isSymbolicLink()) extra = await readlink(p);
    out[rel] = [st.ino, st.mode.toString(8), st.nlink, st.uid, st.gid, st.size, st.mtimeNs, st.ctimeNs, extra].join(' ');
    if (st.isDirectory()) for (const name of (await readdir(p)).sort()) await visit(rel === '' ? name : rel + '/' + name);
  };
  await visit('');
  return out;
}

/** A directory outside DEST with a file and a non-empty subdirectory `d`, and its snapshot. */
async function makeSentinel(dir: string): Promise<{ dir: string; before: Record<string, string> }> {
  await mkdir(join(dir, 'd'), { recursive: true });
  await writeFile(join(dir, 'a'), 'outside file a\n');
  await writeFile(join(dir, 'd', 'keep'), 'outside file d/keep\n');
  await writeFile(join(dir, 'hostname'), 'outside hostname\n');
  return { dir, before: await snapshot(dir) };
}

const base = () => fixtureLayers('edge')[0]!;

/** A copy of the base layer's single-chunk file `from` under another name (same data). */
function copyOf(toc: CraftToc, from: string, name: string): object {
  const e = toc.entries.find((x) => x.name === from && x.type === 'reg');
  assert.ok(e, from);
  return { ...e, name };
}

describe('sync never writes outside DEST (issue 7)', () => {
  let reg: TestRegistry;
  let work: string;

  before(async () => {
    reg = await startRegistry({ mode: 'plain' });
    work = await makeTempDir('sync-contain-');
  });
  after(async () => {
    await reg?.stop();
    if (work) await removeDir(work);
  });

  /** Writes a one-layer image of the base layer with `edit` applied to its TOC, and pushes it. */
  const push = async (name: string, edit: (toc: CraftToc) => void): Promise<string> => {
    const layout = join(work, 'layout-' + name);
    await writeLayout(layout, { layers: [rewriteToc(base().blob, edit)] });
    await pushCraftedImage(reg, layout, `hostile/${name}:v1`);
    return `${reg.host}/hostile/${name}:v1`;
  };
  const syncArgs = (ref: string, dest: string) => ['sync', '--plain-http', '--quiet', '--cache-dir', join(work, 'cache'), ref, dest];
  const sync = (ref: string, dest: string): Promise<CliResult> => runCli(syncArgs(ref, dest));

  test('two names Node writes the same (lone surrogates): refused, and the symlink is never followed', async () => {
    const sentinel = await makeSentinel(join(work, 'outside-surrogate'));
    const ref = await push('surrogate', (toc) => {
      toc.entries.push(
        { name: 'x\ud800/', type: 'dir', mode: 0o755 },
        copyOf(toc, 'etc/hostname', 'x\ud800/a'),
        copyOf(toc, 'etc/passwd', 'x\ud800/d'), // renamed over the sentinel's directory d if x is followed
        { name: 'x\udbff', type: 'symlink', linkName: sentinel.dir, mode: 0o777 },
      );
    });
    const dest = join(work, 'dest-surrogate');
    const r = await sync(`${ref}/`, dest);
    assert.deepEqual(await snapshot(sentinel.dir), sentinel.before);
    assert.notEqual(r.code, 0, 'sync of a TOC with colliding names must fail');
    assert.match(r.stderr, /ERR_TOC_INVALID|ERR_UNSAFE_PATH/);
    assert.match(r.stderr, /well-formed|same name on disk/);
  });

  test('a symlink already in DEST where the image has a directory is replaced, never followed', async () => {
    const sentinel = await makeSentinel(join(work, 'outside-planted'));
    const ref = await push('planted', (toc) => {
      toc.entries.push(
        { name: 'x/', type: 'dir', mode: 0o700, modtime: '2021-01-01T00:00:00Z' },
        copyOf(toc, 'etc/hostname', 'x/a'),
        copyOf(toc, 'etc/passwd', 'x/d'), // a file where the outside directory d is
        copyOf(toc, 'etc/one', 'x/new'),
        { name: 'x/fifo', type: 'fifo', mode: 0o600 },
        { name: 'x/link', type: 'symlink', linkName: 'a', mode: 0o777 },
        { name: 'x/hard', type: 'hardlink', linkName: 'x/a', mode: 0o644 },
      );
    });
    const dest = join(work, 'dest-planted');
    await mkdir(dest);
    await symlink(sentinel.dir, join(dest, 'x'));
    const r = await sync(`${ref}/`, dest);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await snapshot(sentinel.dir), sentinel.before);
    const x = await lstat(join(dest, 'x'));
    assert.ok(x.isDirectory());
    assert.equal(x.mode & 0o7777, 0o700);
    assert.deepEqual((await readdir(join(dest, 'x'))).sort(), ['a', 'd', 'fifo', 'hard', 'link', 'new']);
    assert.equal(await readFile(join(dest, 'x/d'), 'utf8'), await readFile(join(dest, 'etc/passwd'), 'utf8'));
    assert.equal((await lstat(join(dest, 'x/a'))).ino, (await lstat(join(dest, 'x/hard'))).ino);
  });

  test('entries named like the old temporaries (.NAME.sgtmp-PID-N) cannot take over a file', async () => {
    const sentinel = await makeSentinel(join(work, 'outside-tmpnames'));
    const dest = join(work, 'dest-tmpnames');
    // The sync process's pid must be known before its image is made: a shell waits for a
    // line on stdin, then execs the CLI (same pid).
    const child = spawn('sh', ['-c', 'read go; exec "$0" "$@"', process.execPath, cliPath, ...syncArgs(`${reg.host}/hostile/tmpnames:v1/etc`, dest)], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    const planted: Record<string, string> = {};
    try {
      await push('tmpnames', (toc) => {
        const files = toc.entries.filter((e) => e.type === 'reg' && /^etc\/[^/]+$/.test(e.name)).map((e) => e.name.slice(4) as string);
        assert.ok(files.length >= 3);
        // The old scheme numbered temporaries 1, 2... in plan order, files first: symlinks to
        // outside at the first numbers, then directories (which take no number themselves)
        // far beyond the count of temporaries this sync makes, whatever their order.
        for (const name of files) {
          for (let n = 1; n <= 70; n++) {
            const tmp = `.${name}.sgtmp-${child.pid}-${n}`;
            if (n <= 10) {
              planted[tmp] = join(sentinel.dir, name);
              toc.entries.push({ name: `etc/${tmp}`, type: 'symlink', linkName: planted[tmp], mode: 0o777 });
            } else {
              planted[tmp] = '';
              toc.entries.push({ name: `etc/${tmp}/`, type: 'dir', mode: 0o755 });
            }
          }
        }
      });
    } finally {
      child.stdin.end('go\n');
    }
    assert.equal(await exited, 0, stderr);
    assert.deepEqual(await snapshot(sentinel.dir), sentinel.before);
    // DEST is the base layer's etc plus the planted symlinks, as they are in the image.
    await writeLayout(join(work, 'layout-base'), { layers: [{ blob: base().blob, annotations: base().annotations }] });
    await pushCraftedImage(reg, join(work, 'layout-base'), 'hostile/base:v1');
    const oracle = await oracleUnpack(reg, 'hostile/base:v1', join(work, 'oracle-base'));
    const diffs = (await compareTrees(join(oracle, 'etc'), dest)).filter((d) => !(d.path in planted && d.field === 'exists'));
    assert.deepEqual(diffs, [], formatDiffs(diffs));
    for (const [name, target] of Object.entries(planted)) {
      if (target) assert.equal(await readlink(join(dest, name)), target, name);
      else assert.ok((await lstat(join(dest, name))).isDirectory(), name);
    }
  });

  test("names with '..', '.' and '/' land inside DEST, as umoci unpacks them (reference-made layer)", async () => {
    await pushLayout(reg, 'dotdot', 'fixtures/dotdot:v1');
    const oracle = await oracleUnpack(reg, 'fixtures/dotdot:v1', join(work, 'oracle-dotdot'));
    const parent = join(work, 'dotdot');
    const dest = join(parent, 'dest');
    const r = await sync(`${reg.host}/fixtures/dotdot:v1/`, dest);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await readdir(parent), ['dest']);
    assert.deepEqual((await readdir(dest)).sort(), ['b', 'bar', 'baz', 'foo', 'qux']);
    assert.equal(await readFile(join(dest, 'foo/f'), 'utf8'), 'foo file\n');
    assert.equal((await lstat(join(dest, 'qux'))).ino, (await lstat(join(dest, 'baz'))).ino);
    const diffs = (await compareTrees(oracle, dest)).filter((d) => !(d.field === 'mtime' && d.path === 'b'));
    assert.deepEqual(diffs, [], formatDiffs(diffs));
  });

  test("crafted TOC names '../foo', './bar', '/baz' and a '../' hardlink target are cleaned at the root", async () => {
    const ref = await push('cleaned', (toc) => {
      toc.entries.push(
        { name: '../foo/', type: 'dir', mode: 0o755 },
        copyOf(toc, 'etc/hostname', '../foo/../../foo/f'),
        { name: './bar', type: 'symlink', linkName: 'baz', mode: 0o777 },
        copyOf(toc, 'etc/passwd', '/baz'),
        { name: '../../qux', type: 'hardlink', linkName: '../../baz', mode: 0o644 },
      );
    });
    const parent = join(work, 'cleaned');
    const dest = join(parent, 'dest');
    const r = await sync(`${ref}/`, dest);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await readdir(parent), ['dest']);
    assert.equal(await readFile(join(dest, 'foo/f'), 'utf8'), await readFile(join(dest, 'etc/hostname'), 'utf8'));
    assert.equal(await readlink(join(dest, 'bar')), 'baz');
    assert.equal(await readFile(join(dest, 'baz'), 'utf8'), await readFile(join(dest, 'etc/passwd'), 'utf8'));
    assert.equal((await lstat(join(dest, 'qux'))).ino, (await lstat(join(dest, 'baz'))).ino);
  });
});
