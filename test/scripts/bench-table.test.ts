// scripts/bench-table.mjs (issue 13, benchmark hygiene): the README's benchmark section is
// rewritten from a bench-results.json — medians with their range, the machine and its load —
// between its markers, and nothing else of the README changes.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { projectRoot } from '../helpers/paths.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';

const run = promisify(execFile);
const script = join(projectRoot, 'scripts', 'bench-table.mjs');
const START = '<!-- bench-table:start (scripts/bench-table.mjs writes this section from bench-results.json) -->';
const END = '<!-- bench-table:end -->';

let dir: string;
before(async () => {
  dir = await makeTempDir('bench-table-');
});
after(async () => {
  if (dir) await removeDir(dir);
});

const results = {
  date: '2026-12-02T04:00:00.000Z',
  runs: 3,
  cases: ['etc', 'mount'],
  machine: { cpu: 'Test CPU 9000', cores: 2, memGiB: 24, filesystem: 'ext4' },
  load: { start: [11.16, 11.85, 10.53], end: [9.5, 10, 10.2] },
  rows: [
    { case: 'sync etc', link: 'wan', subject: 'stargz-get', seconds: 0.84, min: 0.8, max: 1.25, runs: 3, bytes: 1.2 * 1024 * 1024, requests: 9, rssMB: 154 },
    { case: 'sync etc', link: 'wan', subject: 'lean stream (curl|pigz|tar)', seconds: 18.5, min: 18.1, max: 19, runs: 3 },
    { case: 'sync etc', link: 'wan', subject: 'ideal bytes (TOCs + chunks)', seconds: 0.05, bytes: 1.19 * 1024 * 1024 },
  ],
  verdicts: [
    { target: 'sync etc WAN ≥ 25× faster than lean stream', measured: '22.0×', met: false },
    { target: 'warm sequential read', measured: 'cannot drop caches here', met: null },
  ],
};

test('--write replaces the section between the markers with the run, its machine and its load', async () => {
  const json = join(dir, 'results.json');
  const readme = join(dir, 'README.md');
  await writeFile(json, JSON.stringify(results));
  const before = '# Title\n\n## Benchmark\n\nprose before\n\n';
  const afterText = '\n\n## Architecture\n\nprose after\n';
  await writeFile(readme, `${before}${START}\nthe old table\n${END}${afterText}`);
  await run(process.execPath, [script, json, '--write', '--readme', readme]);
  const text = await readFile(readme, 'utf8');
  assert.ok(text.startsWith(before + START + '\n'), 'what precedes the section is kept');
  assert.ok(text.endsWith(END + afterText), 'what follows it is kept');
  assert.doesNotMatch(text, /the old table/);
  assert.match(text, /Latest run \(2026-12-02, Test CPU 9000, 2 cores, 24 GiB, ext4; load average 11\.16 \/ 11\.85 \/ 10\.53 \(1, 5, 15 min\) at the start, 9\.5 at the end/);
  assert.match(text, /median of 3 runs, min–max in brackets/);
  assert.match(text, /^\| sync etc \| wan \| stargz-get \| 0\.840 \(0\.800–1\.250\) \| 1\.20 \| 9 \| 154 \|$/m);
  assert.match(text, /^\| sync etc \| wan \| lean stream \(curl\\\|pigz\\\|tar\) \| 18\.500 \(18\.100–19\.000\) \|/m, 'a | inside a cell is escaped');
  assert.match(text, /^\| sync etc \| wan \| ideal bytes \(TOCs \+ chunks\) \| 0\.050 \| 1\.19 \|/m, 'a computed bound has no range');
  assert.match(text, /^\| sync etc WAN ≥ 25× faster than lean stream \| 22\.0× \| \*\*no\*\* \|$/m);
  assert.match(text, /^\| warm sequential read \| cannot drop caches here \| n\/a \|$/m);

  // Without --write it prints the same section and touches nothing.
  const { stdout } = await run(process.execPath, [script, json]);
  assert.ok(text.includes(stdout.trimEnd()));
});

test('a README without the markers is refused, unchanged', async () => {
  const json = join(dir, 'results2.json');
  const readme = join(dir, 'README2.md');
  await writeFile(json, JSON.stringify(results));
  await writeFile(readme, '# no markers\n');
  await assert.rejects(run(process.execPath, [script, json, '--write', '--readme', readme]), /has no <!-- bench-table:start/);
  assert.equal(await readFile(readme, 'utf8'), '# no markers\n');
});
