// `--json` on every command that has it (issue 12 item 6): stdout is exactly one JSON document
// with the field names the README documents, and notices stay on stderr. (sync --json:
// sync-json.test.ts; mount --json: mount-json.test.ts.)
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pushLayout, startRegistry, type TestRegistry } from '../helpers/registry.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';
import { runCli } from '../helpers/cli.js';

let work: string;
let reg: TestRegistry;
before(async () => {
  work = await makeTempDir('cli-json-output-');
  reg = await startRegistry({ mode: 'plain' });
  await pushLayout(reg, 'edge', 'fixtures/edge:v1');
  await pushLayout(reg, 'mixed', 'fixtures/mixed:v1');
});
after(async () => {
  await reg?.stop();
  if (work) await removeDir(work);
});

const cacheDir = (): string => join(work, 'cache');
/** Runs the command and parses its whole stdout: one document, nothing before or after it. */
async function json(args: string[]): Promise<{ doc: unknown; stderr: string }> {
  const r = await runCli([...args, '--json']);
  assert.equal(r.code, 0, r.stderr);
  return { doc: JSON.parse(r.stdout) as unknown, stderr: r.stderr };
}
const keys = (o: unknown): string[] => Object.keys(o as object).sort();

test('ls --json: an array of entries with the documented fields', async () => {
  const { doc } = await json(['ls', '-R', '--plain-http', '--cache-dir', cacheDir(), `${reg.host}/fixtures/edge:v1/`]);
  const entries = doc as Array<Record<string, unknown>>;
  assert.ok(Array.isArray(entries) && entries.length > 5);
  const always = ['chunks', 'gid', 'ino', 'layer', 'mode', 'mtime', 'nlink', 'path', 'size', 'type', 'uid'];
  const optional = new Set(['linkTarget', 'devMajor', 'devMinor', 'xattrs', 'digest', 'sparse']);
  for (const e of entries) {
    for (const k of always) assert.ok(k in e, `${String(e.path)} lacks ${k}`);
    for (const k of Object.keys(e)) assert.ok(always.includes(k) || optional.has(k), `undocumented field ${k}`);
    assert.match(String(e.mode), /^0[0-7]+$/);
    assert.ok(!Number.isNaN(Date.parse(String(e.mtime))));
  }
  assert.ok(entries.some((e) => e.type === 'symlink' && typeof e.linkTarget === 'string'));
  assert.ok(entries.some((e) => e.type === 'reg' && typeof e.digest === 'string'));
});

test('info --json: the image and its layers', async () => {
  const { doc } = await json(['info', '--plain-http', '--cache-dir', cacheDir(), `${reg.host}/fixtures/mixed:v1`]);
  assert.deepEqual(keys(doc), ['compressedSize', 'layers', 'manifestDigest', 'platform', 'reference']);
  const layers = (doc as { layers: unknown[] }).layers;
  assert.equal(layers.length, 3);
  for (const l of layers) assert.deepEqual(keys(l), ['compressedSize', 'digest', 'fileBytes', 'files', 'format', 'index', 'lazy', 'mediaType', 'tocDigest']);
  assert.equal((layers[0] as { format: string }).format, 'tar+gzip');
});

test('diff --json: an array of changes, [] when equal', async () => {
  const { doc } = await json(['diff', '--plain-http', '--cache-dir', cacheDir(), `${reg.host}/fixtures/edge:v1`, `${reg.host}/fixtures/edge:v1`]);
  assert.deepEqual(doc, []);
  const r = await runCli(['diff', '--json', '--plain-http', '--cache-dir', cacheDir(), `${reg.host}/fixtures/edge:v1`, `${reg.host}/fixtures/mixed:v1`]);
  assert.ok(r.code === 0 || r.code === 1, r.stderr);
  for (const c of JSON.parse(r.stdout) as Array<Record<string, unknown>>) {
    assert.ok(['A', 'C', 'D'].includes(String(c.change)));
    assert.equal(typeof c.path, 'string');
    for (const k of Object.keys(c)) assert.ok(['path', 'change', 'fields'].includes(k), `undocumented field ${k}`);
  }
});

test('cache info --json and config --json', async () => {
  const { doc: cache } = await json(['cache', 'info', '--cache-dir', cacheDir()]);
  assert.deepEqual(keys(cache), ['chunkBytes', 'chunks', 'dir', 'diskBytes', 'manifests', 'maxBytes', 'schemaVersion', 'tocs']);
  assert.ok((cache as { manifests: number }).manifests >= 2);
  const file = join(work, 'config.toml');
  await writeFile(file, 'timeout = "15s"\n');
  const { doc: config } = await json(['config', '--config', file]);
  assert.deepEqual(keys(config), ['commandDefaults', 'config', 'file']);
  assert.equal((config as { file: string }).file, file);
  assert.equal((config as { config: Record<string, unknown> }).config.timeout, '15s');
  assert.equal((config as { config: Record<string, unknown> }).config.concurrency, 8);
});
