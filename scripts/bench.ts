// The benchmark: stargz-get against full-pull baselines measured in the same run, on a
// loopback registry and over an emulated wide-area link (40 ms round trip, 200 Mbit/s).
// Usage: scripts/bench [--runs N | --quick] [--only CASE,...]   (see README "Benchmark")
// Every timed row is the median of N runs (default 3; --quick: 1) with its min and max, and
// the baselines of a case are run interleaved with it, run for run, so load drifting during
// the benchmark hits both alike. Writes bench-results.json (rows, verdicts, the machine and its
// load) and prints the tables; scripts/bench-table.mjs puts them into the README. Everything
// it starts (registry, link proxy, mounts) is stopped on exit.
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { createServer } from 'node:net';
import { promisify } from 'node:util';
import { parseReference } from '../src/reference/reference.js';
import { openImage, type OpenedImage } from '../src/image/open-image.js';
import type { VNode } from '../src/vfs/node.js';
import { hasExtent, type ChunkRef } from '../src/file-index/index.js';

/** Compressed bytes of a chunk (0 for a plain layer's piece, which has no extent of its own). */
const extentBytes = (c: ChunkRef): number => (hasExtent(c) ? c.end - c.offset : 0);

const run = promisify(execFile);
const root = resolve(new URL('../..', import.meta.url).pathname);
// The reference converter, the image builder and the link emulator are the project's own copies.
const tools = join(root, 'scripts', 'tools');
// BENCH_CLI=path/to/bin/stargz-get times another build (a baseline commit) with this script.
const cli = process.env.BENCH_CLI ?? join(root, 'bin', 'stargz-get');
const argv = process.argv.slice(2);
const only = argv.includes('--only') ? new Set(argv[argv.indexOf('--only') + 1]!.split(',')) : undefined;
/** Runs per timed row: the median is reported, with min and max. */
const RUNS = argv.includes('--runs') ? Number(argv[argv.indexOf('--runs') + 1]) : argv.includes('--quick') ? 1 : 3;
if (!Number.isInteger(RUNS) || RUNS < 1) throw new Error(`--runs wants a positive integer, got ${argv[argv.indexOf('--runs') + 1]}`);
const work = process.env.BENCH_DIR ?? '/var/tmp/stargz-bench';
const RTT_MS = 40;
const RATE_MBIT = 200;
const LINK_BYTES_PER_S = (RATE_MBIT * 1e6) / 8;

interface Row {
  case: string;
  link: 'loopback' | 'wan';
  subject: string;
  /** The median of `runs` runs; a computed bound (ideal bytes, link-limited time) has no `runs`. */
  seconds: number;
  min?: number;
  max?: number;
  runs?: number;
  bytes?: number;
  requests?: number;
  rssMB?: number;
  note?: string;
}
const rows: Row[] = [];
interface Verdict {
  target: string;
  measured: string;
  met: boolean | null;
}
const verdicts: Verdict[] = [];
const children: ChildProcess[] = [];
const mounts: string[] = [];

function log(msg: string): void {
  process.stderr.write(`[bench] ${msg}\n`);
}

// ---------- repetition: every timed row is the median of RUNS runs ----------

/** Median, min and max of the samples of one timed row. */
interface Timing {
  seconds: number;
  min: number;
  max: number;
  runs: number;
}

function timing(samples: number[]): Timing {
  const sorted = [...samples].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { seconds: median, min: sorted[0]!, max: sorted[sorted.length - 1]!, runs: sorted.length };
}

/**
 * Runs `fn` RUNS times and returns every run's result. A case measures its subject and its
 * baselines inside one `fn`, so they alternate run for run: a paired measurement.
 */
async function repeat<T>(fn: (run: number) => Promise<T>, runs = RUNS): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < runs; i++) {
    if (runs > 1) log(`run ${i + 1} of ${runs}`);
    out.push(await fn(i));
  }
  return out;
}

/** The run whose seconds are the median (its bytes and requests go with the row). */
function medianRun<T>(results: T[], seconds: (r: T) => number): T {
  const order = [...results].sort((a, b) => seconds(a) - seconds(b));
  return order[(order.length - 1) >> 1]!;
}

/** A timed row: the median of the runs, min and max; bytes and requests of the median run; the highest peak RSS. */
function timedRow<T>(base: Omit<Row, 'seconds' | 'bytes' | 'requests' | 'rssMB'>, results: T[], seconds: (r: T) => number, extra: { bytes?: (r: T) => number; requests?: (r: T) => number; rssMB?: (r: T) => number } = {}): Row {
  const mid = medianRun(results, seconds);
  const row: Row = { ...base, ...timing(results.map(seconds)) };
  if (extra.bytes) row.bytes = extra.bytes(mid);
  if (extra.requests) row.requests = extra.requests(mid);
  if (extra.rssMB) row.rssMB = Math.max(...results.map(extra.rssMB));
  rows.push(row);
  return row;
}


async function sh(cmd: string, env: NodeJS.ProcessEnv = {}): Promise<{ seconds: number; stdout: string; rssMB: number }> {
  const timeFile = join(work, '.time');
  const started = process.hrtime.bigint();
  const { stdout } = await run('/usr/bin/time', ['-f', '%M', '-o', timeFile, 'bash', '-c', cmd], {
    env: { ...process.env, ...env },
    maxBuffer: 1 << 26,
  });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const rssKB = Number(readFileSync(timeFile, 'utf8').trim().split('\n').pop());
  return { seconds, stdout, rssMB: rssKB / 1024 };
}

async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => res(port));
    });
    s.on('error', rej);
  });
}

