// A real forward proxy for tests: Debian's squid on a free loopback port, resolving host names
// from its own hosts file only (hosts_file; its DNS points at 127.0.0.1, where nothing answers),
// so a registry named `registry.test` is reachable through it and through nothing else.
// With `auth`, every request needs Basic proxy credentials (basic_ncsa_auth + htpasswd): 407.
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './registry.js';
import { makeTempDir, removeDir, trackDir, trackPid, untrackDir, untrackPid } from './tmp.js';

const run = promisify(execFile);

export interface TestProxy {
  port: number;
  /** 'http://127.0.0.1:PORT' (no credentials). */
  url: string;
  /** Lines of squid's access log: one per request it handled (CONNECT host:port, GET http://…). */
  accessLog(): Promise<string[]>;
  stop(): Promise<void>;
}

export interface StartProxyOptions {
  /** name → loopback address, e.g. { 'registry.test': '127.0.0.1' }. */
  hosts?: Record<string, string>;
  auth?: { username: string; password: string };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

export async function startSquid(opts: StartProxyOptions = {}): Promise<TestProxy> {
  const dir = await makeTempDir('squid-');
  trackDir(dir);
  // squid drops root for its `proxy` user: it must read its files and write its logs here.
  await chmod(dir, 0o777);
  const port = await freePort();
  for (const [name, ip] of Object.entries(opts.hosts ?? {})) {
    if (!/^127\./.test(ip)) throw new Error(`startSquid: ${name} must map to a loopback address, got ${ip}`);
  }
  await writeFile(join(dir, 'hosts'), Object.entries(opts.hosts ?? {}).map(([n, ip]) => `${ip} ${n}\n`).join(''));
  let auth = 'http_access allow loopback\n';
  if (opts.auth) {
    const { stdout } = await run('htpasswd', ['-bn', opts.auth.username, opts.auth.password]);
    await writeFile(join(dir, 'passwd'), stdout.trim() + '\n');
    await chmod(join(dir, 'passwd'), 0o644);
    auth = `auth_param basic program /usr/lib/squid/basic_ncsa_auth ${join(dir, 'passwd')}
auth_param basic realm stargz-test-proxy
acl authed proxy_auth REQUIRED
http_access allow loopback authed
`;
  }
  for (const f of ['access.log', 'cache.log']) {
    await writeFile(join(dir, f), '');
    await chmod(join(dir, f), 0o666); // writeFile's mode is masked by the umask
  }
  const conf = join(dir, 'squid.conf');
  await writeFile(
    conf,
    `http_port 127.0.0.1:${port}
visible_hostname stargz-test-proxy
pid_filename ${join(dir, 'squid.pid')}
cache_log ${join(dir, 'cache.log')}
access_log stdio:${join(dir, 'access.log')}
logfile_rotate 0
coredump_dir ${dir}
cache deny all
cache_mem 8 MB
hosts_file ${join(dir, 'hosts')}
dns_nameservers 127.0.0.1
dns_timeout 2 seconds
pinger_enable off
shutdown_lifetime 0 seconds
acl loopback src 127.0.0.0/8
${auth}http_access deny all
`,
  );
  await chmod(conf, 0o644);
  const errFd = openSync(join(dir, 'stderr.log'), 'a');
  const child: ChildProcess = spawn('squid', ['-N', '-f', conf], { stdio: ['ignore', errFd, errFd] });
  closeSync(errFd);
  if (child.pid === undefined) throw new Error('squid did not start (apt-get install squid)');
  trackPid(child.pid);
  child.unref();
  let exited = false;
  child.once('exit', () => (exited = true));
  const deadline = Date.now() + 20_000;
  while (!(await listening(port))) {
    if (exited || Date.now() > deadline) {
      const log = (await readFile(join(dir, 'stderr.log'), 'utf8').catch(() => '')) + (await readFile(join(dir, 'cache.log'), 'utf8').catch(() => ''));
      child.kill('SIGKILL');
      untrackPid(child.pid);
      throw new Error(`squid on 127.0.0.1:${port} did not come up:\n${log.slice(-2000)}`);
    }
    await sleep(50);
  }
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    async accessLog() {
      const text = await readFile(join(dir, 'access.log'), 'utf8').catch(() => '');
      return text.split('\n').filter((l) => l.trim() !== '');
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.ref();
        const gone = new Promise<void>((r) => child.once('exit', () => r()));
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 3000);
        await gone;
        clearTimeout(t);
      }
      untrackPid(child.pid!);
      untrackDir(dir);
      await removeDir(dir);
    },
  };
}
