// What the CLI prints when a server or an image is hostile (issue 8): a registry that echoes
// the credential back gets it redacted everywhere, names with control characters cannot drive
// the terminal, and a huge index gives a short error line.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import * as tar from 'tar-stream';
import { startRegistry, pushLayout, type TestRegistry } from '../helpers/registry.js';
import { startHostileServer, type HostileRule, type HostileServer } from '../helpers/hostile-server.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';
import { cliPath } from '../helpers/paths.js';
import { runCli } from '../helpers/cli.js';

const PASSWORD = 'Zq7-hostile-pass';
const ESC = '\x1b';
const RED_NAME = `red${ESC}[31mX`; // colours the terminal when printed raw
const TITLE_LINK = `title${ESC}]0;pwned${ESC}\\`; // sets the terminal title
const MISSING = `missing${ESC}[2J`; // clears the screen

const sha256 = (b: Buffer): string => 'sha256:' + createHash('sha256').update(b).digest('hex');

/** An OCI layout whose one plain tar+gzip layer has names with escape sequences and a dangling hardlink. */
async function writeEvilLayout(dir: string): Promise<void> {
  const pack = tar.pack();
  const parts: Buffer[] = [];
  pack.on('data', (c: unknown) => parts.push(c as Buffer));
  const ended = new Promise<void>((r) => pack.on('end', () => r()));
  pack.entry({ name: 'evil/', type: 'directory', mode: 0o755 });
  pack.entry({ name: `evil/${RED_NAME}`, mode: 0o644 }, 'x\n');
  pack.entry({ name: 'evil/plain', mode: 0o644 }, 'y\n');
  pack.entry({ name: `evil/${TITLE_LINK}`, type: 'link', linkname: `evil/${MISSING}` });
  pack.finalize();
  await ended;
  const tarBytes = Buffer.concat(parts);
  const layer = gzipSync(tarBytes);
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256(tarBytes)] } }));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha256(layer), size: layer.length }],
    }),
  );
  const blobs = join(dir, 'blobs', 'sha256');
  await mkdir(blobs, { recursive: true });
  for (const b of [layer, config, manifest]) await writeFile(join(blobs, sha256(b).slice(7)), b);
  await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  await writeFile(
    join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha256(manifest), size: manifest.length, annotations: { 'org.opencontainers.image.ref.name': 'v1' } }],
    }),
  );
}

/** Runs the CLI with stdout on a pseudo-terminal (util-linux `script`), as a user at a terminal does. */
function onTerminal(args: string[]): Promise<{ code: number | null; stdout: string }> {
  const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
  const cmd = [process.execPath, cliPath, ...args].map(q).join(' ');
  return new Promise((resolve, reject) => {
    execFile('script', ['-qec', cmd, '/dev/null'], { env: { ...process.env, TERM: 'dumb' }, timeout: 30_000 }, (err, stdout) => {
      if (err && typeof (err as { code?: unknown }).code !== 'number') return reject(err);
      resolve({ code: err ? (err as { code: number }).code : 0, stdout: String(stdout) });
    });
  });
}

