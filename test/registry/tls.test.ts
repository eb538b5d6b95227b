// Certificate directories as docker and podman read them, the certs.d lookup order, and
// private CAs joining (never replacing) the system roots.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { rootCertificates } from 'node:tls';
import { ErrorCodes, isStargzError } from '../../src/errors.js';
import { CERTS_D_ENV, certDirSettings, certsDirRoots, findHostCertDir, loadCertDir, serverSpeaksTls, tlsConnectOptions } from '../../src/registry/tls.js';
import { tempDirFor } from '../helpers/tmp.js';

describe('certificate directories', () => {
  test('*.crt are CAs, NAME.cert + NAME.key the client pair, other files ignored', async (t) => {
    const dir = await tempDirFor(t, 'certdir-');
    for (const [name, text] of [['b.crt', 'B'], ['a.crt', 'A'], ['me.cert', 'C'], ['me.key', 'K'], ['README', 'x']]) await writeFile(join(dir, name!), text!);
    assert.deepEqual(certDirSettings(dir), { caFiles: [join(dir, 'a.crt'), join(dir, 'b.crt')], certFile: join(dir, 'me.cert'), keyFile: join(dir, 'me.key') });
    const loaded = loadCertDir(dir);
    assert.deepEqual(loaded.ca.map(String), ['A', 'B']);
    assert.equal(String(loaded.cert), 'C');
    assert.equal(String(loaded.key), 'K');
  });

  test('a client certificate without its key (or a key alone) is ERR_TLS, as Docker refuses it', async (t) => {
    const dir = await tempDirFor(t, 'certdir-');
    await writeFile(join(dir, 'me.cert'), 'C');
    assert.throws(() => certDirSettings(dir), (e: unknown) => isStargzError(e, ErrorCodes.TLS) && /missing key me\.key/.test(e.message));
    const dir2 = await tempDirFor(t, 'certdir-');
    await writeFile(join(dir2, 'me.key'), 'K');
    assert.throws(() => certDirSettings(dir2), (e: unknown) => isStargzError(e, ErrorCodes.TLS) && /missing client certificate/.test(e.message));
  });

  test('a --cert-dir that cannot be read is ERR_TLS naming it', () => {
    assert.throws(() => certDirSettings('/nonexistent/certs'), (e: unknown) => isStargzError(e, ErrorCodes.TLS) && e.message.includes('/nonexistent/certs'));
  });

  test('certs.d: HOST[:PORT] under the first root that has it; the env variable replaces the roots', async (t) => {
    const a = await tempDirFor(t, 'certsd-');
    const b = await tempDirFor(t, 'certsd-');
    await mkdir(join(b, '127.0.0.1:5000'));
    await mkdir(join(a, 'registry.example'));
    await mkdir(join(b, 'registry.example'));
    assert.equal(findHostCertDir('127.0.0.1:5000', [a, b]), join(b, '127.0.0.1:5000'));
    assert.equal(findHostCertDir('registry.example', [a, b]), join(a, 'registry.example'));
    assert.equal(findHostCertDir('127.0.0.1:5001', [a, b]), undefined);
    assert.equal(findHostCertDir('../etc', [a]), undefined);
    assert.deepEqual(certsDirRoots({ [CERTS_D_ENV]: `${a}:${b}` }), [a, b]);
    assert.deepEqual(certsDirRoots({ HOME: '/home/u' }), ['/home/u/.config/containers/certs.d', '/etc/containers/certs.d', '/etc/docker/certs.d']);
  });
});

describe('TLS connect options', () => {
  test('private CAs are added to the system roots, not instead of them', () => {
    const o = tlsConnectOptions({ ca: [Buffer.from('PRIVATE')] }, false);
    assert.equal(o.rejectUnauthorized, true);
    assert.equal(o.ca!.length, rootCertificates.length + 1);
    assert.ok(rootCertificates.every((c) => (o.ca as unknown[]).includes(c)));
    assert.equal(tlsConnectOptions(undefined, false).ca, undefined, 'no extra CA: node keeps its own default roots');
  });

  test('skip verification per host or for all hosts', () => {
    assert.equal(tlsConnectOptions({ ca: [], insecureSkipVerify: true }, false).rejectUnauthorized, false);
    assert.equal(tlsConnectOptions(undefined, true).rejectUnauthorized, false);
  });

  test('a certificate failure proves a TLS server; "wrong version number" (a plain-HTTP server) does not', () => {
    const wrap = (code: string) => Object.assign(new Error('x'), { cause: Object.assign(new Error('y'), { code }) });
    assert.equal(serverSpeaksTls(wrap('UNABLE_TO_VERIFY_LEAF_SIGNATURE')), true);
    assert.equal(serverSpeaksTls(wrap('ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED')), true);
    assert.equal(serverSpeaksTls(wrap('ERR_SSL_WRONG_VERSION_NUMBER')), false);
    assert.equal(serverSpeaksTls(wrap('ECONNREFUSED')), false);
  });
});
