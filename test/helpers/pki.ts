// A private certificate authority made by openssl for a test: a CA, a server certificate for
// the given names (127.0.0.1 and localhost always), and a client certificate (for registries
// that require one). Files only; nothing is added to any system store.
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface TestPki {
  dir: string;
  caCert: string; // PEM paths
  caKey: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

async function issue(dir: string, name: string, cn: string, ext: string, ca: { cert: string; key: string }): Promise<{ cert: string; key: string }> {
  const key = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const cert = join(dir, `${name}.crt`);
  const extFile = join(dir, `${name}.ext`);
  await writeFile(extFile, ext);
  await run('openssl', ['req', ...EC, '-keyout', key, '-out', csr, '-subj', `/CN=${cn}`]);
  await run('openssl', ['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-out', cert, '-days', '2', '-extfile', extFile]);
  return { cert, key };
}

/** Makes the CA and both certificates in `dir`; `names` are extra DNS names of the server. */
export async function makePki(dir: string, names: string[] = []): Promise<TestPki> {
  const caKey = join(dir, 'ca.key');
  const caCert = join(dir, 'ca.crt');
  await run('openssl', ['req', '-x509', ...EC, '-keyout', caKey, '-out', caCert, '-days', '2', '-subj', '/CN=stargz-get test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  const ca = { cert: caCert, key: caKey };
  const san = ['IP:127.0.0.1', 'DNS:localhost', ...names.map((n) => `DNS:${n}`)].join(',');
  const server = await issue(dir, 'server', names[0] ?? 'localhost', `subjectAltName=${san}\nextendedKeyUsage=serverAuth\n`, ca);
  const client = await issue(dir, 'client', 'stargz-get test client', 'extendedKeyUsage=clientAuth\n', ca);
  return { dir, caCert, caKey, serverCert: server.cert, serverKey: server.key, clientCert: client.cert, clientKey: client.key };
}
