// The fuse-native (libfuse 2) backend, which mounts where the libfuse 3 addon could not be
// built: the same CLI `mount -d` of a real registry's image, checked against the umoci unpack,
// and a kill -9 of its server cleaned up by fusermount's auto_unmount.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BACKEND_ENV } from '../../src/fuse/backend.js';
import { pushLayout, startRegistry, type TestRegistry } from '../helpers/registry.js';
import { compareTrees, formatDiffs, oracleUnpack } from '../helpers/oracle.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';
import { Mounts, forceDown, isAlive, isMounted, run, unmountWatchFds, waitFor } from './mount-helpers.js';

let reg: TestRegistry;
let work: string;
let oracle: string;
const mounts = new Mounts();
const suiteStart = Math.floor(Date.now() / 1000) - 5;

before(async () => {
  process.env[BACKEND_ENV] = 'fuse-native'; // the CLI children inherit it
  reg = await startRegistry({ mode: 'plain' });
  work = await makeTempDir('fuse2-');
  await pushLayout(reg, 'edge', 'fixtures/edge:v1');
  oracle = await oracleUnpack(reg, 'fixtures/edge:v1', join(work, 'oracle'));
});
after(async () => {
  await mounts.cleanup();
  await reg?.stop();
  if (work) await removeDir(work);
  delete process.env[BACKEND_ENV];
});

test('fuse-native: the mount equals the umoci unpack; a kill -9 of its server is unmounted by fusermount', async () => {
  const mnt = join(work, 'mnt');
  await mkdir(mnt);
  const m = await mounts.detached(`${reg.host}/fixtures/edge:v1`, mnt, join(work, 'cache'));
  const maps = await readFile(`/proc/${m.pid}/maps`, 'utf8');
  assert.match(maps, /libfuse\.so\.2/, 'served by libfuse 2');
  assert.doesNotMatch(maps, /libfuse3\.so/);

  // umoci stamps directories no layer lists when it unpacks: those mtimes are not the image's.
  const diffs = (await compareTrees(oracle, mnt, {})).filter((d) => !(d.field === 'mtime' && typeof d.expected === 'number' && d.expected >= suiteStart));
  assert.deepEqual(diffs, [], formatDiffs(diffs));
  const r = await run('cat', [join(mnt, 'etc/hostname')]);
  assert.equal(r.stdout, 'stargz-edge\n');

  const fds = unmountWatchFds(m.pid);
  assert.ok(fds.socket < fds.fuse, `fusermount's socket is fd ${fds.socket}, /dev/fuse fd ${fds.fuse}`);
  process.kill(m.pid, 'SIGKILL');
  await waitFor('the server to die', () => !isAlive(m.pid));
  await waitFor('the mount to go away', () => !isMounted(mnt), 10_000);
  await forceDown(m);
});
