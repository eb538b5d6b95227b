// What a command loads before it answers (issue 13: start-up is most of a warm `ls` or mount):
// node's module debug log (NODE_DEBUG=module, the CommonJS loader every dependency goes
// through) shows the dependency files loaded. `ls` loads undici's client parts, not its fetch
// or WebSocket, and prom-client's metric classes, not its default metrics with OpenTelemetry;
// the parent of `mount -d` loads none of the registry client, SQLite or fuse-native: the
// background process does that work.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { pushLayout, startRegistry, type TestRegistry } from '../helpers/registry.js';
import { makeTempDir, removeDir, trackPid, untrackPid } from '../helpers/tmp.js';
import { runCli } from '../helpers/cli.js';
import { forceDown, isAlive, waitFor, type Mount } from '../fuse/mount-helpers.js';
import type { MountJson } from '../../src/cli/commands/mount.js';

let work: string;
let reg: TestRegistry;
const started: Mount[] = [];
before(async () => {
  work = await makeTempDir('cli-startup-modules-');
  reg = await startRegistry({ mode: 'plain' });
  await pushLayout(reg, 'edge', 'fixtures/edge:v1');
});
after(async () => {
  for (const m of started.splice(0)) await forceDown(m);
  await reg?.stop();
  if (work) await removeDir(work);
});

/** The node_modules files a process's module debug log says it loaded. */
function loaded(stderr: string): string[] {
  return [...new Set([...stderr.matchAll(/node_modules\/((?:@[^/\s'"]+\/)?[^/\s'"]+\/[^\s'"]*\.(?:js|node|json))/g)].map((m) => m[1]!))];
}

describe('what start-up loads', () => {
  test('ls: undici without fetch or WebSocket, prom-client without its default metrics', async () => {
    const r = await runCli(['ls', '--plain-http', '--cache-dir', join(work, 'cache-ls'), `${reg.host}/fixtures/edge:v1/etc`], { env: { NODE_DEBUG: 'module' } });
    assert.equal(r.code, 0, r.stderr.slice(-2000));
    const files = loaded(r.stderr);
    assert.ok(files.some((f) => f.startsWith('undici/lib/dispatcher/agent.js')), 'the registry client ran on undici');
    assert.ok(files.some((f) => f.startsWith('prom-client/lib/counter.js')), 'the metrics ran on prom-client');
    assert.deepEqual(files.filter((f) => /^undici\/lib\/web\/|^undici\/index\.js|^@opentelemetry\/|^prom-client\/index\.js|^prom-client\/lib\/defaultMetrics/.test(f)), []);
  });

  test('mount -d: the parent loads neither the registry client, SQLite, fuse-native nor the format', async () => {
    const mnt = join(work, 'mnt');
    const cacheDir = join(work, 'cache-mount');
    await mkdir(mnt);
    // The child inherits NODE_DEBUG, but its stderr goes to its log: what is here is the parent's.
    const r = await runCli(['mount', '-d', '--json', '--plain-http', '--cache-dir', cacheDir, `${reg.host}/fixtures/edge:v1`, mnt], { env: { NODE_DEBUG: 'module,esm' } });
    assert.equal(r.code, 0, r.stderr.slice(-2000));
    const doc = JSON.parse(r.stdout) as MountJson;
    trackPid(doc.pid);
    started.push({ dir: mnt, cacheDir, pid: doc.pid, stderr: () => '' });
    const files = loaded(r.stderr);
    assert.ok(files.some((f) => f.startsWith('commander/')), 'the module log is the parent CLI');
    assert.deepEqual(files.filter((f) => /^(undici|better-sqlite3|fuse-native|prom-client)\//.test(f)), []);
    // Nor the eStargz format, the tar reader or the index (ESM, in the esm log): what --prefetch is checked with is apart.
    assert.ok(/Storing file:\/\/\S+\/dist\/src\/cli\/commands\/mount\.js/.test(r.stderr), 'the esm log is there');
    assert.deepEqual([...r.stderr.matchAll(/Storing file:\/\/\S+\/dist\/src\/((?:estargz|tar|file-index|layer|vfs)\/\S+\.js)/g)].map((m) => m[1]), []);
    const down = await runCli(['umount', mnt]);
    assert.equal(down.code, 0, down.stderr);
    await waitFor('the server to exit', () => !isAlive(doc.pid));
    untrackPid(doc.pid);
    started.splice(0);
  });
});
