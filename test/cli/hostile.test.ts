// Bounded under hostile servers (issue 8): a registry front that trickles, overruns its
// Content-Range or streams a body forever must not hold the CLI; Ctrl-C and SIGTERM must
// end it promptly and cleanly. Each case states its time bound and its exit status.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir, lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { startRegistry, pushLayout, type TestRegistry } from '../helpers/registry.js';
import { startHostileServer, type HostileRule, type HostileServer } from '../helpers/hostile-server.js';
import { makeTempDir, removeDir, trackPid, untrackPid } from '../helpers/tmp.js';
import { cliPath } from '../helpers/paths.js';
import { runCli } from '../helpers/cli.js';
import { fixtureLayers } from '../estargz/fixture-layers.js';
import { BIG_LAYER, big2Chunks } from './hostile-fixtures.js';

/** Short deadlines so that every case ends in seconds: 1 s for documents, 1 KiB/s over 1 s for blobs. */
const FAST = ['--timeout', '1s', '--min-rate', '1K', '--rate-window', '1s', '--retries', '0'];

interface Running {
  pid: number;
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
}

/** The CLI in a child process we can send signals to. */
function startCli(args: string[]): Running {
  const child = spawn(process.execPath, [cliPath, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  trackPid(child.pid!);
  let stderr = '';
  child.stdout.resume();
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const kill = setTimeout(() => child.kill('SIGKILL'), 30_000); // a hang must not hang the suite
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((r) =>
    child.once('close', (code, signal) => {
      clearTimeout(kill);
      untrackPid(child.pid!);
      r({ code, signal, at: Date.now() });
    }),
  );
  return { pid: child.pid!, stderr: () => stderr, exited };
}

/** Files under dir whose names say they are sync temporaries. */
async function temporaries(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const name of await readdir(d).catch(() => [] as string[])) {
      const p = join(d, name);
      if (name.includes('.sgtmp-')) out.push(p);
      if ((await lstat(p).catch(() => undefined))?.isDirectory()) await walk(p);
    }
  };
  await walk(dir);
  return out;
}

