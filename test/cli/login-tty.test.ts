// `stargz-get login REGISTRY` on a terminal, with neither --password nor --password-stdin:
// it asks for the username (echoed, as docker does) and the password (not echoed). Run on a
// real pseudo-terminal (python3's pty module forks the CLI onto one), answering each prompt
// only once it is shown, as a person would; the terminal's own echo is on, so the username
// coming back proves the test would see a password echoed too.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startRegistry, pushLayout, type TestRegistry } from '../helpers/registry.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';
import { runCli } from '../helpers/cli.js';
import { cliPath } from '../helpers/paths.js';
import { isolatedEnv } from '../helpers/cred-helper.js';

const run = promisify(execFile);

/** Forks argv on a pty; answers each [prompt, reply] in turn once the prompt appeared; prints {output, status} as JSON. */
const DRIVER = String.raw`
import json, os, pty, select, sys, time
argv = json.loads(sys.argv[1]); script = json.loads(sys.argv[2])
pid, fd = pty.fork()
if pid == 0:
    os.execv(argv[0], argv)
out = b''
def read_until(marker, deadline):
    global out
    while marker is None or marker.encode() not in out:
        left = deadline - time.time()
        if left <= 0: return False
        r, _, _ = select.select([fd], [], [], left)
        if not r: continue
        try: data = os.read(fd, 4096)
        except OSError: return marker is None
        if not data: return marker is None
        out += data
    return True
ok = True
for prompt, reply in script:
    if not read_until(prompt, time.time() + 30): ok = False; break
    os.write(fd, (reply + '\r').encode())
read_until(None, time.time() + 60)
_, status = os.waitpid(pid, 0)
print(json.dumps({'output': out.decode('utf8', 'replace'), 'status': os.waitstatus_to_exitcode(status), 'prompted': ok}))
`;

async function onTerminal(args: string[], script: Array<[string, string]>, env: NodeJS.ProcessEnv): Promise<{ output: string; status: number; prompted: boolean }> {
  const { stdout } = await run('python3', ['-c', DRIVER, JSON.stringify([process.execPath, cliPath, ...args]), JSON.stringify(script)], {
    env: { ...process.env, ...env },
    timeout: 120_000,
  });
  return JSON.parse(stdout);
}

describe('login on a terminal: the password prompt does not echo', () => {
  let reg: TestRegistry;
  let work: string;
  before(async () => {
    reg = await startRegistry({ mode: 'basic', password: 'Tty-Prompt-Pw-913' });
    await pushLayout(reg, 'edge', 'fixtures/edge:v1');
    work = await makeTempDir('login-tty-');
  });
  after(async () => {
    await reg?.stop();
    if (work) await removeDir(work);
  });

  test('prompts for username and password; the password never reaches the terminal; the stored credential works', async () => {
    const home = join(work, 'home');
    await mkdir(join(home, '.docker'), { recursive: true });
    const env = { ...isolatedEnv(home), STARGZ_GET_DEBUG: '1' };
    const r = await onTerminal(['login', '--plain-http', reg.host], [['Username: ', reg.username!], ['Password: ', reg.password!]], env);
    assert.ok(r.prompted, `the prompts did not appear:\n${r.output}`);
    assert.equal(r.status, 0, r.output);
    assert.match(r.output, /Login Succeeded/);
    // The terminal echoes (the username came back), but not the password.
    assert.match(r.output, new RegExp(`Username: ${reg.username}\\r?\\n`));
    assert.ok(!r.output.includes(reg.password!), `the password was echoed:\n${JSON.stringify(r.output)}`);
    assert.ok(!r.output.includes(Buffer.from(`${reg.username}:${reg.password}`).toString('base64')), r.output);
    const doc = JSON.parse(await readFile(join(home, '.docker', 'config.json'), 'utf8'));
    assert.equal(doc.auths[reg.host].auth, Buffer.from(`${reg.username}:${reg.password}`).toString('base64'));
    const ls = await runCli(['ls', '--plain-http', '--cache-dir', join(work, 'cache'), `${reg.host}/fixtures/edge:v1/etc`], { env });
    assert.equal(ls.code, 0, ls.stderr);
    assert.match(ls.stdout, /passwd/);
  });

  test('a wrong password typed at the prompt: refused (exit 4), not echoed, nothing stored', async () => {
    const home = join(work, 'home-wrong');
    await mkdir(join(home, '.docker'), { recursive: true });
    const wrong = 'Typed-Wrong-Pw-404';
    const r = await onTerminal(['login', '--plain-http', '-u', reg.username!, reg.host], [['Password: ', wrong]], isolatedEnv(home));
    assert.ok(r.prompted, r.output);
    assert.equal(r.status, 4, r.output);
    assert.match(r.output, /ERR_REGISTRY_AUTH/);
    assert.ok(!r.output.includes(wrong), `the password was echoed:\n${JSON.stringify(r.output)}`);
    await assert.rejects(readFile(join(home, '.docker', 'config.json'), 'utf8'));
  });
});