describe('messages under hostile servers and images', () => {
  let plain: TestRegistry;
  let basic: TestRegistry;
  let work: string;
  const servers: HostileServer[] = [];
  let n = 0;
  const fresh = (name: string): string => join(work, `${name}-${n++}`);
  const hostile = async (reg: TestRegistry, rules: HostileRule[]): Promise<HostileServer> => {
    const s = await startHostileServer(reg.url, rules);
    servers.push(s);
    return s;
  };

  before(async () => {
    plain = await startRegistry({ mode: 'plain' });
    basic = await startRegistry({ mode: 'basic', password: PASSWORD });
    work = await makeTempDir('hostile-msg-');
    await pushLayout(basic, 'edge', 'fixtures/edge:v1');
    const layout = join(work, 'evil-layout');
    await writeEvilLayout(layout);
    await pushLayout(plain, layout, 'evil/names:v1');
  });
  after(async () => {
    for (const s of servers) await s.close();
    await plain?.stop();
    await basic?.stop();
    if (work) await removeDir(work);
  });

  const secretForms = (user: string): string[] => [PASSWORD, Buffer.from(`${user}:${PASSWORD}`).toString('base64'), encodeURIComponent(PASSWORD)];

  test('a registry that echoes the decoded credential in its error body: the credential is redacted', async () => {
    const s = await hostile(basic, [{ match: { pathIncludes: '/manifests/' }, action: 'echo-auth' }]);
    const r = await runCli(['sync', '--plain-http', '--retries', '0', '--cache-dir', fresh('cache'), '--credential', `${basic.username}:${PASSWORD}`, `${s.host}/fixtures/edge:v1/etc`, fresh('dest')]);
    assert.equal(r.code, 4, r.stderr);
    assert.match(r.stderr, /ERR_REGISTRY_AUTH: .*access denied for .*<redacted>/);
    for (const form of secretForms(basic.username!)) assert.ok(!r.stderr.includes(form), `stderr shows ${form}: ${r.stderr}`);
  });

  test('a detached mount against that registry: neither the CLI nor the mount log shows the credential', async () => {
    const s = await hostile(basic, [{ match: { pathIncludes: '/manifests/' }, action: 'echo-auth' }]);
    const mnt = fresh('mnt');
    await mkdir(mnt);
    const log = fresh('mount.log');
    const r = await runCli(['mount', '-d', '--plain-http', '--retries', '0', '--cache-dir', fresh('cache'), '--log-file', log, '--credential', `${basic.username}:${PASSWORD}`, `${s.host}/fixtures/edge:v1`, mnt]);
    assert.equal(r.code, 4, r.stderr);
    const logText = existsSync(log) ? await readFile(log, 'utf8') : '';
    assert.match(logText, /ERR_REGISTRY_AUTH/);
    for (const form of secretForms(basic.username!)) {
      assert.ok(!r.stderr.includes(form), `stderr shows ${form}: ${r.stderr}`);
      assert.ok(!logText.includes(form), `the mount log shows ${form}: ${logText}`);
    }
  });

  test('an index of 10,000 manifests with no match: a short error line with a few platforms and a count', async () => {
    const s = await hostile(plain, [{ match: { pathIncludes: '/manifests/' }, action: 'big-index', count: 10_000 }]);
    const r = await runCli(['info', '--plain-http', '--cache-dir', fresh('cache'), `${s.host}/hostile/big:v1`]);
    assert.equal(r.code, 3, r.stderr.slice(0, 500));
    assert.match(r.stderr, /ERR_PLATFORM_NOT_FOUND: .*hostile-arch-0\/v0, .* and 9992 more \(10000 platforms\)/);
    assert.ok(r.stderr.length < 1000, `the error is ${r.stderr.length} bytes long`);
  });

  test('ls on a terminal quotes control characters as GNU ls does; piped and --json names stay exact', async () => {
    const ref = `${plain.host}/evil/names:v1/evil`;
    const cache = fresh('cache');
    const tty = await onTerminal(['ls', '--plain-http', '--cache-dir', cache, ref]);
    assert.equal(tty.code, 0, tty.stdout);
    assert.ok(!tty.stdout.includes(ESC), `raw ESC on the terminal: ${JSON.stringify(tty.stdout)}`);
    assert.match(tty.stdout, /'red'\$'\\033''\[31mX'/);
    assert.match(tty.stdout, /^plain\r?$/m);

    const piped = await runCli(['ls', '--plain-http', '--cache-dir', cache, ref]);
    assert.equal(piped.code, 0, piped.stderr);
    assert.ok(piped.stdout.split('\n').includes(RED_NAME), 'piped names are exact');
    const json = await runCli(['ls', '--json', '--plain-http', '--cache-dir', cache, ref]);
    const paths = (JSON.parse(json.stdout) as Array<{ path: string }>).map((e) => e.path);
    assert.ok(paths.includes(`/evil/${RED_NAME}`), 'JSON names are exact');
  });

  test('sync warnings and errors that name image paths escape their control characters', async () => {
    const dest = fresh('dest');
    const r = await runCli(['sync', '--plain-http', '--cache-dir', fresh('cache'), `${plain.host}/evil/names:v1/evil`, dest]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!r.stderr.includes(ESC), `raw ESC in stderr: ${JSON.stringify(r.stderr)}`);
    assert.ok(r.stderr.includes('title\\x1b]0;pwned\\x1b\\'), `the dangling-hardlink warning names the entry, escaped: ${r.stderr}`);
    assert.equal(await readFile(join(dest, RED_NAME), 'utf8'), 'x\n', 'the file itself keeps its exact name');
    const missing = await runCli(['ls', '--plain-http', '--cache-dir', fresh('cache'), `${plain.host}/evil/names:v1/evil/${MISSING}`]);
    assert.equal(missing.code, 3, missing.stderr);
    assert.ok(!missing.stderr.includes(ESC), `raw ESC in the error: ${JSON.stringify(missing.stderr)}`);
  });
});
