import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import zlib from 'node:zlib';
import { ErrorCodes } from '../../src/errors.js';
import {
  inflateChunk,
  sha256Digest,
  verifyChunk,
  type LazyChunkRef as ChunkRef,
  type Footer,
  type LazyLayerIndex as LayerIndex,
} from '../../src/estargz/index.js';
import { esgzRefPath, fixturesDir } from '../helpers/paths.js';
import { fixtureLayers, openFixtureLayer, type FixtureLayer } from './fixture-layers.js';
import { rawZstdFrame } from './synth.js';

interface Opened {
  layer: FixtureLayer;
  footer: Footer;
  index: LayerIndex;
}

function open(l: FixtureLayer): Opened {
  const { footer, index } = openFixtureLayer(l);
  return { layer: l, footer, index };
}

async function readFile(o: Opened, chunks: readonly ChunkRef[], what: string): Promise<Buffer> {
  const parts = await Promise.all(
    chunks.map(async (c) => {
      const data = await inflateChunk(o.layer.blob.subarray(c.offset, c.end), o.footer.compression, c.innerOffset, c.size);
      assert.equal(data.length, c.size);
      verifyChunk(data, c.digest, `${what}@${c.fileOffset}`);
      return data;
    }),
  );
  return Buffer.concat(parts);
}

/** `esgz-ref digests` output: "<hex>  <name>" per line. */
function parseDigests(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^([0-9a-f]{64}) {2}(.*)$/.exec(line);
    if (m) out.set(m[2]!, 'sha256:' + m[1]);
  }
  return out;
}

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return 'no error';
}

