// hosts.toml as containerd documents it (docs/hosts.md), and --mirror: the ordered host list.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseHostsToml, registryHosts } from '../../src/registry/hosts.js';
import { isStargzError } from '../../src/errors.js';
import { hostTlsSettings } from '../../src/registry/client.js';

test('hosts.toml: [host] entries in file order, then server; capabilities, TLS, headers, path', () => {
  const hosts = parseHostsToml(
    `server = "https://registry-1.docker.io"
[host."https://mirror-b.example"]
  capabilities = ["pull"]
  ca = "/etc/certs/b.pem"
  client = [["/c.cert", "/c.key"]]
  skip_verify = true
  [host."https://mirror-b.example".header]
    x-custom = ["v1", "v2"]
[host."http://mirror-a.example:5000/cache"]
  override_path = true
`,
    'hosts.toml',
    'docker.io',
  );
  assert.deepEqual(hosts.map((h) => [h.origin, h.path, h.capabilities.resolve, h.isOrigin]), [
    ['https://mirror-b.example', '/v2', false, false],
    ['http://mirror-a.example:5000', '/cache', true, false],
    ['https://registry-1.docker.io', '/v2', true, true],
  ]);
  assert.deepEqual(hosts[0]!.tls, { caFiles: ['/etc/certs/b.pem'], certFile: '/c.cert', keyFile: '/c.key', insecureSkipVerify: true });
  assert.deepEqual(hosts[0]!.headers, { 'x-custom': ['v1', 'v2'] });
});

test('hosts.toml without server: the registry itself, found the usual way, last', () => {
  const hosts = parseHostsToml(`[host."mirror.example"]\n`, 'f', '127.0.0.1:5000');
  assert.equal(hosts[0]!.origin, 'https://mirror.example'); // no scheme: HTTPS, as containerd
  assert.equal(hosts[1]!.origin, undefined);
  assert.equal(hosts[1]!.isOrigin, true);
});

test('an unknown hosts.toml key is ERR_CONFIG with file:line and key', () => {
  assert.throws(
    () => parseHostsToml(`server = "https://r"\n\n[host."https://m"]\n  capabilitys = ["pull"]\n`, '/d/r/hosts.toml', 'r'),
    (e: unknown) => isStargzError(e, 'ERR_CONFIG') && /\/d\/r\/hosts\.toml:4: host\."https:\/\/m"\.capabilitys: unknown key/.test(e.message),
  );
});

test('nothing configured: the registry alone; --mirror URLs come first', () => {
  assert.deepEqual(registryHosts('r.example').map((h) => h.label), ['r.example']);
  const hosts = registryHosts('r.example', { mirrors: ['http://u:pw@m1.example', 'm2.example'] });
  assert.deepEqual(hosts.map((h) => h.label), ['http://m1.example', 'm2.example', 'r.example']);
});

test('each host its own TLS: a mirror its hosts.toml ca/client/skip_verify, the registry --cert-dir joined with the top-level ones', () => {
  const hosts = parseHostsToml(
    `ca = "/up/ca.pem"
[host."https://mirror.example"]
  ca = "/m/ca.pem"
  client = ["/m/c.cert", "/m/c.key"]
  skip_verify = true
[host."https://bare.example"]
`,
    'hosts.toml',
    'registry.example',
  );
  const given = { caFiles: ['/flag/ca.crt'], certFile: '/flag/c.cert', keyFile: '/flag/c.key' };
  const [mirror, bare, origin] = hosts.map((h) => hostTlsSettings(h, given));
  // The mirror never gets the registry's --cert-dir (nor its client certificate).
  assert.deepEqual(mirror, { caFiles: ['/m/ca.pem'], certFile: '/m/c.cert', keyFile: '/m/c.key', insecureSkipVerify: true });
  // Nothing of its own: its certs.d directory is looked up.
  assert.equal(bare, undefined);
  assert.deepEqual(origin, { caFiles: ['/flag/ca.crt', '/up/ca.pem'], certFile: '/flag/c.cert', keyFile: '/flag/c.key' });
  assert.equal(hostTlsSettings(registryHosts('registry.example')[0]!, undefined), undefined);
});
