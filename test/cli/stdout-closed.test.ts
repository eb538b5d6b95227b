// Line output into a pipe whose reader went away (`ls | head`), or onto a full disk: the CLI
// as a shell runs it. A gone reader ends the command quietly with status 0, as ls(1) under
// SIGPIPE; a failing stdout is ERR_IO (exit 8), never a stack trace or a silent success.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { pushLayout, startRegistry, type TestRegistry } from '../helpers/registry.js';
import { cliPath } from '../helpers/paths.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';

let reg: TestRegistry;
let work: string;

before(async () => {
  reg = await startRegistry({ mode: 'plain' });
  await pushLayout(reg, 'edge', 'fixtures/edge:v1');
  work = await makeTempDir('stdout-');
});
after(async () => {
  await reg?.stop();
  if (work) await removeDir(work);
});

/** `stargz-get ARGS 2>ERR REDIRECT`, in bash; returns the CLI's exit status and its stderr. */
async function shell(args: string[], redirect: string): Promise<{ status: number; stderr: string }> {
  const script = `"$0" "$1" "$2" ${args.slice(1).map((_, i) => `"\${${i + 4}}"`).join(' ')} 2>"$3" ${redirect}; echo "\${PIPESTATUS[0]}"; cat "$3"`;
  const { stdout } = await promisify(execFile)('bash', ['-c', script, process.execPath, cliPath, args[0]!, join(work, 'err'), ...args.slice(1)]);
  const [status, ...stderr] = stdout.split('\n');
  return { status: Number(status), stderr: stderr.join('\n').trim() };
}

const lsArgs = (): string[] => ['ls', '-R', '--plain-http', '--cache-dir', join(work, 'cache'), `${reg.host}/fixtures/edge:v1`];

test('ls into a pipe whose reader is gone: exit 0, nothing on stderr', async () => {
  // `true` exits at once, before the listing is written: every write meets EPIPE.
  const r = await shell(lsArgs(), '| true');
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr, '');
});

test('ls onto a full device: ERR_IO, exit 8', async () => {
  const r = await shell(lsArgs(), '>/dev/full');
  assert.equal(r.status, 8, r.stderr);
  assert.match(r.stderr, /ERR_IO: cannot write to stdout: ENOSPC/);
});
