// -v / -vv / --log-level (issue 12 item 5): detail on stderr through the real CLI against real
// registries — every request with its status, bytes and time at info, every chunk lookup at
// debug, retries with their reason and delay, notices (warnings) by default, nothing but
// errors at --log-level error — and never a password or a token, whatever the level.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { freePort, pushLayout, startRegistry, type TestRegistry } from '../helpers/registry.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';
import { runCli, type CliResult } from '../helpers/cli.js';
import { isolatedEnv } from '../helpers/cred-helper.js';

/** `info: GET HOST PATH [bytes=a-b] STATUS N bytes M ms`, as transport.ts writes it. */
const REQUEST_LINE = /^stargz-get: info: GET 127\.0\.0\.1:\d+ (\/\S*)(?: bytes=\d+-\d+)? (\d{3}) (\d+) bytes (\d+) ms/;

function requests(stderr: string): Array<{ path: string; status: number; bytes: number }> {
  const out: Array<{ path: string; status: number; bytes: number }> = [];
  for (const line of stderr.split('\n')) {
    const m = REQUEST_LINE.exec(line);
    if (m) out.push({ path: m[1]!, status: Number(m[2]), bytes: Number(m[3]) });
  }
  return out;
}

/** Every form a secret takes on the wire: as is, URL-encoded, base64, and user:secret in base64 (Basic). */
function assertNoSecret(text: string, user: string, secrets: string[]): void {
  for (const s of secrets) {
    for (const form of [s, encodeURIComponent(s), Buffer.from(s).toString('base64'), Buffer.from(`${user}:${s}`).toString('base64')]) {
      assert.ok(!text.includes(form), `a secret (${form.slice(0, 6)}…) is in the output:\n${text}`);
    }
  }
}

let work: string;
let n = 0;
before(async () => {
  work = await makeTempDir('cli-log-level-');
});
after(async () => {
  if (work) await removeDir(work);
});

const cache = (): string => join(work, `cache-${n++}`);
const cli = (args: string[], env: NodeJS.ProcessEnv = {}, input?: string): Promise<CliResult> => runCli(args, { env, ...(input !== undefined ? { input } : {}) });

describe('-v and -vv against a token-auth registry', () => {
  let reg: TestRegistry;
  let home: string;
  before(async () => {
    reg = await startRegistry({ mode: 'token', password: 'Log-Token-Pw-7a8b9c' });
    await pushLayout(reg, 'edge', 'fixtures/edge:v1');
    home = join(work, 'home-token');
  });
  after(() => reg?.stop());

  const cat = (c: string, extra: string[]): Promise<CliResult> =>
    cli(['cat', '--plain-http', '--cache-dir', c, '--credential', `${reg.username}:${reg.password}`, ...extra, `${reg.host}/fixtures/edge:v1/etc/hostname`], isolatedEnv(home));

  test('-vv: each request (token, manifest, TOCs, chunks) and each chunk lookup; no password or token anywhere', async () => {
    const c = cache();
    const first = await cat(c, ['-vv']);
    assert.equal(first.code, 0, first.stderr);
    assert.equal(first.stdout, 'stargz-edge\n');
    const reqs = requests(first.stderr);
    assert.ok(reqs.some((r) => r.path === '/v2/fixtures/edge/manifests/v1' && r.status === 401), 'the manifest, unpinged, and its challenge');
    assert.ok(reqs.some((r) => r.path === '/token' && r.status === 200 && r.bytes > 0), 'the token fetch');
    assert.ok(reqs.some((r) => r.path === '/v2/fixtures/edge/manifests/v1' && r.status === 200 && r.bytes > 0), 'the manifest');
    const ranges = reqs.filter((r) => r.path.includes('/blobs/sha256:') && r.status === 206);
    assert.ok(ranges.length >= 4, `three TOCs and the chunk, by range: ${first.stderr}`);
    assert.match(first.stderr, /^stargz-get: debug: chunk sha256:[0-9a-f]{64}: not cached$/m);

    // The second run finds the chunk on disk and fetches no blob range.
    const second = await cat(c, ['-vv']);
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stderr, /^stargz-get: debug: chunk sha256:[0-9a-f]{64}: disk cache hit$/m);
    assert.ok(!requests(second.stderr).some((r) => r.path.includes('/blobs/')), 'TOCs and the chunk come from the cache');

    const tokens = reg.tokenServer!.tokens;
    assert.ok(tokens.length >= 2, 'tokens were issued, so there was something to leak');
    assertNoSecret(first.stderr + first.stdout + second.stderr, reg.username!, [reg.password!, ...tokens]);
  });

  test('default: no detail at all; -v: requests but no chunk lookups', async () => {
    const quiet = await cat(cache(), []);
    assert.equal(quiet.code, 0, quiet.stderr);
    assert.equal(quiet.stderr, '', 'the default prints notices only, and there are none here');
    const v = await cat(cache(), ['-v']);
    assert.equal(v.code, 0, v.stderr);
    assert.ok(requests(v.stderr).length >= 5, v.stderr);
    assert.doesNotMatch(v.stderr, /debug:/);
    const named = await cat(cache(), ['--log-level', 'debug']);
    assert.match(named.stderr, /debug: chunk /, '--log-level debug is -vv');
    const both = await cat(cache(), ['-v', '--log-level', 'info']);
    assert.equal(both.code, 2);
    assert.match(both.stderr, /ERR_USAGE: -v and --log-level contradict/);
  });
});

