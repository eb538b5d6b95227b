// The configuration file through the real CLI: defaults from the file, flags over it,
// per-registry plain-http, ERR_CONFIG with file:line:key, and `stargz-get config`.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect, type Server } from 'node:net';
import { mkdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startRegistry, pushLayout, type TestRegistry } from '../helpers/registry.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';
import { runCli } from '../helpers/cli.js';

/** A TCP relay to the registry that records the first byte of each connection: 0x16 is a TLS handshake. */
async function startSniffer(target: TestRegistry): Promise<{ host: string; firstBytes: number[]; close(): Promise<void> }> {
  const [thost, tport] = target.host.split(':') as [string, string];
  const firstBytes: number[] = [];
  const server: Server = createServer((sock) => {
    const up = connect(Number(tport), thost);
    sock.once('data', (d: Buffer) => firstBytes.push(d[0]!));
    sock.pipe(up).pipe(sock);
    sock.on('error', () => up.destroy());
    up.on('error', () => sock.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return { host: `127.0.0.1:${port}`, firstBytes, close: () => new Promise((r) => server.close(() => r())) };
}

describe('configuration file', () => {
  let reg: TestRegistry;
  let work: string;
  let xdg: string;
  before(async () => {
    reg = await startRegistry({ mode: 'plain' });
    await pushLayout(reg, 'multi', 'fixtures/multi:v1', { all: true });
    work = await makeTempDir('cfg-');
    xdg = join(work, 'xdg');
    await mkdir(join(xdg, 'stargz-get'), { recursive: true });
  });
  after(async () => {
    await reg?.stop();
    if (work) await removeDir(work);
  });
  const env = { get XDG_CONFIG_HOME() { return xdg; } } as unknown as NodeJS.ProcessEnv;
  const writeDefault = (text: string) => writeFile(join(xdg, 'stargz-get', 'config.toml'), text);

  test('defaults come from $XDG_CONFIG_HOME/stargz-get/config.toml; flags beat them', async () => {
    const cacheDir = join(work, 'cache-from-file');
    await writeDefault(`platform = "linux/arm64"\ncache-dir = ${JSON.stringify(cacheDir)}\n`);
    let r = await runCli(['info', '--json', `${reg.host}/fixtures/multi:v1`], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).platform, 'linux/arm64');
    assert.ok((await stat(join(cacheDir))).isDirectory(), 'the cache went to the cache-dir of the file');
    r = await runCli(['info', '--json', `${reg.host}/fixtures/multi:v1`, '--platform', 'linux/amd64'], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).platform, 'linux/amd64', 'the flag beats the file');
  });

  test('[registry."127.0.0.1:PORT"] plain-http: no TLS handshake is tried', async () => {
    const sniff = await startSniffer(reg);
    try {
      const file = join(work, 'plain.toml');
      await writeFile(file, `cache-dir = ${JSON.stringify(join(work, 'c2'))}\n\n[registry."${sniff.host}"]\nplain-http = true\n`);
      const r = await runCli(['info', `${sniff.host}/fixtures/multi:v1`, '--config', file], { env });
      assert.equal(r.code, 0, r.stderr);
      assert.ok(sniff.firstBytes.length > 0);
      assert.ok(!sniff.firstBytes.includes(0x16), `a TLS ClientHello was sent: first bytes ${sniff.firstBytes.join(',')}`);
    } finally {
      await sniff.close();
    }
  });

  test('an unknown key is ERR_CONFIG naming file, line and key (exit 2)', async () => {
    const file = join(work, 'unknown.toml');
    await writeFile(file, `# comment\nconcurrency = 4\n\n[registry."r.example:5000"]\nplain-http = true\nmirorrs = ["http://m"]\n`);
    const r = await runCli(['info', `${reg.host}/fixtures/multi:v1`, '--config', file], { env });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`ERR_CONFIG: ${file.replace(/[.]/g, '\\.')}:6: registry\\."r\\.example:5000"\\.mirorrs: unknown key`));
  });

  test('a value of the wrong type is ERR_CONFIG naming file, line and key (exit 2)', async () => {
    const file = join(work, 'type.toml');
    await writeFile(file, `platform = "linux/amd64"\n\nconcurrency = "eight"\n`);
    const r = await runCli(['config', '--config', file], { env });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /ERR_CONFIG: .*type\.toml:3: concurrency: must be an integer, got string "eight"/);
  });

  test('stargz-get config prints the effective configuration, secrets redacted', async () => {
    const file = join(work, 'show.toml');
    await writeFile(file, `concurrency = 3\ncache-size = 2147483648\n\n[registry."a.example"]\nmirrors = ["https://me:hunter2-secret@mirror.example/"]\nauthfile = "/etc/a.json"\n`);
    const r = await runCli(['config', '--config', file], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^concurrency = 3$/m);
    assert.match(r.stdout, /^cache-size = "2G"$/m);
    assert.match(r.stdout, /^timeout = "30s"$/m, 'defaults are shown too');
    assert.match(r.stdout, /^\[registry\."a\.example"\]$/m);
    assert.match(r.stdout, /^authfile = "\/etc\/a\.json"$/m);
    assert.match(r.stdout, /me:<redacted>@mirror\.example/);
    assert.doesNotMatch(r.stdout + r.stderr, /hunter2/);
  });
});
