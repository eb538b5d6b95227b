// --json errors (issue 12 item 6): with --json on the command line, a failing command prints
// one line {"error":{"code","message"}} on stderr and exits with the status it has without
// --json. Each failure is run both ways through the real CLI against a real registry.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort, pushLayout, startRegistry, type TestRegistry } from '../helpers/registry.js';
import { startHostileServer, type HostileServer } from '../helpers/hostile-server.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';
import { runCli, type CliResult } from '../helpers/cli.js';
import { isolatedEnv } from '../helpers/cred-helper.js';

interface JsonError {
  error: { code: string; message: string; hint?: string };
}

/** stderr of a --json failure: exactly one line, one JSON document of the documented shape. */
function parseJsonError(r: CliResult): JsonError {
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  assert.equal(lines.length, 1, `one line on stderr, got:\n${r.stderr}`);
  const doc = JSON.parse(lines[0]!) as JsonError;
  assert.deepEqual(Object.keys(doc), ['error']);
  assert.equal(typeof doc.error.code, 'string');
  assert.equal(typeof doc.error.message, 'string');
  assert.ok(doc.error.message.length > 0);
  return doc;
}

let work: string;
let reg: TestRegistry;
let deadHost: string;
let n = 0;
before(async () => {
  work = await makeTempDir('cli-json-errors-');
  reg = await startRegistry({ mode: 'plain' });
  await pushLayout(reg, 'edge', 'fixtures/edge:v1');
  deadHost = `127.0.0.1:${await freePort()}`; // nothing listens there
});
after(async () => {
  await reg?.stop();
  if (work) await removeDir(work);
});

const cli = (args: string[], env?: NodeJS.ProcessEnv): Promise<CliResult> => runCli(args, { env: env ?? {} });
const cacheArgs = (): string[] => ['--plain-http', '--retries', '0', '--cache-dir', join(work, `cache-${n++}`)];

/**
 * The failure as text and as JSON: same exit status, the text line names the code, the JSON
 * document carries it, nothing on stdout either way.
 */
async function bothWays(name: string, args: (json: string[]) => string[], code: string, status: number): Promise<JsonError> {
  const text = await cli(args([]));
  assert.equal(text.code, status, `${name} without --json: ${text.stderr}`);
  assert.match(text.stderr, new RegExp(`^stargz-get: ${code}: `, 'm'));
  assert.throws(() => JSON.parse(text.stderr), 'without --json the error is text');
  assert.equal(text.stdout, '');
  const json = await cli(args(['--json']));
  assert.equal(json.code, status, `${name} with --json: ${json.stderr}`);
  assert.equal(json.stdout, '', 'nothing on stdout');
  const doc = parseJsonError(json);
  assert.equal(doc.error.code, code);
  // The same message either way: only the form differs.
  assert.ok(text.stderr.includes(doc.error.message), `${text.stderr}\n${doc.error.message}`);
  return doc;
}

describe('--json errors', () => {
  test('a malformed reference (ls): ERR_REFERENCE_INVALID, exit 2', async () => {
    const doc = await bothWays('ls', (j) => ['ls', ...j, 'Bad Ref!/etc'], 'ERR_REFERENCE_INVALID', 2);
    assert.match(doc.error.hint ?? '', /a reference looks like/);
  });

  test('a dead registry (info): ERR_REGISTRY_UNREACHABLE, exit 5', async () => {
    await bothWays('info', (j) => ['info', ...j, ...cacheArgs(), `${deadHost}/some/image:v1`], 'ERR_REGISTRY_UNREACHABLE', 5);
  });

  test('a missing path (ls): ERR_PATH_NOT_FOUND, exit 3', async () => {
    await bothWays('ls', (j) => ['ls', ...j, ...cacheArgs(), `${reg.host}/fixtures/edge:v1/no/such/path`], 'ERR_PATH_NOT_FOUND', 3);
  });

  test('a missing image (diff): ERR_REGISTRY_NOT_FOUND, exit 3, not the "differ" status 1', async () => {
    await bothWays('diff', (j) => ['diff', ...j, ...cacheArgs(), `${reg.host}/fixtures/edge:v1`, `${reg.host}/fixtures/nothing:v1`], 'ERR_REGISTRY_NOT_FOUND', 3);
  });

  test('usage errors from the option parser: an unknown option, a missing argument, a bad choice; exit 2, no help text', async () => {
    for (const args of [
      (j: string[]) => ['ls', ...j, '--no-such-option', `${reg.host}/fixtures/edge:v1`],
      (j: string[]) => ['info', ...j],
      (j: string[]) => ['ls', ...j, '--log-level', 'loud', `${reg.host}/fixtures/edge:v1`],
    ]) {
      const doc = await bothWays(args([]).join(' '), args, 'ERR_USAGE', 2);
      assert.doesNotMatch(doc.error.message, /^error:/);
    }
    // Our own usage checks too.
    await bothWays('sync', (j) => ['sync', ...j, ...cacheArgs(), '--concurrency', 'many', `${reg.host}/fixtures/edge:v1/etc`, join(work, 'dest')], 'ERR_USAGE', 2);
    // The text form keeps its help after a commander error; the JSON form is the document alone.
    const text = await cli(['ls', '--no-such-option', 'x:1']);
    assert.match(text.stderr, /Usage: stargz-get ls/);
  });

  test('mount -d --json: a failure in the background process is the foreground command\'s JSON error', async () => {
    const mnt = join(work, 'mnt');
    await mkdir(mnt, { recursive: true });
    await bothWays('mount -d', (j) => ['mount', '-d', ...j, ...cacheArgs(), '--log-file', join(work, `mount-${n}.log`), `${reg.host}/fixtures/nothing:v1`, mnt], 'ERR_REGISTRY_NOT_FOUND', 3);
  });

  test('--json after -- is an argument, not the option: the error stays text', async () => {
    const r = await cli(['ls', '--', 'Bad Ref!', '--json']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^stargz-get: ERR_[A-Z_]+: /m);
  });
});

describe('--json errors keep secrets out', () => {
  let basic: TestRegistry;
  let echo: HostileServer;
  const secret = 'Json-Err-Secret-4d5e6f';
  before(async () => {
    basic = await startRegistry({ mode: 'basic', password: secret });
    await pushLayout(basic, 'edge', 'fixtures/edge:v1');
    // Answers the manifest request with a 403 whose body carries the decoded credential.
    echo = await startHostileServer(basic.url, [{ match: { pathIncludes: '/manifests/' }, action: 'echo-auth' }]);
  });
  after(async () => {
    await echo?.close();
    await basic?.stop();
  });

  test('a registry echoing the credential: the JSON message is redacted as the text one is', async () => {
    const home = join(work, 'home-echo');
    await mkdir(home, { recursive: true });
    const env = { ...isolatedEnv(home, []), STARGZ_GET_USERNAME: 'tester', STARGZ_GET_PASSWORD: secret };
    const r = await cli(['ls', '--json', ...cacheArgs(), `${echo.host}/fixtures/edge:v1/etc`], env);
    assert.equal(r.code, 4, r.stderr);
    const doc = parseJsonError(r);
    assert.equal(doc.error.code, 'ERR_REGISTRY_AUTH');
    assert.match(doc.error.message, /access denied for .*<redacted>/, 'the echo reached the message, redacted');
    for (const form of [secret, Buffer.from(`tester:${secret}`).toString('base64'), encodeURIComponent(secret)]) {
      assert.ok(!r.stderr.includes(form) && !r.stdout.includes(form), `a form of the secret is in the output:\n${r.stderr}`);
    }
  });
});