describe('inflating every chunk of every file of the reference-made layers', () => {
  for (const name of ['edge', 'legacy', 'zstd']) {
    test(`${name}: whole-file sha256 equals the TOC digest and the esgz-ref digests`, async () => {
      for (const [i, l] of fixtureLayers(name).entries()) {
        const o = open(l);
        const reference = parseDigests(readFileSync(join(fixturesDir, 'digests', `${name}-layer${i}.txt`), 'utf8'));
        assert.ok(reference.size > 0);
        let checked = 0;
        for (const [path, e] of o.index.entries) {
          if (e.type !== 'reg' && e.type !== 'hardlink') continue;
          const data = await readFile(o, e.chunks, path);
          assert.equal(data.length, e.size, path);
          const actual = sha256Digest(data);
          assert.equal(actual, e.digest, `${path}: TOC digest`);
          assert.equal(actual, reference.get(path), `${path}: esgz-ref digest`);
          checked++;
        }
        // every file the reference reader lists (but the hidden landmarks) was checked
        const listed = [...reference.keys()].filter((p) => !p.endsWith('prefetch.landmark'));
        assert.equal(checked, listed.length, `${name} layer ${i}`);
      }
    });
  }

  test('the committed digests agree with a live esgz-ref run, when installed', (t) => {
    const tool = esgzRefPath;
    if (!tool) return t.skip('esgz-ref not installed');
    const dir = mkdtempSync(join(tmpdir(), 'esgz-digests-'));
    try {
      const l = fixtureLayers('edge')[0]!;
      const blob = join(dir, 'blob');
      writeFileSync(blob, l.blob);
      const res = spawnSync(tool, ['digests', '-in', blob], { encoding: 'utf8' });
      assert.equal(res.status, 0, res.stderr);
      assert.deepEqual(parseDigests(res.stdout), parseDigests(readFileSync(join(fixturesDir, 'digests', 'edge-layer0.txt'), 'utf8')));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('trailing data after the member is ignored; innerOffset slices the output', async () => {
    for (const name of ['edge', 'zstd']) {
      const o = open(fixtureLayers(name)[0]!);
      const c = o.index.entries.get('bin/tool')!.chunks[1]!;
      const exact = await inflateChunk(o.layer.blob.subarray(c.offset, c.end), o.footer.compression, 0, c.size);
      const trailing = await inflateChunk(o.layer.blob.subarray(c.offset), o.footer.compression, 0, c.size);
      assert.deepEqual(trailing, exact);
      const inner = await inflateChunk(o.layer.blob.subarray(c.offset, c.end), o.footer.compression, 100, 50);
      assert.deepEqual(inner, exact.subarray(100, 150));
    }
  });
});

describe('corrupt chunks', () => {
  test('a flipped byte anywhere in a chunk gives CORRUPT_DATA or DIGEST_MISMATCH', async () => {
    for (const name of ['edge', 'zstd']) {
      const o = open(fixtureLayers(name)[0]!);
      for (const path of ['bin/tool', 'etc/passwd']) {
        const c = o.index.entries.get(path)!.chunks[0]!;
        const original = o.layer.blob.subarray(c.offset, c.end);
        const step = Math.max(1, Math.floor(original.length / 150));
        for (let at = 0; at < original.length; at += step) {
          const bad = Buffer.from(original);
          bad[at]! ^= 0x5a;
          let result: string;
          try {
            const data = await inflateChunk(bad, o.footer.compression, c.innerOffset, c.size);
            verifyChunk(data, c.digest, path);
            // a flip in bytes the decoder never reads (gzip header mtime/OS, frame padding) is harmless
            assert.ok(data.equals(await inflateChunk(original, o.footer.compression, c.innerOffset, c.size)), `${name} ${path} byte ${at}`);
            result = 'ok';
          } catch (err) {
            result = (err as { code?: string }).code ?? String(err);
          }
          assert.ok(['ok', ErrorCodes.CORRUPT_DATA, ErrorCodes.DIGEST_MISMATCH].includes(result), `${name} ${path} byte ${at}: ${result}`);
        }
      }
    }
  });

  test('truncated or foreign data is CORRUPT_DATA', async () => {
    for (const name of ['edge', 'zstd']) {
      const o = open(fixtureLayers(name)[0]!);
      const c = o.index.entries.get('bin/tool')!.chunks[0]!;
      const member = o.layer.blob.subarray(c.offset, c.end);
      const z = o.footer.compression;
      assert.equal(await codeOf(inflateChunk(member.subarray(0, member.length >> 1), z, 0, c.size)), ErrorCodes.CORRUPT_DATA);
      assert.equal(await codeOf(inflateChunk(member.subarray(0, 3), z, 0, c.size)), ErrorCodes.CORRUPT_DATA);
      assert.equal(await codeOf(inflateChunk(Buffer.alloc(0), z, 0, c.size)), ErrorCodes.CORRUPT_DATA);
      assert.equal(await codeOf(inflateChunk(Buffer.alloc(4096), z, 0, c.size)), ErrorCodes.CORRUPT_DATA);
      assert.equal(await codeOf(inflateChunk(Buffer.alloc(4096, 0xff), z, 0, c.size)), ErrorCodes.CORRUPT_DATA);
      // the member holds fewer bytes than asked for
      assert.equal(await codeOf(inflateChunk(member, z, 0, c.size + 1_000_000)), ErrorCodes.CORRUPT_DATA);
    }
  });

  test('a wrong gzip CRC is CORRUPT_DATA', async () => {
    const member = zlib.gzipSync(Buffer.from('hello chunk'));
    const bad = Buffer.from(member);
    bad[bad.length - 8]! ^= 1;
    assert.equal((await inflateChunk(member, 'gzip', 0, 11)).toString(), 'hello chunk');
    assert.equal(await codeOf(inflateChunk(bad, 'gzip', 0, 11)), ErrorCodes.CORRUPT_DATA);
  });

  test('invalid extents are refused before inflating', async () => {
    const member = zlib.gzipSync(Buffer.from('x'));
    assert.equal(await codeOf(inflateChunk(member, 'gzip', -1, 1)), ErrorCodes.TOC_INVALID);
    assert.equal(await codeOf(inflateChunk(member, 'gzip', 0, 2 ** 60)), ErrorCodes.TOC_INVALID);
    assert.equal(await codeOf(inflateChunk(member, 'gzip', 0.5, 1)), ErrorCodes.TOC_INVALID);
  });
});

describe('hand-made members', () => {
  test('size 0 is an empty buffer', async () => {
    assert.equal((await inflateChunk(Buffer.alloc(0), 'gzip', 0, 0)).length, 0);
    assert.equal((await inflateChunk(Buffer.alloc(0), 'zstd', 0, 0)).length, 0);
  });

  test('gzip: files packed in one member; a long tail is not decoded', async () => {
    const a = Buffer.from('first file\n');
    const b = Buffer.from('second file\n');
    const tail = Buffer.alloc(2 * 1024 * 1024, 7);
    const member = zlib.gzipSync(Buffer.concat([a, b, tail]));
    assert.deepEqual(await inflateChunk(member, 'gzip', 0, a.length), a);
    assert.deepEqual(await inflateChunk(member, 'gzip', a.length, b.length), b);
    // the tail is damaged after the bytes we need: early stop does not see it
    const damaged = Buffer.concat([member.subarray(0, member.length - 20), Buffer.alloc(20)]);
    assert.deepEqual(await inflateChunk(damaged, 'gzip', a.length, b.length), b);
  });

  test('gzip: header fields (name, comment, extra, header CRC) are skipped', async () => {
    const data = Buffer.from('payload');
    const raw = zlib.deflateRawSync(data);
    const trailer = Buffer.alloc(8);
    trailer.writeUInt32LE(zlib.crc32(data), 0);
    trailer.writeUInt32LE(data.length, 4);
    const header = Buffer.concat([
      Buffer.from([0x1f, 0x8b, 8, 0x02 | 0x04 | 0x08 | 0x10, 0, 0, 0, 0, 0, 3]),
      Buffer.from([3, 0, 1, 2, 3]),
      Buffer.from('name\0comment\0'),
      Buffer.from([0xaa, 0xbb]),
    ]);
    assert.deepEqual(await inflateChunk(Buffer.concat([header, raw, trailer]), 'gzip', 0, data.length), data);
  });

  test('gzip: a large chunk (several output buffers)', async () => {
    const data = Buffer.alloc(70 * 1024 * 1024);
    for (let i = 0; i < data.length; i += 4096) data[i] = i & 0xff;
    const member = zlib.gzipSync(data, { level: 1 });
    const out = await inflateChunk(member, 'gzip', 0, data.length);
    assert.ok(out.equals(data));
  });

  test('zstd: a frame without content size is decoded in blocks and stops early', async () => {
    const data = Buffer.alloc(500_000);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 0xff;
    const frame = rawZstdFrame(data);
    assert.deepEqual(await inflateChunk(frame, 'zstd', 0, data.length), data);
    assert.deepEqual(await inflateChunk(frame, 'zstd', 1000, 10), data.subarray(1000, 1010));
    assert.deepEqual(await inflateChunk(Buffer.concat([frame, rawZstdFrame(Buffer.from('next'))]), 'zstd', 0, data.length), data);
    assert.equal(await codeOf(inflateChunk(frame, 'zstd', 0, data.length + 1)), ErrorCodes.CORRUPT_DATA);
  });

  test('zstd: refuses a frame whose window is absurd', async () => {
    const frame = rawZstdFrame(Buffer.from('abc'));
    frame[5] = 31 << 3; // window 2^41
    assert.equal(await codeOf(inflateChunk(frame, 'zstd', 0, 3)), ErrorCodes.CORRUPT_DATA);
  });

  test('zstd: multi-block compressed frames from the zstd CLI, when installed', async (t) => {
    const data = Buffer.alloc(3 * 1024 * 1024);
    for (let i = 0; i < data.length; i++) data[i] = (i % 251) ^ (i >> 12);
    const res = spawnSync('zstd', ['-q', '-c', '-3'], { input: data, maxBuffer: 64 * 1024 * 1024 });
    if (res.error || res.status !== 0) return t.skip('zstd CLI not available');
    assert.ok((await inflateChunk(res.stdout, 'zstd', 0, data.length)).equals(data));
    assert.deepEqual(await inflateChunk(res.stdout, 'zstd', 5, 100), data.subarray(5, 105));
  });
});

describe('verifyChunk and sha256Digest', () => {
  const data = Buffer.from('abc');
  const sha256 = 'sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad';

  test('sha256Digest', () => assert.equal(sha256Digest(data), sha256));

  test('matching, missing and mismatching digests', () => {
    verifyChunk(data, sha256, 'x');
    verifyChunk(data, undefined, 'x');
    verifyChunk(data, 'sha512:' + 'ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f', 'x');
    assert.throws(
      () => verifyChunk(Buffer.from('abd'), sha256, 'bin/tool chunk 3'),
      (err: { code?: string; message?: string }) =>
        err.code === ErrorCodes.DIGEST_MISMATCH && err.message!.includes('bin/tool chunk 3') && err.message!.includes(sha256),
    );
    assert.throws(() => verifyChunk(data, 'md5:900150983cd24fb0d6963f7d28e17f72', 'x'), { code: ErrorCodes.DIGEST_MISMATCH });
    assert.throws(() => verifyChunk(data, 'garbage', 'x'), { code: ErrorCodes.DIGEST_MISMATCH });
  });
});
