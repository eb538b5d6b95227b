// Which proxy a URL goes through, as curl reads HTTPS_PROXY, HTTP_PROXY and NO_PROXY.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { redact } from '../../src/errors.js';
import { bypassesProxy, proxyFor, proxyFromEnv } from '../../src/registry/proxy.js';

const u = (s: string) => new URL(s);

describe('proxy from the environment', () => {
  test('https targets use HTTPS_PROXY only (no fallback to HTTP_PROXY, as curl and Go); http targets HTTP_PROXY', () => {
    const onlyHttp = proxyFromEnv({ HTTP_PROXY: 'http://p:1' });
    assert.equal(proxyFor(u('https://r.example/v2/'), onlyHttp), undefined);
    assert.equal(proxyFor(u('http://r.example/v2/'), onlyHttp)?.display, 'http://p:1');
    const both = proxyFromEnv({ https_proxy: 'p2:2', HTTPS_PROXY: 'http://ignored:3' });
    assert.equal(proxyFor(u('https://r.example/'), both)?.display, 'http://p2:2', 'lower case wins; no scheme means http://');
  });

  test('credentials in a proxy URL become secrets and never show in display', () => {
    const s = proxyFromEnv({ HTTPS_PROXY: 'http://bob:pr%40xy-pw@127.0.0.1:3128' });
    assert.equal(proxyFor(u('https://r.example/'), s)?.display, 'http://127.0.0.1:3128');
    assert.equal(redact('x pr@xy-pw y'), 'x <redacted> y');
    assert.equal(redact(Buffer.from('bob:pr@xy-pw').toString('base64')), '<redacted>');
  });

  test('NO_PROXY: *, names and their subdomains, leading dots, ports, IPs and CIDR; loopback not implicit', () => {
    const cases: Array<[string, string, boolean]> = [
      ['https://r.example/', '*', true],
      ['https://r.example/', 'r.example', true],
      ['https://a.r.example/', 'r.example', true],
      ['https://a.r.example/', '.r.example', true],
      ['https://r.example/', '.r.example', true],
      ['https://a.r.example/', '*.r.example', true],
      ['https://notr.example/', 'r.example', false],
      ['https://r.example.org/', 'r.example', false],
      ['https://R.Example:5000/', 'r.example', true],
      ['https://r.example:5000/', 'r.example:5000', true],
      ['https://r.example:5001/', 'r.example:5000', false],
      ['https://r.example/', 'r.example:443', true],
      ['http://127.0.0.1:5000/', '', false],
      ['http://localhost:5000/', 'other.example', false],
      ['http://127.0.0.1:5000/', '127.0.0.1', true],
      ['http://127.0.0.2:5000/', '127.0.0.0/8', true],
      ['http://10.0.0.1/', '127.0.0.0/8', false],
      ['http://[::1]:5000/', '::1', true],
      ['https://r.example/', 'a.example, r.example b.example', true],
    ];
    for (const [url, noProxy, bypass] of cases) assert.equal(bypassesProxy(u(url), noProxy), bypass, `${url} with NO_PROXY=${noProxy}`);
  });
});