async function waitHttp(url: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    try {
      await fetch(url);
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error('not answering: ' + url);
}

function want(name: string): boolean {
  return !only || only.has(name);
}

async function dropCaches(): Promise<boolean> {
  try {
    await run('bash', ['-c', 'sync; echo 3 > /proc/sys/vm/drop_caches']);
    return true;
  } catch {
    return false;
  }
}

// ---------- setup ----------

async function ensureTools(): Promise<void> {
  const missing: string[] = [];
  for (const [cmd, pkg] of [['docker-registry', 'docker-registry'], ['skopeo', 'skopeo'], ['umoci', 'umoci'], ['pigz', 'pigz'], ['curl', 'curl'], ['fusermount', 'fuse3'], ['rsync', 'rsync']]) {
    try {
      await run('bash', ['-c', `command -v ${cmd}`]);
    } catch {
      missing.push(pkg!);
    }
  }
  if (!existsSync('/usr/share/gocode/src')) missing.push('golang-github-containerd-stargz-snapshotter-dev');
  if (missing.length) {
    log(`installing ${missing.join(' ')}`);
    await run('bash', ['-c', `apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ${missing.join(' ')} >/dev/null`]);
  }
  try {
    await run('bash', ['-c', 'command -v esgz-ref']);
  } catch {
    log('building esgz-ref (the reference estargz converter)');
    await run(join(tools, 'esgz-ref', 'build.sh'), []);
  }
}

/** A registry process on a free port with its storage in BENCH_DIR/`name`; `stop` ends it (the storage stays). */
async function startRegistry(name = 'registry'): Promise<{ host: string; port: number; dir: string; stop: () => Promise<void> }> {
  const port = await freePort();
  const dir = join(work, name);
  mkdirSync(join(dir, 'storage'), { recursive: true });
  writeFileSync(
    join(dir, 'config.yml'),
    `version: 0.1\nlog: {level: error, accesslog: {disabled: true}}\nstorage: {filesystem: {rootdirectory: ${dir}/storage}, delete: {enabled: true}}\nhttp: {addr: 127.0.0.1:${port}}\n`,
  );
  const child = spawn('docker-registry', ['serve', join(dir, 'config.yml')], { stdio: 'ignore' });
  children.push(child);
  await waitHttp(`http://127.0.0.1:${port}/v2/`);
  const stop = async (): Promise<void> => {
    const gone = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await gone;
  };
  return { host: `127.0.0.1:${port}`, port, dir, stop };
}

interface Link {
  host: string;
  stats(): { bytes_down: number; connections: number };
}

async function startWanLink(targetPort: number): Promise<Link> {
  const port = await freePort();
  const statsFile = join(work, 'link-stats.json');
  rmSync(statsFile, { force: true });
  const child = spawn('python3', [join(tools, 'slowlink.py'), String(port), String(targetPort), '--delay-ms', String(RTT_MS / 2), '--rate-mbit', String(RATE_MBIT), '--stats', statsFile], { stdio: 'ignore' });
  children.push(child);
  for (let i = 0; i < 50 && !existsSync(statsFile); i++) await new Promise((r) => setTimeout(r, 100));
  return {
    host: `127.0.0.1:${port}`,
    stats: () => JSON.parse(readFileSync(statsFile, 'utf8')) as { bytes_down: number; connections: number },
  };
}

async function linkBytesDuring<T>(link: Link, fn: () => Promise<T>): Promise<{ result: T; bytes: number }> {
  await new Promise((r) => setTimeout(r, 1100)); // the stats file is rewritten every second
  const before = link.stats().bytes_down;
  const result = await fn();
  await new Promise((r) => setTimeout(r, 1100));
  return { result, bytes: link.stats().bytes_down - before };
}

async function ensureImages(host: string): Promise<void> {
  const have = async (repo: string): Promise<boolean> => (await fetch(`http://${host}/v2/${repo}/manifests/v1`, { method: 'HEAD', headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' } })).ok;
  const sets = [];
  if (!(await have('bench/debian'))) sets.push('debian');
  if (!(await have('bench/many'))) sets.push('many');
  if (sets.length) {
    log(`building and pushing images with the reference converter: ${sets.join(' ')} (takes a few minutes)`);
    await run(join(tools, 'make-images.sh'), [host, join(work, 'images'), ...sets], { maxBuffer: 1 << 24 });
  }
}

// ---------- measurements ----------

interface SyncStats {
  wallMs: number;
  requests: number;
  blobBytesReceived: number;
  maxRssBytes: number;
  layerBytes: number;
}

async function stargzSync(host: string, path: string, dest: string, cache: string, extra = '', repo = 'bench/debian'): Promise<{ seconds: number; stats: SyncStats; rssMB: number }> {
  rmSync(dest, { recursive: true, force: true });
  const statsFile = join(work, 'sync-stats.json');
  const r = await sh(`node ${cli} sync -q --plain-http --cache-dir ${cache} ${extra} ${host}/${repo}:v1${path} ${dest}`, { STARGZ_GET_STATS_FILE: statsFile });
  return { seconds: r.seconds, rssMB: r.rssMB, stats: JSON.parse(readFileSync(statsFile, 'utf8')) as SyncStats };
}

async function fullPull(host: string, path: string, dest: string): Promise<number> {
  const oci = join(work, 'fullpull-oci');
  const rootfs = join(work, 'fullpull-rootfs');
  rmSync(oci, { recursive: true, force: true });
  rmSync(rootfs, { recursive: true, force: true });
  rmSync(dest, { recursive: true, force: true });
  const r = await sh(
    `skopeo copy -q --src-tls-verify=false docker://${host}/bench/debian:v1 oci:${oci}:v1 && umoci raw unpack --image ${oci}:v1 ${rootfs} >/dev/null 2>&1 && cp -a ${rootfs}${path === '/' ? '/.' : path} ${dest}`,
  );
  rmSync(oci, { recursive: true, force: true });
  rmSync(rootfs, { recursive: true, force: true });
  return r.seconds;
}

async function leanStream(host: string, layers: string[], dest: string): Promise<number> {
  rmSync(dest, { recursive: true, force: true });
  mkdirSync(dest, { recursive: true });
  const pipes = layers.map((d) => `(curl -sf http://${host}/v2/bench/debian/blobs/${d} | pigz -dc | tar -x -C ${dest}) &`).join(' ');
  const r = await sh(`${pipes} wait`);
  return r.seconds;
}

/** TOC bytes of every layer plus the compressed extents of the chunks a path needs. */
function idealBytes(image: OpenedImage, node: VNode): number {
  let bytes = 0;
  for (const layer of image.layers) bytes += layer.descriptor.size - layer.index.tocOffset;
  const seen = new Set<string>();
  for (const n of image.fs.walk(node)) {
    if (n.children) continue;
    for (const c of n.inode.entry.chunks) {
      const key = `${n.inode.layer.descriptor.digest}@${c.offset}`;
      if (seen.has(key)) continue;
      seen.add(key);
      bytes += extentBytes(c);
    }
  }
  return bytes;
}

function check(target: string, measured: string, met: boolean | null): void {
  verdicts.push({ target, measured, met });
  log(`${met === null ? '??' : met ? 'OK' : 'MISS'}  ${target}: ${measured}`);
}

const MB = 1024 * 1024;
const fmt = (n: number, d = 2): string => n.toFixed(d);

// ---------- memory rows (issue 8): peak RSS against the stated bound ----------

/** The index's stated cost per path (README "Limits"; scripts/index-bytes.mjs measures it). */
const INDEX_BYTES_PER_ENTRY = 325;
/** The merged tree's cost per path (src/vfs; measured by scripts/index-bytes.mjs --vfs). */
const VFS_BYTES_PER_NODE = 310;
/** node, the CLI and its modules before any image (the bounds tests measure ~160 MiB). */
const FIXED_OVERHEAD = 160 * 1024 * 1024;
const DEFAULT_BUDGET = 256 * 1024 * 1024;
const DEFAULT_MEMORY_CACHE = 256 * 1024 * 1024;
const MEMORY_ENTRIES = Number(process.env.BENCH_ENTRIES ?? 3_000_000);
/** Size of the one chunk of each of the 4 big files (BENCH_BIGCHUNK, for a quick trial of the rows). */
const BIG_CHUNK = Number(process.env.BENCH_BIGCHUNK ?? 1024 ** 3);

async function memoryCases(host: string): Promise<void> {
  const have = async (repo: string): Promise<boolean> => (await fetch(`http://${host}/v2/${repo}/manifests/v1`, { method: 'HEAD', headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' } })).ok;
  const sets: string[] = [];
  if (!(await have('bench/entries'))) sets.push('entries');
  if (!(await have('bench/bigchunks'))) sets.push('bigchunks');
  if (sets.length) {
    log(`building the memory images: ${sets.join(' ')} (big tars made now, in ${join(work, 'images')}, removed after)`);
    await run(join(tools, 'make-images.sh'), [host, join(work, 'images'), ...sets], { maxBuffer: 1 << 24, env: { ...process.env, ENTRIES: String(MEMORY_ENTRIES), BIGCHUNK: String(BIG_CHUNK) } });
    for (const s of sets) rmSync(join(work, 'images', s), { recursive: true, force: true });
  }
  // ls -R over one layer whose TOC has MEMORY_ENTRIES entries (~214 MB of TOC JSON: within
  // the default 256 MiB TOC bound and --memory-budget, so neither is raised).
  const cache = join(work, 'cache-entries');
  const lsRuns = await repeat(async () => {
    rmSync(cache, { recursive: true, force: true });
    return sh(`node ${cli} ls -R --plain-http --cache-dir ${cache} ${host}/bench/entries:v1/ | wc -l`);
  });
  const lsBound = DEFAULT_BUDGET + FIXED_OVERHEAD + MEMORY_ENTRIES * (INDEX_BYTES_PER_ENTRY + VFS_BYTES_PER_NODE);
  const ls = timedRow({ case: `ls -R (${MEMORY_ENTRIES / 1e6} M TOC entries)`, link: 'loopback', subject: 'stargz-get', note: `${lsRuns[0]!.stdout.trim()} lines` }, lsRuns, (r) => r.seconds, { rssMB: (r) => r.rssMB });
  check(
    `peak RSS ls -R of ${MEMORY_ENTRIES / 1e6} M entries ≤ budget 256 MiB + 160 MiB + entries × (${INDEX_BYTES_PER_ENTRY} index + ${VFS_BYTES_PER_NODE} VFS) B = ${fmt(lsBound / MB, 0)} MB`,
    `${fmt(ls.rssMB!, 0)} MB (highest of ${ls.runs} runs)`,
    ls.rssMB! * MB <= lsBound,
  );
  rmSync(cache, { recursive: true, force: true });
  // sync of 4 files of one 1 GiB chunk each: a chunk above a quarter of the memory cache is
  // streamed into the disk cache and copied out by position (layer/huge-chunk.ts), so memory
  // is the budget, the memory cache and the fixed overhead, whatever the chunk size.
  const dest = join(work, 'dest-bigchunks');
  const c2 = join(work, 'cache-bigchunks');
  const bigRuns = await repeat(async () => {
    rmSync(c2, { recursive: true, force: true });
    rmSync(dest, { recursive: true, force: true });
    return sh(`node ${cli} sync -q --plain-http --cache-dir ${c2} ${host}/bench/bigchunks:v1/ ${dest}`);
  });
  const bigBound = DEFAULT_BUDGET + DEFAULT_MEMORY_CACHE + FIXED_OVERHEAD;
  const big = timedRow({ case: `sync 4 × one ${fmt(BIG_CHUNK / MB, 0)} MiB chunk`, link: 'loopback', subject: 'stargz-get' }, bigRuns, (r) => r.seconds, { rssMB: (r) => r.rssMB });
  check(`peak RSS sync of ${fmt(BIG_CHUNK / MB, 0)} MiB chunks ≤ budget + memory cache + 160 MiB = ${fmt(bigBound / MB, 0)} MB`, `${fmt(big.rssMB!, 0)} MB (highest of ${big.runs} runs)`, big.rssMB! * MB <= bigBound);
  rmSync(dest, { recursive: true, force: true });
  rmSync(c2, { recursive: true, force: true });
}

async function main(): Promise<void> {
  mkdirSync(work, { recursive: true });
  await ensureTools();
  const reg = await startRegistry();
  if (want('memory')) await memoryCases(reg.host);
  // `--only memory`: the memory rows need neither the debian image nor the WAN link.
  if (only && [...only].every((c) => c === 'memory')) {
    printTable();
    return;
  }
  await ensureImages(reg.host);
  const wan = await startWanLink(reg.port);
  log(`registry ${reg.host}, WAN link ${wan.host} (${RTT_MS} ms RTT, ${RATE_MBIT} Mbit/s)`);

  const image = await openImage(parseReference(`${reg.host}/bench/debian:v1`), { cacheDir: join(work, 'probe-cache'), registry: { plainHttp: true } });
  const layerDigests = image.manifest.layers.map((l) => l.digest);
  const compressedTotal = image.manifest.layers.reduce((n, l) => n + l.size, 0);
  let largestSo: VNode | undefined;
  let largestBin: VNode | undefined;
  for (const n of image.fs.walk(image.fs.root)) {
    if (n.children || n.inode.entry.type !== 'reg') continue;
    if (n.path.endsWith('.so') || /\.so\.[\d.]+$/.test(n.path)) {
      if (n.path.startsWith('/usr/lib/') && (!largestSo || n.inode.entry.size > largestSo.inode.entry.size)) largestSo = n;
    }
    if (n.path.startsWith('/usr/bin/') && (!largestBin || n.inode.entry.size > largestBin.inode.entry.size)) largestBin = n;
  }
  const etcIdeal = idealBytes(image, image.fs.resolve('/etc'));
  const soIdeal = idealBytes(image, largestSo!);
  log(`image: ${layerDigests.length} layers, ${fmt(compressedTotal / MB, 1)} MiB compressed; largest .so ${largestSo!.path} (${fmt(largestSo!.inode.entry.size / MB, 1)} MiB); largest binary ${largestBin!.path}`);
  await image.close();
  const out = join(work, 'out');
  const cache = (name: string): string => {
    const d = join(work, 'cache-' + name);
    rmSync(d, { recursive: true, force: true });
    return d;
  };

  // 1. sync etc over the WAN link
  if (want('etc')) {
    const runs = await repeat(async () => {
      const { result: s, bytes } = await linkBytesDuring(wan, () => stargzSync(wan.host, '/etc', join(out, 'etc'), cache('etc')));
      const full = await fullPull(wan.host, '/etc', join(out, 'etc-full'));
      const lean = await leanStream(wan.host, layerDigests, join(out, 'etc-lean'));
      return { s, bytes, full, lean };
    });
    const s = timedRow({ case: 'sync etc', link: 'wan', subject: 'stargz-get' }, runs, (r) => r.s.seconds, { bytes: (r) => r.bytes, requests: (r) => r.s.stats.requests, rssMB: (r) => r.s.rssMB });
    const full = timedRow({ case: 'sync etc', link: 'wan', subject: 'full pull (skopeo+umoci)' }, runs, (r) => r.full, { bytes: () => compressedTotal }).seconds;
    const lean = timedRow({ case: 'sync etc', link: 'wan', subject: 'lean stream (curl|pigz|tar)' }, runs, (r) => r.lean, { bytes: () => compressedTotal }).seconds;
    rows.push({ case: 'sync etc', link: 'wan', subject: 'ideal bytes (TOCs + chunks)', seconds: etcIdeal / LINK_BYTES_PER_S, bytes: etcIdeal });
    const bytes = s.bytes!;
    check('sync etc WAN ≥ 40× faster than full pull', `${fmt(full / s.seconds, 1)}×`, full / s.seconds >= 40);
    check('sync etc WAN ≥ 25× faster than lean stream', `${fmt(lean / s.seconds, 1)}×`, lean / s.seconds >= 25);
    check('sync etc WAN bytes ≤ 1.1× ideal', `${fmt(bytes / etcIdeal)}× (${fmt(bytes / MB)} MiB vs ${fmt(etcIdeal / MB)} MiB)`, bytes <= 1.1 * etcIdeal);
  }

  // 2. sync the largest .so over the WAN link
  if (want('so')) {
    const runs = await repeat(() => linkBytesDuring(wan, () => stargzSync(wan.host, largestSo!.path, join(out, 'so'), cache('so'))));
    const bound = soIdeal / LINK_BYTES_PER_S + (4 * RTT_MS) / 1000;
    const s = timedRow({ case: `sync ${largestSo!.path.split('/').pop()}`, link: 'wan', subject: 'stargz-get' }, runs, (r) => r.result.seconds, { bytes: (r) => r.bytes, requests: (r) => r.result.stats.requests });
    rows.push({ case: `sync ${largestSo!.path.split('/').pop()}`, link: 'wan', subject: 'ideal/link + 4 RTT', seconds: bound, bytes: soIdeal });
    check('sync largest .so WAN ≤ 1.15× (ideal/link + 4 RTT)', `${fmt(s.seconds / bound)}× (${fmt(s.seconds)} s vs ${fmt(bound)} s)`, s.seconds <= 1.15 * bound);
  }

  // 3. sync / on loopback, with peak RSS
  if (want('root')) {
    // The last run leaves cache-root filled for the warm rows below.
    // The many-files image too (issue 13: its peak RSS must be close to the large one's), and a
    // one-off sync that writes no second copy into the cache (--no-cache), as the lean stream.
    const runs = await repeat(async () => {
      const s = await stargzSync(reg.host, '/', join(out, 'root'), cache('root'));
      const noCache = await stargzSync(reg.host, '/', join(out, 'root-nc'), cache('root-nc'), '--no-cache');
      const lean = await leanStream(reg.host, layerDigests, join(out, 'root-lean'));
      const full = await fullPull(reg.host, '/', join(out, 'root-full'));
      const many = await stargzSync(reg.host, '/', join(out, 'root-many'), cache('root-many'), '', 'bench/many');
      return { s, noCache, lean, full, many };
    });
    const s = timedRow({ case: 'sync /', link: 'loopback', subject: 'stargz-get' }, runs, (r) => r.s.seconds, { bytes: (r) => r.s.stats.blobBytesReceived, requests: (r) => r.s.stats.requests, rssMB: (r) => r.s.rssMB });
    const nc = timedRow({ case: 'sync /', link: 'loopback', subject: 'stargz-get --no-cache' }, runs, (r) => r.noCache.seconds, { bytes: (r) => r.noCache.stats.blobBytesReceived, requests: (r) => r.noCache.stats.requests, rssMB: (r) => r.noCache.rssMB });
    const lean = timedRow({ case: 'sync /', link: 'loopback', subject: 'lean stream' }, runs, (r) => r.lean).seconds;
    const full = timedRow({ case: 'sync /', link: 'loopback', subject: 'full pull' }, runs, (r) => r.full).seconds;
    const many = timedRow({ case: 'sync / (many files)', link: 'loopback', subject: 'stargz-get' }, runs, (r) => r.many.seconds, { bytes: (r) => r.many.stats.blobBytesReceived, requests: (r) => r.many.stats.requests, rssMB: (r) => r.many.rssMB });
    check('sync / loopback ≤ 1.0× lean stream', `${fmt(s.seconds / lean)}× (${fmt(s.seconds)} s vs ${fmt(lean)} s)`, s.seconds <= lean);
    check('sync / --no-cache loopback ≤ 1.0× lean stream', `${fmt(nc.seconds / lean)}× (${fmt(nc.seconds)} s vs ${fmt(lean)} s)`, nc.seconds <= lean);
    check('sync / loopback ≥ 2.5× faster than full pull', `${fmt(full / s.seconds, 1)}×`, full / s.seconds >= 2.5);
    check('peak RSS whole-image sync ≤ 150 MB', `${fmt(s.rssMB!, 0)} MB (highest of ${s.runs} runs; --no-cache ${fmt(nc.rssMB!, 0)} MB)`, s.rssMB! <= 150 && nc.rssMB! <= 150);
    check('peak RSS whole-image sync of the many-files image ≤ 150 MB', `${fmt(many.rssMB!, 0)} MB (highest of ${many.runs} runs)`, many.rssMB! <= 150);

    // 4. warm repeat sync vs cp -a of the same tree
    const warmRuns = await repeat(async () => {
      const warm = await stargzSync(reg.host, '/', join(out, 'root-warm'), join(work, 'cache-root'));
      rmSync(join(out, 'root-cp'), { recursive: true, force: true });
      const cp = await sh(`cp -a ${join(out, 'root')} ${join(out, 'root-cp')}`);
      return { warm, cp: cp.seconds };
    });
    const warm = timedRow({ case: 'sync / warm', link: 'loopback', subject: 'stargz-get' }, warmRuns, (r) => r.warm.seconds, { bytes: (r) => r.warm.stats.blobBytesReceived, requests: (r) => r.warm.stats.requests });
    const cp = timedRow({ case: 'sync / warm', link: 'loopback', subject: 'cp -a' }, warmRuns, (r) => r.cp);
    const warmBlobBytes = Math.max(...warmRuns.map((r) => r.warm.stats.blobBytesReceived));
    check('warm sync / ≤ 1.5× cp -a, no blob bytes', `${fmt(warm.seconds / cp.seconds)}×, ${warmBlobBytes} blob bytes`, warm.seconds <= 1.5 * cp.seconds && warmBlobBytes === 0);
    // The cache's own accounting: bytes of chunk data it holds against what its directory occupies.
    const info = JSON.parse((await sh(`node ${cli} cache info --json --cache-dir ${join(work, 'cache-root')}`)).stdout) as { chunkBytes: number; diskBytes: number };
    check('disk cache footprint ≤ 1.05× data held', `${fmt(info.diskBytes / info.chunkBytes, 3)}× (${fmt(info.diskBytes / MB, 0)} MiB on disk for ${fmt(info.chunkBytes / MB, 0)} MiB of chunks)`, info.diskBytes <= 1.05 * info.chunkBytes);
    for (const d of ['root-nc', 'root-many', 'root-lean', 'root-full', 'root-warm', 'root-cp']) rmSync(join(out, d), { recursive: true, force: true });
  }

  // 5. sync / over the WAN link
  if (want('rootwan')) {
    const runs = await repeat(() => linkBytesDuring(wan, () => stargzSync(wan.host, '/', join(out, 'root-wan'), cache('rootwan'))));
    const bound = compressedTotal / LINK_BYTES_PER_S;
    const s = timedRow({ case: 'sync /', link: 'wan', subject: 'stargz-get' }, runs, (r) => r.result.seconds, { bytes: (r) => r.bytes, requests: (r) => r.result.stats.requests, rssMB: (r) => r.result.rssMB });
    rows.push({ case: 'sync /', link: 'wan', subject: 'link-limited (compressed/link rate)', seconds: bound, bytes: compressedTotal });
    check('sync / WAN ≤ 1.1× link-limited time', `${fmt(s.seconds / bound)}× (${fmt(s.seconds)} s vs ${fmt(bound)} s)`, s.seconds <= 1.1 * bound);
    rmSync(join(out, 'root-wan'), { recursive: true, force: true });
  }

  if (want('mount')) await mountCases(reg.host, wan, largestBin!);

  if (want('syncreuse')) await syncReuseCases(reg.host, wan);

  if (want('export')) await exportCases(reg.host);

  if (want('copy')) await copyCases(reg.host);

  printTable();
}

// ---------- issue 14: export of the 1 GB image as a docker-archive ----------
// Kept in one function with its own rows, apart from the other cases, so that edits to those merge cleanly.

async function exportCases(host: string): Promise<void> {
  const out = join(work, 'out-export');
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  const ref = `${host}/bench/debian:v1`;
  const sizeOf = (file: string): number => statSync(file).size;
  // Paired, run for run: stargz-get, then skopeo (which unpacks each layer into the archive:
  // its docker-archive destination wants uncompressed layers; ours keeps the registry's blobs).
  const runs = await repeat(async () => {
    const ours = join(out, 'stargz-get.tar');
    const theirs = join(out, 'skopeo.tar');
    const a = await sh(`node ${cli} export -q --plain-http --cache-dir ${join(out, 'cache')} ${ref} ${ours}`);
    const aBytes = sizeOf(ours);
    rmSync(ours, { force: true });
    const b = await sh(`skopeo copy -q --src-tls-verify=false docker://${ref} docker-archive:${theirs}:bench/debian:v1`);
    const bBytes = sizeOf(theirs);
    rmSync(theirs, { force: true });
    return { a, aBytes, b, bBytes };
  });
  const a = timedRow({ case: 'export docker-archive (1 GB image)', link: 'loopback', subject: 'stargz-get export' }, runs, (r) => r.a.seconds, { bytes: (r) => r.aBytes, rssMB: (r) => r.a.rssMB });
  const b = timedRow({ case: 'export docker-archive (1 GB image)', link: 'loopback', subject: 'skopeo copy docker-archive:' }, runs, (r) => r.b.seconds, { bytes: (r) => r.bBytes, rssMB: (r) => r.b.rssMB });
  check('peak RSS of export of the 1 GB image ≤ 150 MB', `${fmt(a.rssMB!, 0)} MB (skopeo ${fmt(b.rssMB!, 0)} MB); ${fmt(a.seconds / b.seconds)}× skopeo's time`, a.rssMB! <= 150);
  rmSync(out, { recursive: true, force: true });
}

// ---------- issue 14: copy the 1 GB image to a second registry process ----------

/** An empty registry of its own, removed with its storage by `stop`. */
async function startTargetRegistry(name: string): Promise<{ host: string; stop: () => Promise<void> }> {
  rmSync(join(work, name), { recursive: true, force: true });
  const reg = await startRegistry(name);
  return {
    host: reg.host,
    stop: async () => {
      await reg.stop();
      rmSync(reg.dir, { recursive: true, force: true });
    },
  };
}

async function copyCases(host: string): Promise<void> {
  const ref = `${host}/bench/debian:v1`;
  // Each run copies into a fresh, empty registry: nothing to skip or mount, and skopeo's blob
  // cache cannot mount from an earlier run's repository (another port, another registry).
  const runs = await repeat(async (n) => {
    const ours = await startTargetRegistry(`copy-target-ours-${n}`);
    const s = await sh(`node ${cli} copy -q ${ref} ${ours.host}/bench/debian:v1`);
    await ours.stop();
    const theirs = await startTargetRegistry(`copy-target-skopeo-${n}`);
    const k = await sh(`skopeo copy -q --src-tls-verify=false --dest-tls-verify=false --preserve-digests docker://${ref} docker://${theirs.host}/bench/debian:v1`);
    await theirs.stop();
    return { s, k };
  });
  const s = timedRow({ case: 'copy 1 GB image to another registry', link: 'loopback', subject: 'stargz-get copy' }, runs, (r) => r.s.seconds, { rssMB: (r) => r.s.rssMB });
  const k = timedRow({ case: 'copy 1 GB image to another registry', link: 'loopback', subject: 'skopeo copy' }, runs, (r) => r.k.seconds, { rssMB: (r) => r.k.rssMB });
  check('copy peak RSS ≤ 150 MB', `${fmt(s.rssMB!, 0)} MB (skopeo ${fmt(k.rssMB!, 0)} MB)`, s.rssMB! <= 150);
  check('copy time vs skopeo copy', `${fmt(s.seconds, 1)} s vs ${fmt(k.seconds, 1)} s (${fmt(s.seconds / k.seconds, 2)}×)`, null);
}

// ---------- issue 11: sync over an existing DEST (delta, identical re-sync, resume) ----------
// Kept in one function with its own rows, apart from the other cases, so that edits to those merge cleanly.

async function syncInto(ref: string, dest: string, cache: string, extra = ''): Promise<{ seconds: number; fetched: number }> {
  const statsFile = join(work, 'sync-reuse-stats.json');
  const r = await sh(`node ${cli} sync -q --plain-http --cache-dir ${cache} ${extra} ${ref} ${dest}`, { STARGZ_GET_STATS_FILE: statsFile });
  return { seconds: r.seconds, fetched: (JSON.parse(readFileSync(statsFile, 'utf8')) as SyncStats).blobBytesReceived };
}

async function syncReuseCases(host: string, wan: Link): Promise<void> {
  const out = join(work, 'out-syncreuse');
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  const fresh = (name: string): string => {
    const d = join(out, name);
    rmSync(d, { recursive: true, force: true });
    return d;
  };

  // a. Delta v1 -> v2 with an empty cache over the WAN link: the test fixture pair (one file
  //    rewritten, one changed in one chunk, one added, one removed), against a cold v2 sync.
  for (const v of ['1', '2']) {
    await sh(`skopeo copy -q --dest-tls-verify=false --preserve-digests oci:${join(root, 'test/fixtures/layouts', 'syncv' + v)}:v${v} docker://${host}/bench/syncfix:v${v}`);
  }
  const deltaRuns = await repeat(async () => {
    const deltaDest = fresh('delta');
    await syncInto(`${host}/bench/syncfix:v1`, deltaDest, fresh('cache-delta-v1'));
    const delta = await linkBytesDuring(wan, () => syncInto(`${wan.host}/bench/syncfix:v2`, deltaDest, fresh('cache-delta-v2'), '--delete'));
    const coldV2 = await linkBytesDuring(wan, () => syncInto(`${wan.host}/bench/syncfix:v2`, fresh('delta-cold'), fresh('cache-delta-cold')));
    return { delta, coldV2 };
  });
  const deltaBytes = timedRow({ case: 'sync v1→v2 (fixture)', link: 'wan', subject: 'stargz-get onto v1 DEST, empty cache' }, deltaRuns, (r) => r.delta.result.seconds, { bytes: (r) => r.delta.bytes }).bytes!;
  const coldV2Bytes = timedRow({ case: 'sync v1→v2 (fixture)', link: 'wan', subject: 'stargz-get cold' }, deltaRuns, (r) => r.coldV2.result.seconds, { bytes: (r) => r.coldV2.bytes }).bytes!;
  check('delta v1→v2 onto v1 DEST fetches ≤ 0.35× a cold sync', `${fmt(deltaBytes / coldV2Bytes)}×`, deltaBytes <= 0.35 * coldV2Bytes);

  // b. Identical re-sync of /usr/bin (loopback), default (sha256) and --quick, against
  //    `rsync -a` between the same two identical trees, measured in turn, and the floor under
  //    both stargz-get runs: node and the CLI starting and opening the image from cached TOCs
  //    (an `ls` of the path, which does nothing else).
  const bin = fresh('usrbin');
  const binCache = fresh('cache-usrbin');
  await syncInto(`${host}/bench/debian:v1/usr/bin`, bin, binCache);
  const haveRsync = await sh('command -v rsync').then(() => true, () => false);
  const copy = fresh('usrbin-copy');
  if (haveRsync) await sh(`cp -a ${bin} ${copy}`);
  const resyncRuns = await repeat(async () => ({
    again: await syncInto(`${host}/bench/debian:v1/usr/bin`, bin, binCache),
    quick: await syncInto(`${host}/bench/debian:v1/usr/bin`, bin, binCache, '--quick'),
    floor: (await sh(`node ${cli} ls --plain-http --cache-dir ${binCache} ${host}/bench/debian:v1/usr/bin > /dev/null`)).seconds,
    rsync: haveRsync ? (await sh(`rsync -a ${bin}/ ${copy}/`)).seconds : 0,
  }));
  timedRow({ case: 'identical re-sync /usr/bin', link: 'loopback', subject: 'stargz-get (sha256 check)' }, resyncRuns, (r) => r.again.seconds, { bytes: (r) => r.again.fetched });
  const quick = timedRow({ case: 'identical re-sync /usr/bin', link: 'loopback', subject: 'stargz-get --quick' }, resyncRuns, (r) => r.quick.seconds, { bytes: (r) => r.quick.fetched });
  const floor = timedRow({ case: 'identical re-sync /usr/bin', link: 'loopback', subject: 'floor: stargz-get ls of the path (start + open image)' }, resyncRuns, (r) => r.floor);
  if (haveRsync) {
    const rs = timedRow({ case: 'identical re-sync /usr/bin', link: 'loopback', subject: 'rsync -a' }, resyncRuns, (r) => r.rsync);
    check('identical re-sync --quick ≤ 10× rsync -a', `${fmt(quick.seconds / rs.seconds, 1)}× (${fmt(quick.seconds)} s vs ${fmt(rs.seconds)} s; the floor alone ${fmt(floor.seconds / rs.seconds, 1)}×)`, quick.seconds <= 10 * rs.seconds);
  } else check('identical re-sync --quick ≤ 10× rsync -a', 'rsync not installed', null);

  // c. Resume after SIGKILL half-way over the WAN link: bytes of both runs against one cold sync.
  const resumeRuns = await repeat(async () => {
    const { result: cold, bytes: coldBytes } = await linkBytesDuring(wan, () => syncInto(`${wan.host}/bench/debian:v1/usr/bin`, fresh('resume-cold'), fresh('cache-resume-cold')));
    const resumeDest = fresh('resume');
    const resumeCache = fresh('cache-resume');
    const { bytes: killedBytes } = await linkBytesDuring(wan, async () => {
      const child = spawn('node', [cli, 'sync', '-q', '--plain-http', '--cache-dir', resumeCache, `${wan.host}/bench/debian:v1/usr/bin`, resumeDest], { stdio: 'ignore' });
      children.push(child);
      const exited = new Promise((r) => child.on('close', r));
      await new Promise((r) => setTimeout(r, (cold.seconds * 1000) / 2));
      child.kill('SIGKILL');
      await exited;
    });
    const { result: resumed, bytes: resumedBytes } = await linkBytesDuring(wan, () => syncInto(`${wan.host}/bench/debian:v1/usr/bin`, resumeDest, resumeCache));
    return { cold, coldBytes, resumed, bothBytes: killedBytes + resumedBytes };
  });
  const coldBytes = timedRow({ case: 'resume /usr/bin after SIGKILL', link: 'wan', subject: 'stargz-get cold' }, resumeRuns, (r) => r.cold.seconds, { bytes: (r) => r.coldBytes }).bytes!;
  const bothBytes = timedRow({ case: 'resume /usr/bin after SIGKILL', link: 'wan', subject: 'stargz-get killed + resumed' }, resumeRuns, (r) => r.resumed.seconds, { bytes: (r) => r.bothBytes }).bytes!;
  check('resume after kill: both runs ≤ 1.15× one cold sync', `${fmt(bothBytes / coldBytes)}×`, bothBytes <= 1.15 * coldBytes);
  rmSync(out, { recursive: true, force: true });
}

async function mount(host: string, repo: string, dir: string, cacheDir: string): Promise<number> {
  mkdirSync(dir, { recursive: true });
  const r = await sh(`node ${cli} mount -d --plain-http --prefetch none --cache-dir ${cacheDir} ${host}/${repo}:v1 ${dir}`);
  mounts.push(dir);
  return r.seconds;
}

async function umount(dir: string): Promise<void> {
  await run('node', [cli, 'umount', dir]).catch(() => run('fusermount', ['-u', dir]).catch(() => undefined));
  mounts.splice(mounts.indexOf(dir), 1);
}

async function mountCases(host: string, wan: Link, largestBin: VNode): Promise<void> {
  const mnt = join(work, 'mnt');
  const binPath = largestBin.path;
  const fresh = (name: string): string => {
    const d = join(work, name);
    rmSync(d, { recursive: true, force: true });
    return d;
  };
  // Mount of the 1 GB image: manifest + TOCs only; then reads through it, each run on an empty cache.
  const first = await repeat(async () => {
    const t = await mount(host, 'bench/debian', mnt, fresh('cache-mount'));
    const tarBin = await sh(`tar -C ${mnt} -cf - usr/bin | wc -c`);
    const warmRead = await sh(`cat ${mnt}${binPath} > /dev/null`);
    const seq = (await dropCaches()) ? await sh(`cat ${mnt}${binPath} > /dev/null`) : undefined;
    await umount(mnt);
    return { t, tarBin, warmRead, seq };
  });
  const t = timedRow({ case: 'mount (manifest + TOCs)', link: 'loopback', subject: 'stargz-get' }, first, (r) => r.t).seconds;
  check('mount of the 1 GB image ≤ 220 ms', `${fmt(t * 1000, 0)} ms`, t <= 0.22);
  const tarBin = timedRow({ case: 'tar usr/bin | wc -c, cold', link: 'loopback', subject: 'stargz-get mount' }, first, (r) => r.tarBin.seconds, { bytes: (r) => Number(r.tarBin.stdout.trim()) });
  check('tar usr/bin through the mount, cold, loopback ≤ 3.0 s', `${fmt(tarBin.seconds)} s`, tarBin.seconds <= 3.0);
  const warmRead = timedRow({ case: `warm re-read ${binPath}`, link: 'loopback', subject: 'stargz-get mount' }, first, (r) => r.warmRead.seconds);
  check('warm re-read of the binary ≤ 25 ms', `${fmt(warmRead.seconds * 1000, 1)} ms`, warmRead.seconds <= 0.025);
  const seqRuns = first.flatMap((r) => (r.seq ? [r.seq.seconds] : []));
  if (seqRuns.length > 0) {
    const mbps = largestBin.inode.entry.size / MB / timing(seqRuns).seconds;
    check('warm sequential read, page cache dropped ≥ 500 MB/s', `${fmt(mbps, 0)} MB/s`, mbps >= 500);
  } else check('warm sequential read, page cache dropped ≥ 500 MB/s', 'cannot drop caches here', null);

  await warmOpens(host, 'bench/debian', mnt, join(work, 'cache-mount'), '1 GB image');

  // Cold read of the largest binary, loopback and WAN.
  const coldRuns = await repeat(async () => {
    await mount(host, 'bench/debian', mnt, fresh('cache-mount-bin'));
    const cold = await sh(`cat ${mnt}${binPath} > /dev/null`);
    await umount(mnt);
    return cold.seconds;
  });
  const cold = timedRow({ case: `cold read ${binPath}`, link: 'loopback', subject: 'stargz-get mount' }, coldRuns, (r) => r).seconds;
  check(`cold read of ${binPath} (${fmt(largestBin.inode.entry.size / MB, 0)} MB), loopback ≤ 1.5 s`, `${fmt(cold)} s`, cold <= 1.5);
  const compressedBin = largestBin.inode.entry.chunks.reduce((n, ch) => n + extentBytes(ch), 0);
  const wanRuns = await repeat(async () => {
    await mount(wan.host, 'bench/debian', mnt, fresh('cache-mount-bin'));
    const { result, bytes } = await linkBytesDuring(wan, () => sh(`cat ${mnt}${binPath} > /dev/null`));
    await umount(mnt);
    return { seconds: result.seconds, bytes };
  });
  const coldWan = timedRow({ case: `cold read ${binPath}`, link: 'wan', subject: 'stargz-get mount' }, wanRuns, (r) => r.seconds, { bytes: (r) => r.bytes });
  const bytes = Math.max(...wanRuns.map((r) => r.bytes));
  const bound = compressedBin / LINK_BYTES_PER_S;
  check('cold read of the binary over WAN ≤ 1.2× link-limited', `${fmt(coldWan.seconds / bound)}× (${fmt(coldWan.seconds)} s vs ${fmt(bound)} s)`, coldWan.seconds <= 1.2 * bound);
  check('bytes on the wire for cold reads ≤ 1.02× unique compressed bytes', `${fmt(bytes / compressedBin, 3)}× (most of ${wanRuns.length} runs)`, bytes <= 1.02 * compressedBin);

  // tar of usr/bin over the WAN link, cold.
  const img = await openImage(parseReference(`${host}/bench/debian:v1`), { cacheDir: join(work, 'probe-cache'), registry: { plainHttp: true } });
  let usrBinCompressed = 0;
  for (const n of img.fs.walk(img.fs.resolve('/usr/bin'))) for (const ch of n.children ? [] : n.inode.entry.chunks) usrBinCompressed += extentBytes(ch);
  await img.close();
  const tarWanRuns = await repeat(async () => {
    await mount(wan.host, 'bench/debian', mnt, fresh('cache-mount-wan'));
    const tarWan = await sh(`tar -C ${mnt} -cf - usr/bin | wc -c`);
    await umount(mnt);
    return tarWan.seconds;
  });
  const tarWan = timedRow({ case: 'tar usr/bin | wc -c, cold', link: 'wan', subject: 'stargz-get mount' }, tarWanRuns, (r) => r).seconds;
  const tarBound = usrBinCompressed / LINK_BYTES_PER_S;
  check('tar usr/bin through the mount over WAN ≤ 1.2× link-limited', `${fmt(tarWan / tarBound)}× (${fmt(tarWan)} s vs ${fmt(tarBound)} s)`, tarWan <= 1.2 * tarBound);

  // The many-files image: find, then tar of everything, cold.
  const manyRuns = await repeat(async () => {
    await mount(host, 'bench/many', mnt, fresh('cache-many'));
    const find = await sh(`find ${mnt} -type f | wc -l`);
    const tarMany = await sh(`tar -C ${mnt} -cf - . | wc -c`);
    const catSmall = await sh(`cat ${mnt}/usr/share/gocode/src/github.com/containerd/stargz-snapshotter/estargz/types.go > /dev/null`);
    await umount(mnt);
    return { find, tarMany, catSmall };
  });
  const find = timedRow({ case: `find -type f (${manyRuns[0]!.find.stdout.trim()} files)`, link: 'loopback', subject: 'stargz-get mount' }, manyRuns, (r) => r.find.seconds).seconds;
  check('find MOUNT -type f on the many-files image ≤ 400 ms', `${fmt(find * 1000, 0)} ms`, find <= 0.4);
  const tarMany = timedRow({ case: 'tar . | wc -c (many files), cold', link: 'loopback', subject: 'stargz-get mount' }, manyRuns, (r) => r.tarMany.seconds, { bytes: (r) => Number(r.tarMany.stdout.trim()) }).seconds;
  check('tar of the many-files mount, cold ≤ 8 s', `${fmt(tarMany)} s`, tarMany <= 8);
  timedRow({ case: 'cat a small file, warm', link: 'loopback', subject: 'stargz-get mount' }, manyRuns, (r) => r.catSmall.seconds);
  await warmOpens(host, 'bench/many', mnt, join(work, 'cache-many'), 'many-files image');
}

/**
 * `mount -d` and `ls /` again on the cache an earlier case left (issue 13): one manifest request,
 * then the stored merged tree; no layer index is decoded until a read needs it.
 */
async function warmOpens(host: string, repo: string, mnt: string, cache: string, image: string): Promise<void> {
  const warm = await repeat(async () => {
    const mountSeconds = await mount(host, repo, mnt, cache);
    await umount(mnt);
    const lsSeconds = (await sh(`node ${cli} ls --plain-http --cache-dir ${cache} ${host}/${repo}:v1/ > /dev/null`)).seconds;
    return { mountSeconds, lsSeconds };
  });
  for (const [name, pick] of [[`mount -d, warm cache (${image})`, (r: (typeof warm)[number]) => r.mountSeconds], [`ls /, warm cache (${image})`, (r: (typeof warm)[number]) => r.lsSeconds]] as const) {
    const m = timedRow({ case: name, link: 'loopback', subject: 'stargz-get' }, warm, pick).seconds;
    check(`${name} ≤ 150 ms`, `${fmt(m * 1000, 0)} ms`, m <= 0.15);
  }
}

/** The machine a run measured, for the README table (scripts/bench-table.mjs). */
function machine(): Record<string, unknown> {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const fs = ((): { type: string; device: string } => {
    try {
      const [device, type] = execFileSync('findmnt', ['-no', 'SOURCE,FSTYPE', '-T', work], { encoding: 'utf8' }).trim().split(/\s+/);
      return { type: type ?? 'unknown', device: device ?? 'unknown' };
    } catch {
      return { type: 'unknown', device: 'unknown' };
    }
  })();
  return {
    cpu: cpuinfo.match(/model name\s*:\s*(.*)/)?.[1] ?? 'unknown CPU',
    cores: (cpuinfo.match(/^processor/gm) ?? []).length,
    memGiB: Math.round(Number(readFileSync('/proc/meminfo', 'utf8').match(/MemTotal:\s+(\d+)/)?.[1]) / 1024 / 1024),
    filesystem: fs.type,
    filesystemDevice: fs.device,
    kernel: readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim(),
    node: process.version,
  };
}

/** 1, 5 and 15 minute load averages, rounded. */
const load = (): number[] => loadavg().map((l) => Math.round(l * 100) / 100);
const loadAtStart = load();
const startedAt = new Date();

/** "1.234 (1.100–1.500)": the median and the range of a timed row; a computed bound alone. */
function secondsCell(r: Pick<Row, 'seconds' | 'min' | 'max' | 'runs'>): string {
  if (r.runs === undefined || r.runs === 1) return fmt(r.seconds, 3);
  return `${fmt(r.seconds, 3)} (${fmt(r.min!, 3)}–${fmt(r.max!, 3)})`;
}

function printTable(): void {
  const lines: string[] = [];
  lines.push(`| case | link | subject | seconds, median of ${RUNS} (min–max) | MiB | requests | peak RSS MB |`);
  lines.push('|---|---|---|---:|---:|---:|---:|');
  for (const r of rows) {
    lines.push(`| ${r.case} | ${r.link} | ${r.subject} | ${secondsCell(r)} | ${r.bytes !== undefined ? fmt(r.bytes / MB, 2) : ''} | ${r.requests ?? ''} | ${r.rssMB !== undefined ? fmt(r.rssMB, 0) : ''} |`);
  }
  lines.push('');
  lines.push('| target | measured | met |');
  lines.push('|---|---|---|');
  for (const v of verdicts) lines.push(`| ${v.target} | ${v.measured} | ${v.met === null ? 'n/a' : v.met ? 'yes' : '**no**'} |`);
  const table = lines.join('\n');
  process.stdout.write(table + '\n');
  const resultFile = join(root, 'bench-results.json');
  const results = {
    date: startedAt.toISOString(),
    finished: new Date().toISOString(),
    runs: RUNS,
    cases: only ? [...only] : 'all',
    machine: machine(),
    load: { start: loadAtStart, end: load() },
    rows,
    verdicts,
  };
  writeFileSync(resultFile, JSON.stringify(results, null, 2));
  log(`wrote ${resultFile}`);
}

async function cleanup(): Promise<void> {
  for (const m of [...mounts]) await umount(m);
  for (const c of children) c.kill('SIGTERM');
}

main()
  .catch((err: unknown) => {
    log(`failed: ${err instanceof Error ? err.stack : String(err)}`);
    process.exitCode = 1;
  })
  .finally(() => cleanup());
