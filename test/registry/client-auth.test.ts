// RegistryClient against real registries with Basic auth and with Bearer tokens.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { RegistryClient, type RegistryClientOptions } from '../../src/registry/client.js';
import { parseReference } from '../../src/reference/reference.js';
import { ErrorCodes, isStargzError, type ErrorCode } from '../../src/errors.js';
import { pushLayout, startRegistry, type TestRegistry } from '../helpers/registry.js';
import { startFaultProxy } from '../helpers/fault-proxy.js';

const EDGE_MANIFEST = 'sha256:f8db2b250d97211e124f909aae96c22e87944dddbcac6702e9b3373399c644b1';
const BIG_LAYER = 'sha256:c5e4a3cc121f3d03e1c566372a11782f97ac049ff3b0518ca8a3faf8fd9d73f8';
const FAST: RegistryClientOptions = { retryBaseDelayMs: 5, plainHttp: true };

const hasCode = (code: ErrorCode) => (err: unknown) => isStargzError(err, code);

/** Runs fn with a fresh client and closes it. */
async function withClient<T>(host: string, opts: RegistryClientOptions, fn: (c: RegistryClient) => Promise<T>): Promise<T> {
  const c = new RegistryClient(host, { ...FAST, ...opts });
  try {
    return await fn(c);
  } finally {
    await c.close();
  }
}

function creds(reg: TestRegistry, password = reg.password!): RegistryClientOptions {
  return { credentials: { username: reg.username!, password } };
}

describe('Basic auth registry', () => {
  let reg: TestRegistry;
  before(async () => {
    reg = await startRegistry({ mode: 'basic' });
    await pushLayout(reg, 'edge', 'fixtures/edge:v1');
  });
  after(() => reg?.stop());

  test('right credentials', async () => {
    await withClient(reg.host, creds(reg), async (c) => {
      const r = await c.resolveImage(parseReference(`${reg.host}/fixtures/edge:v1`));
      assert.equal(r.manifestDigest, EDGE_MANIFEST);
      assert.equal((await c.readBlobRange('fixtures/edge', BIG_LAYER, 1000, 2000)).length, 2000);
    });
  });

  test('wrong password is REGISTRY_AUTH, and the password is not in the message', async () => {
    await withClient(reg.host, creds(reg, 'wrong-Pa55word'), async (c) => {
      await assert.rejects(c.getManifest('fixtures/edge', 'v1'), (err: unknown) => {
        assert.ok(isStargzError(err, ErrorCodes.REGISTRY_AUTH));
        assert.doesNotMatch(err.message, /wrong-Pa55word/);
        return true;
      });
    });
  });

  test('no credentials is REGISTRY_AUTH', async () => {
    await withClient(reg.host, {}, async (c) => {
      await assert.rejects(c.getManifest('fixtures/edge', 'v1'), hasCode(ErrorCodes.REGISTRY_AUTH));
      await assert.rejects(c.readBlobRange('fixtures/edge', BIG_LAYER, 0, 10), hasCode(ErrorCodes.REGISTRY_AUTH));
    });
  });
});

