// Push auth against a token-auth registry: the token asked for names the scope each request
// needs (`repository:NAME:pull,push`, plus `pull` on a mount's source), so no request is
// refused and tried again; the ping is the only 401.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startRegistry, pushLayout, credsOf, type TestRegistry } from '../helpers/registry.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { runCli } from '../helpers/cli.js';

interface Access {
  type: string;
  name: string;
  actions: string[];
}

/** The access claims of the tokens the token server issued. */
function accessOf(tokens: string[]): Access[][] {
  return tokens.map((t) => (JSON.parse(Buffer.from(t.split('.')[1]!, 'base64url').toString()) as { access: Access[] }).access);
}

describe('copy to a token-auth registry', () => {
  let src: TestRegistry;
  let dst: TestRegistry;
  let proxy: FaultProxy;

  before(async () => {
    [src, dst] = await Promise.all([startRegistry({ mode: 'plain' }), startRegistry({ mode: 'token' })]);
    proxy = await startFaultProxy(dst);
    await pushLayout(src, 'edge', 'fixtures/edge:v1');
  });
  after(async () => {
    await proxy?.close();
    await Promise.all([src?.stop(), dst?.stop()]);
  });

  const refusedAfterPing = (): string[] => proxy.stats.log.filter((e) => e.status === 401 && e.path !== '/v2/').map((e) => `${e.method} ${e.path}`);

  test('an upload asks for pull,push on the target repository and is never refused', async () => {
    proxy.resetStats();
    const before = dst.tokenServer!.tokens.length;
    const r = await runCli(['copy', '--dest-creds', credsOf(dst)!, `${src.host}/fixtures/edge:v1`, `${proxy.host}/tok/edge:v1`]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(refusedAfterPing(), []);
    const access = accessOf(dst.tokenServer!.tokens.slice(before));
    assert.ok(access.length > 0);
    assert.ok(access.every((a) => a.some((x) => x.name === 'tok/edge' && x.actions.includes('push') && x.actions.includes('pull'))), JSON.stringify(access));
  });

  test('a mount asks for pull on its source repository too', async () => {
    proxy.resetStats();
    const before = dst.tokenServer!.tokens.length;
    const creds = credsOf(dst)!;
    const r = await runCli(['copy', '--json', '--src-creds', creds, '--dest-creds', creds, `${proxy.host}/tok/edge:v1`, `${proxy.host}/tok/mounted:v1`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as { blobs: { mounted: number } }).blobs.mounted, 4);
    assert.deepEqual(refusedAfterPing(), []);
    const access = accessOf(dst.tokenServer!.tokens.slice(before));
    assert.ok(
      access.some((a) => a.some((x) => x.name === 'tok/mounted' && x.actions.includes('push')) && a.some((x) => x.name === 'tok/edge' && x.actions.includes('pull'))),
      JSON.stringify(access),
    );
  });

  test('without credentials for the target: ERR_REGISTRY_AUTH, exit 4', async () => {
    const r = await runCli(['copy', `${src.host}/fixtures/edge:v1`, `${proxy.host}/tok/anon:v1`], { env: { HOME: '/nonexistent', DOCKER_CONFIG: '/nonexistent', REGISTRY_AUTH_FILE: '/nonexistent/auth.json', XDG_RUNTIME_DIR: '/nonexistent' } });
    assert.equal(r.code, 4, r.stderr);
    assert.match(r.stderr, /ERR_REGISTRY_AUTH/);
  });
});
