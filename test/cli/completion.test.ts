// `stargz-get completion bash|zsh|fish`: each script is loaded into the real shell and asked
// to complete command lines, as a user's Tab would.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { runCli } from '../helpers/cli.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';

const run = promisify(execFile);

describe('shell completion', () => {
  let dir: string;
  const scripts: Record<string, string> = {};
  before(async () => {
    dir = await makeTempDir('completion-');
    await mkdir(join(dir, 'somedir'));
    await writeFile(join(dir, 'somefile'), '');
    for (const shell of ['bash', 'zsh', 'fish']) {
      const r = await runCli(['completion', shell]);
      assert.equal(r.code, 0, r.stderr);
      scripts[shell] = join(dir, `completion.${shell}`);
      await writeFile(scripts[shell]!, r.stdout);
    }
  });
  after(async () => {
    if (dir) await removeDir(dir);
  });

  /** What bash's completion function offers for the words typed so far (the last is being completed). */
  const bash = async (...words: string[]): Promise<string[]> => {
    const quoted = words.map((w) => `'${w}'`).join(' ');
    const { stdout } = await run('bash', ['-c', `cd ${dir} && source ${scripts.bash} && COMP_WORDS=(stargz-get ${quoted}) && COMP_CWORD=${words.length} && _stargz_get && printf '%s\\n' "\${COMPREPLY[@]}"`]);
    return stdout.split('\n').filter(Boolean);
  };

  test('bash: commands, subcommands, flags, flag values and path arguments', async () => {
    assert.deepEqual(await bash(''), ['sync', 'ls', 'cat', 'info', 'diff', 'export', 'mount', 'copy', 'umount', 'unmount', 'config', 'login', 'logout', 'completion', 'cache']);
    assert.deepEqual(await bash('cache', ''), ['info', 'prune', 'clear']);
    assert.deepEqual(await bash('mount', '--pre'), ['--prefetch']);
    assert.deepEqual(await bash('mount', '--prefetch', ''), ['none', 'landmark', 'all']);
    assert.deepEqual(await bash('completion', ''), ['bash', 'zsh', 'fish']);
    assert.deepEqual(await bash('ls', '--log-level', ''), ['error', 'warn', 'info', 'debug']);
    // The image reference is not a local path; DEST is a directory; a flag's value is not an argument.
    assert.deepEqual(await bash('sync', 'some'), []);
    assert.deepEqual(await bash('sync', 'img:tag', 'some'), ['somedir']);
    assert.deepEqual(await bash('sync', '--platform', 'linux/arm64', 'img:tag', 'some'), ['somedir']);
    assert.deepEqual(await bash('sync', '--cache-dir', 'some'), ['somedir']);
    assert.ok((await bash('sync', '--')).includes('--memory-budget'));
  });

  test('fish: commands with their descriptions, subcommands, flag values', async () => {
    const fish = async (line: string): Promise<string[]> =>
      (await run('fish', ['--no-config', '-c', `source ${scripts.fish}; complete -C ${JSON.stringify(line)}`])).stdout.split('\n').filter(Boolean);
    assert.ok((await fish('stargz-get sy')).some((l) => /^sync\tmaterialize REF/.test(l)));
    assert.deepEqual((await fish('stargz-get cache ')).map((l) => l.split('\t')[0]).sort(), ['clear', 'info', 'prune']);
    assert.deepEqual((await fish('stargz-get mount --prefetch ')).map((l) => l.split('\t')[0]).sort(), ['all', 'landmark', 'none']);
  });

  test('zsh: Tab in an interactive shell lists subcommands with descriptions', async () => {
    // zpty drives a real interactive zsh with compinit, the way a terminal would.
    const driver = join(dir, 'drive.zsh');
    await writeFile(
      driver,
      [
        'zmodload zsh/zpty',
        'zpty z zsh -f -i',
        `zpty -w z "PS1='>'; autoload -U compinit; compinit -u; source ${scripts.zsh}; setopt nobeep"`,
        `zpty -w z "stargz-get cache "$'\\t'`,
        'sleep 1',
        'while zpty -r -t z line; do print -r -- "$line"; done',
        'zpty -d z',
      ].join('\n'),
    );
    const { stdout } = await run('zsh', ['-f', driver], { timeout: 30_000 });
    assert.match(stdout, /prune\s+-- evict least-recently-used chunks/);
    assert.match(stdout, /clear\s+-- remove everything from the cache/);
  });

  test('an unknown shell is a usage error', async () => {
    const r = await runCli(['completion', 'ksh']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /ERR_USAGE: .*ksh.*bash, zsh, fish/);
  });
});
