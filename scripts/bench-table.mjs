#!/usr/bin/env node
// Regenerates the README's benchmark table from bench-results.json (what scripts/bench wrote):
// the date, the machine (CPU, cores, memory, file system) and its load, the rows (median of the
// runs, min–max) and the verdicts, between the bench-table markers of README.md.
// Usage: node scripts/bench-table.mjs [RESULTS.json] [--write [--readme FILE]]   (prints the section without --write)
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const write = args.includes('--write');
const readmeAt = args.indexOf('--readme');
const readmePath = readmeAt >= 0 ? args[readmeAt + 1] : join(root, 'README.md');
const file = args.find((a, i) => !a.startsWith('--') && (readmeAt < 0 || i !== readmeAt + 1)) ?? join(root, 'bench-results.json');
const START = '<!-- bench-table:start (scripts/bench-table.mjs writes this section from bench-results.json) -->';
const END = '<!-- bench-table:end -->';

const results = JSON.parse(readFileSync(file, 'utf8'));
const MB = 1024 * 1024;
const fmt = (n, d = 2) => n.toFixed(d);
/** A table cell: a `|` in a case name (`tar usr/bin | wc -c`) would end the cell. */
const cell = (text) => String(text).replace(/\|/g, '\\|');

function seconds(r) {
  if (r.runs === undefined || r.runs === 1 || r.min === undefined) return fmt(r.seconds, 3);
  return `${fmt(r.seconds, 3)} (${fmt(r.min, 3)}–${fmt(r.max, 3)})`;
}

function section(res) {
  const m = res.machine ?? {};
  const day = String(res.date).slice(0, 10);
  const machine = [m.cpu, m.cores !== undefined ? `${m.cores} cores` : undefined, m.memGiB !== undefined ? `${m.memGiB} GiB` : undefined, m.filesystem]
    .filter(Boolean)
    .join(', ');
  const loadText = res.load ? `; load average ${res.load.start.join(' / ')} (1, 5, 15 min) at the start, ${res.load.end[0]} at the end` : '';
  const runs = res.runs ?? 1;
  const out = [];
  out.push(
    `Latest run (${day}, ${machine}${loadText}; registry, link emulator and client on the same machine). ` +
      (runs > 1
        ? `Each timed row is the median of ${runs} runs, min–max in brackets; a case's baselines ran interleaved with it, run for run.`
        : 'One run per row.'),
  );
  if (res.cases && res.cases !== 'all') out.push(`Cases run: ${res.cases.join(', ')}.`);
  out.push('');
  out.push(`| case | link | subject | seconds${runs > 1 ? `, median of ${runs} (min–max)` : ''} | MiB | requests | peak RSS MB |`);
  out.push('|---|---|---|---:|---:|---:|---:|');
  for (const r of res.rows) {
    out.push(`| ${cell(r.case)} | ${r.link} | ${cell(r.subject)} | ${seconds(r)} | ${r.bytes !== undefined ? fmt(r.bytes / MB, 2) : ''} | ${r.requests ?? ''} | ${r.rssMB !== undefined ? fmt(r.rssMB, 0) : ''} |`);
  }
  out.push('');
  out.push('| target | measured | met |');
  out.push('|---|---|---|');
  for (const v of res.verdicts) out.push(`| ${cell(v.target)} | ${cell(v.measured)} | ${v.met === null ? 'n/a' : v.met ? 'yes' : '**no**'} |`);
  return out.join('\n');
}

const text = section(results);
if (!write) {
  process.stdout.write(text + '\n');
} else {
  const readme = readFileSync(readmePath, 'utf8');
  const a = readme.indexOf(START);
  const b = readme.indexOf(END);
  if (a < 0 || b < a) {
    process.stderr.write(`bench-table: ${readmePath} has no ${START} … ${END} section\n`);
    process.exit(1);
  }
  writeFileSync(readmePath, readme.slice(0, a + START.length) + '\n' + text + '\n' + readme.slice(b));
  process.stderr.write(`bench-table: ${readmePath}: benchmark section rewritten from ${file}\n`);
}