describe('Token auth registry, anonymous pull allowed', () => {
  let reg: TestRegistry;
  before(async () => {
    reg = await startRegistry({ mode: 'token', anonymousPull: true });
    await pushLayout(reg, 'edge', 'fixtures/edge:v1');
  });
  after(() => reg?.stop());

  test('anonymous pull', async () => {
    await withClient(reg.host, {}, async (c) => {
      const r = await c.resolveImage(parseReference(`${reg.host}/fixtures/edge:v1`));
      assert.equal(r.manifestDigest, EDGE_MANIFEST);
    });
  });

  test('with credentials', async () => {
    await withClient(reg.host, creds(reg), async (c) => {
      const r = await c.resolveImage(parseReference(`${reg.host}/fixtures/edge:v1`));
      assert.equal(r.manifestDigest, EDGE_MANIFEST);
    });
  });

  test('wrong credentials are refused even though anonymous pull would work', async () => {
    await withClient(reg.host, creds(reg, 'nope'), async (c) => {
      await assert.rejects(c.getManifest('fixtures/edge', 'v1'), hasCode(ErrorCodes.REGISTRY_AUTH));
    });
  });

  test('one token serves many concurrent requests', async () => {
    await withClient(reg.host, creds(reg), async (c) => {
      const before = reg.tokenServer!.issued;
      const reads = Array.from({ length: 24 }, (_, i) => c.readBlobRange('fixtures/edge', BIG_LAYER, i * 1000, 1000));
      const results = await Promise.all([...reads, c.getManifest('fixtures/edge', 'v1')]);
      assert.equal(results.length, 25);
      assert.equal(reg.tokenServer!.issued - before, 1);
      // ...and is reused afterwards while it is valid.
      await c.readBlobRange('fixtures/edge', BIG_LAYER, 0, 10);
      assert.equal(reg.tokenServer!.issued - before, 1);
    });
  });

  test('an expired token is renewed', async () => {
    const ts = reg.tokenServer as { issued: number; ttlSeconds?: number };
    const saved = ts.ttlSeconds;
    ts.ttlSeconds = 1; // the registry allows 60 s of leeway, so the JWT stays acceptable
    try {
      await withClient(reg.host, creds(reg), async (c) => {
        const before = ts.issued;
        await c.readBlobRange('fixtures/edge', BIG_LAYER, 0, 10);
        await c.readBlobRange('fixtures/edge', BIG_LAYER, 10, 10);
        assert.equal(ts.issued - before, 1);
        await new Promise((r) => setTimeout(r, 1000));
        await c.readBlobRange('fixtures/edge', BIG_LAYER, 20, 10);
        assert.equal(ts.issued - before, 2);
      });
    } finally {
      ts.ttlSeconds = saved;
    }
  });

  test('a 401 with a cached token fetches a fresh token once', async () => {
    const proxy = await startFaultProxy(reg);
    try {
      await withClient(proxy.host, creds(reg), async (c) => {
        await c.readBlobRange('fixtures/edge', BIG_LAYER, 0, 10);
        const before = reg.tokenServer!.issued;
        proxy.rules.push({ match: { pathIncludes: '/blobs/' }, action: 'status', status: 401, times: 1 });
        const got = await c.readBlobRange('fixtures/edge', BIG_LAYER, 100, 10);
        assert.equal(got.length, 10);
        assert.equal(reg.tokenServer!.issued - before, 1);
        // A registry that keeps refusing is REGISTRY_AUTH after that one refresh, not a loop.
        proxy.rules.push({ match: { pathIncludes: '/blobs/' }, action: 'status', status: 401 });
        await assert.rejects(c.readBlobRange('fixtures/edge', BIG_LAYER, 100, 10), hasCode(ErrorCodes.REGISTRY_AUTH));
        assert.equal(reg.tokenServer!.issued - before, 2);
      });
    } finally {
      await proxy.close();
    }
  });
});

describe('Token auth registry, anonymous pull refused', () => {
  let reg: TestRegistry;
  before(async () => {
    reg = await startRegistry({ mode: 'token', anonymousPull: false });
    await pushLayout(reg, 'edge', 'fixtures/edge:v1');
  });
  after(() => reg?.stop());

  test('anonymous is REGISTRY_AUTH', async () => {
    await withClient(reg.host, {}, async (c) => {
      await assert.rejects(c.resolveImage(parseReference(`${reg.host}/fixtures/edge:v1`)), hasCode(ErrorCodes.REGISTRY_AUTH));
    });
  });

  test('wrong password is REGISTRY_AUTH', async () => {
    await withClient(reg.host, creds(reg, 'bad'), async (c) => {
      await assert.rejects(c.getManifest('fixtures/edge', 'v1'), hasCode(ErrorCodes.REGISTRY_AUTH));
    });
  });

  test('credentials work, and the tag of another repository is REGISTRY_NOT_FOUND', async () => {
    await withClient(reg.host, creds(reg), async (c) => {
      const r = await c.resolveImage(parseReference(`${reg.host}/fixtures/edge:v1`));
      assert.equal(r.manifestDigest, EDGE_MANIFEST);
      await assert.rejects(c.getManifest('fixtures/other', 'v1'), hasCode(ErrorCodes.REGISTRY_NOT_FOUND));
    });
  });
});