test('a Basic-auth registry at -vv: the password is sent and never printed', async () => {
  const secret = 'Log-Basic-Pw-1d2e3f';
  const reg = await startRegistry({ mode: 'basic', password: secret });
  try {
    await pushLayout(reg, 'edge', 'fixtures/edge:v1');
    const r = await cli(['ls', '-vv', '--plain-http', '--cache-dir', cache(), '-u', reg.username!, '--password-stdin', `${reg.host}/fixtures/edge:v1/etc`], isolatedEnv(join(work, 'home-basic')), `${secret}\n`);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(requests(r.stderr).some((x) => x.path === '/v2/fixtures/edge/manifests/v1' && x.status === 200), r.stderr);
    assertNoSecret(r.stderr + r.stdout, reg.username!, [secret]);
  } finally {
    await reg.stop();
  }
});

describe('retries, mirrors and notices by level', () => {
  let reg: TestRegistry;
  let proxy: FaultProxy;
  before(async () => {
    reg = await startRegistry({ mode: 'plain' });
    await pushLayout(reg, 'edge', 'fixtures/edge:v1');
    await pushLayout(reg, 'mixed', 'fixtures/mixed:v1');
    proxy = await startFaultProxy(reg);
  });
  after(async () => {
    await proxy?.close();
    await reg?.stop();
  });

  test('-v: a retry with its reason and delay; the default does not show it', async () => {
    for (const [flags, shown] of [[['-v'], true], [[], false]] as const) {
      proxy.rules.splice(0, proxy.rules.length, { match: { pathIncludes: '/manifests/' }, action: 'status', status: 503, times: 1 });
      const r = await cli(['ls', ...flags, '--plain-http', '--cache-dir', cache(), `${proxy.host}/fixtures/edge:v1/etc`]);
      assert.equal(r.code, 0, r.stderr);
      const retry = /^stargz-get: info: retry 1 of 5 in \d+ ms after ERR_REGISTRY_SERVER: .*503/m;
      if (shown) {
        assert.match(r.stderr, retry);
        assert.ok(requests(r.stderr).some((x) => x.path.endsWith('/manifests/v1') && x.status === 503), 'the failed request itself');
      } else assert.equal(r.stderr, '');
    }
  });

  test('a mirror passed over is a warning: shown by default and at -v, not at --log-level error', async () => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    for (const [flags, shown] of [[[], true], [['-v'], true], [['--log-level', 'error'], false]] as const) {
      const r = await cli(['ls', ...flags, '--plain-http', '--retries', '0', '--cache-dir', cache(), '--mirror', dead, `${reg.host}/fixtures/edge:v1/etc`]);
      assert.equal(r.code, 0, r.stderr);
      const line = /^stargz-get: http:\/\/127\.0\.0\.1:\d+: ERR_REGISTRY_UNREACHABLE: .*passing over it from now on/m;
      if (shown) assert.match(r.stderr, line);
      else assert.equal(r.stderr, '', '--log-level error: nothing but errors');
    }
  });

  test('the notice of a plain layer read whole is a warning too', async () => {
    const plain = await cli(['ls', '--plain-http', '--cache-dir', cache(), `${reg.host}/fixtures/mixed:v1/etc`]);
    assert.equal(plain.code, 0, plain.stderr);
    assert.match(plain.stderr, /fetching it whole to verify it/);
    const silent = await cli(['ls', '--log-level', 'error', '--plain-http', '--cache-dir', cache(), `${reg.host}/fixtures/mixed:v1/etc`]);
    assert.equal(silent.code, 0, silent.stderr);
    assert.equal(silent.stderr, '');
    assert.equal(silent.stdout, plain.stdout);
  });

  test('errors always print, whatever the level', async () => {
    const r = await cli(['ls', '--log-level', 'error', '--plain-http', '--cache-dir', cache(), `${reg.host}/fixtures/edge:v1/no/such`]);
    assert.equal(r.code, 3);
    assert.match(r.stderr, /^stargz-get: ERR_PATH_NOT_FOUND: /);
  });
});

describe('log-level in the configuration file', () => {
  let reg: TestRegistry;
  before(async () => {
    reg = await startRegistry({ mode: 'plain' });
    await pushLayout(reg, 'edge', 'fixtures/edge:v1');
  });
  after(() => reg?.stop());

  const ls = async (level: string, flags: string[]): Promise<CliResult> => {
    const file = join(work, `config-${n++}.toml`);
    await import('node:fs/promises').then((fs) => fs.writeFile(file, `log-level = ${JSON.stringify(level)}\n`));
    return cli(['ls', '--config', file, ...flags, '--plain-http', '--cache-dir', cache(), `${reg.host}/fixtures/edge:v1/etc`]);
  };

  test('sets the level when no flag does; -v and --log-level win over it', async () => {
    const fromFile = await ls('info', []);
    assert.equal(fromFile.code, 0, fromFile.stderr);
    assert.ok(requests(fromFile.stderr).some((r) => r.path === '/v2/fixtures/edge/manifests/v1'), `the file's info level shows requests: ${fromFile.stderr}`);
    const flagWins = await ls('info', ['--log-level', 'warn']);
    assert.equal(flagWins.code, 0, flagWins.stderr);
    assert.equal(flagWins.stderr, '', '--log-level beats the file');
    const vWins = await ls('error', ['-v']);
    assert.ok(requests(vWins.stderr).length > 0, `-v beats the file: ${vWins.stderr}`);
  });

  test('an unknown level is a configuration error naming the key and the choices', async () => {
    const r = await ls('loud', []);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /ERR_CONFIG: .*log-level.*must be one of error, warn, info, debug, got string "loud"/);
  });
});