async function until(what: string, cond: () => Promise<boolean> | boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('bounded under hostile servers', () => {
  let reg: TestRegistry;
  let work: string;
  let plainLayer: string;
  const servers: HostileServer[] = [];
  let n = 0;
  const fresh = (name: string): string => join(work, `${name}-${n++}`);
  const hostile = async (rules: HostileRule[]): Promise<HostileServer> => {
    const s = await startHostileServer(reg.url, rules);
    servers.push(s);
    return s;
  };
  /** Runs the CLI to its end and says how long that took. */
  const timed = async (args: string[]) => {
    const t0 = Date.now();
    const r = await runCli([...args, '--plain-http', '--cache-dir', fresh('cache')], { timeoutMs: 20_000 });
    return { ...r, ms: Date.now() - t0 };
  };

  before(async () => {
    reg = await startRegistry({ mode: 'plain' });
    await pushLayout(reg, 'edge', 'fixtures/edge:v1');
    await pushLayout(reg, 'mixed', 'fixtures/mixed:v1');
    work = await makeTempDir('hostile-');
    plainLayer = fixtureLayers('mixed').find((l) => !l.annotations['containerd.io/snapshot/stargz/toc.digest'])!.digest;
  });
  after(async () => {
    for (const s of servers) await s.close();
    await reg?.stop();
    if (work) await removeDir(work);
  });

  test('a manifest that trickles a byte at a time fails with ERR_TIMEOUT within its deadline', async () => {
    const s = await hostile([{ match: { pathIncludes: '/manifests/' }, action: 'trickle', intervalMs: 200 }]);
    const dest = fresh('dest');
    const r = await timed(['sync', ...FAST, `${s.host}/fixtures/edge:v1/etc`, dest]);
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, /^stargz-get: ERR_TIMEOUT: .*manifests/m);
    assert.ok(r.ms < 5000, `took ${r.ms} ms (deadline 1 s)`);
    assert.equal(existsSync(dest), false, 'nothing written');
  });

  test('a 206 that keeps sending past its Content-Range fails with ERR_REGISTRY_PROTOCOL, not a hang', async () => {
    const s = await hostile([{ match: { pathIncludes: '/blobs/', hasRange: true }, action: 'overrun-range' }]);
    const dest = fresh('dest');
    const r = await timed(['sync', ...FAST, `${s.host}/fixtures/edge:v1/etc`, dest]);
    assert.equal(r.code, 5, `${r.code} ${r.signal} after ${r.ms} ms: ${r.stderr}`);
    assert.match(r.stderr, /ERR_REGISTRY_PROTOCOL: .*more than the \d+ bytes its Content-Range announces/);
    assert.ok(r.ms < 8000, `took ${r.ms} ms`);
    assert.equal(existsSync(dest), false, 'nothing written');
  });

  test('a plain layer whose body streams forever is cut off at its descriptor size', async () => {
    const s = await hostile([{ match: { pathIncludes: plainLayer, hasRange: false }, action: 'endless-body' }]);
    const dest = fresh('dest');
    const r = await timed(['sync', ...FAST, `${s.host}/fixtures/mixed:v1/etc`, dest]);
    assert.equal(r.code, 5, `${r.code} ${r.signal} after ${r.ms} ms: ${r.stderr}`);
    assert.match(r.stderr, /ERR_REGISTRY_PROTOCOL: .*more than the \d+ bytes the manifest gives the blob/);
    assert.ok(r.ms < 8000, `took ${r.ms} ms`);
    assert.equal(existsSync(dest), false, 'nothing written');
  });

  test('a blob body that trickles fails with ERR_TIMEOUT once it stays below --min-rate for --rate-window', async () => {
    const { offsets, tailStart } = big2Chunks();
    const s = await hostile([
      { match: { pathIncludes: BIG_LAYER, hasRange: true, rangeStartAtLeast: offsets[0]!, rangeStartBelow: tailStart }, action: 'trickle', intervalMs: 50 },
    ]);
    const dest = fresh('dest');
    const r = await timed(['sync', ...FAST, `${s.host}/fixtures/edge:v1/bin`, dest]);
    assert.equal(r.code, 5, `${r.code} ${r.signal} after ${r.ms} ms: ${r.stderr}`);
    assert.match(r.stderr, /ERR_TIMEOUT: .*slower than 1024 bytes\/s/);
    assert.ok(r.ms < 8000, `took ${r.ms} ms`);
    assert.equal(existsSync(join(dest, 'big2')), false, 'no half-written file under its final name');
    assert.deepEqual(await temporaries(dest), []);
  });

  test('a token answer that trickles fails with ERR_TIMEOUT within its deadline', async () => {
    const s = await hostile([
      { match: { pathIncludes: '/v2/' }, action: 'bearer-challenge' },
      { match: { pathIncludes: '/token' }, action: 'trickle', intervalMs: 200, body: JSON.stringify({ token: 'x'.repeat(64) }) },
    ]);
    const r = await timed(['info', ...FAST, `${s.host}/fixtures/edge:v1`]);
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, /ERR_TIMEOUT: .*\/token/);
    assert.ok(r.ms < 5000, `took ${r.ms} ms (deadline 1 s)`);
  });

  test('Ctrl-C during a trickling token fetch (shared by every request, so no caller signal) exits 130 within a second', async () => {
    const s = await hostile([
      { match: { pathIncludes: '/v2/' }, action: 'bearer-challenge' },
      { match: { pathIncludes: '/token' }, action: 'trickle', intervalMs: 500, body: JSON.stringify({ token: 'x'.repeat(64) }) },
    ]);
    const cli = startCli(['info', '--plain-http', '--cache-dir', fresh('cache'), `${s.host}/fixtures/edge:v1`]);
    await s.waitForHit(1);
    await new Promise((r) => setTimeout(r, 700));
    const t0 = Date.now();
    process.kill(cli.pid, 'SIGINT');
    const { code, at } = await cli.exited;
    assert.equal(code, 130, cli.stderr());
    assert.ok(at - t0 < 1000, `exited ${at - t0} ms after SIGINT`);
  });

  // One signal reaches every fetch: each of these trickles forever under the default deadlines.
  const trickling: Array<{ what: string; image: string; rule: () => HostileRule }> = [
    { what: 'manifest', image: 'edge', rule: () => ({ match: { pathIncludes: '/manifests/' }, action: 'trickle', intervalMs: 500 }) },
    {
      what: 'TOC',
      image: 'edge',
      rule: () => ({ match: { pathIncludes: BIG_LAYER, hasRange: true, rangeStartAtLeast: big2Chunks().tailStart }, action: 'trickle', intervalMs: 500 }),
    },
    { what: 'plain layer', image: 'mixed', rule: () => ({ match: { pathIncludes: plainLayer, hasRange: false }, action: 'trickle', intervalMs: 500 }) },
  ];
  for (const c of trickling) {
    test(`Ctrl-C during a trickling ${c.what} fetch exits 130 within a second`, async () => {
      const s = await hostile([c.rule()]);
      const dest = fresh('dest');
      const cli = startCli(['sync', '--plain-http', '--cache-dir', fresh('cache'), `${s.host}/fixtures/${c.image}:v1/etc`, dest]);
      await s.waitForHit(0);
      await new Promise((r) => setTimeout(r, 700)); // a few bytes in
      const t0 = Date.now();
      process.kill(cli.pid, 'SIGINT');
      const { code, at } = await cli.exited;
      assert.equal(code, 130, cli.stderr());
      assert.ok(at - t0 < 1000, `exited ${at - t0} ms after SIGINT`);
      assert.match(cli.stderr(), /ERR_ABORTED: /);
      assert.equal(existsSync(dest), false, 'nothing written');
    });
  }

  test('SIGTERM during sync removes the temporaries and exits 143; nothing half-written under a final name', async () => {
    const { offsets, tailStart } = big2Chunks();
    // big2's first chunk arrives, the rest trickles: the file is half-written at a temporary name.
    const s = await hostile([
      { match: { pathIncludes: BIG_LAYER, hasRange: true, rangeStartAtLeast: offsets[2]!, rangeStartBelow: tailStart }, action: 'trickle', intervalMs: 500 },
    ]);
    const dest = fresh('dest');
    const cli = startCli(['sync', '--plain-http', '--cache-dir', fresh('cache'), '--concurrency', '1', '--max-range', '64K', `${s.host}/fixtures/edge:v1/bin`, dest]);
    // Temporaries have random names: big2's is the one holding its first 64 KiB chunks.
    const halfWritten = async (): Promise<boolean> => {
      for (const p of await temporaries(dest)) if (((await lstat(p).catch(() => undefined))?.size ?? 0) >= 64 * 1024) return true;
      return false;
    };
    await until('big2 half-written at a temporary name', halfWritten);
    const t0 = Date.now();
    process.kill(cli.pid, 'SIGTERM');
    const { code, at } = await cli.exited;
    assert.equal(code, 143, cli.stderr());
    assert.ok(at - t0 < 2000, `exited ${at - t0} ms after SIGTERM`);
    assert.deepEqual(await temporaries(dest), [], 'temporaries left behind');
    assert.equal(existsSync(join(dest, 'big2')), false, 'no half-written file under its final name');
  });
});
