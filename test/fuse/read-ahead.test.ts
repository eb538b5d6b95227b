import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReadAhead, type ByteRange } from '../../src/fuse/read-ahead.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const opts = { initialWindow: 512 * KiB, maxWindow: 4 * MiB, slack: 256 * KiB, eagerLength: 1 * MiB };

/** Feeds sequential 128 KiB reads through [0, size) and returns what was asked ahead. */
function sequential(ra: ReadAhead, size: number): ByteRange[] {
  const out: ByteRange[] = [];
  for (let at = 0; at < size; at += 128 * KiB) {
    const r = ra.onRead(at, 128 * KiB);
    if (r) out.push(r);
  }
  return out;
}

test('sequential reads fetch ahead in growing, non-overlapping windows that cover the file', () => {
  const size = 20 * MiB;
  const ranges = sequential(new ReadAhead(size, opts), size);
  // The first read alone fetches nothing ahead; the second one starts the run.
  assert.deepEqual(ranges[0], { offset: 256 * KiB, length: 512 * KiB });
  for (let i = 1; i < ranges.length; i++) {
    assert.equal(ranges[i]!.offset, ranges[i - 1]!.offset + ranges[i - 1]!.length, 'contiguous, no byte asked twice');
    assert.ok(ranges[i]!.length <= opts.maxWindow);
  }
  const last = ranges[ranges.length - 1]!;
  assert.equal(last.offset + last.length, size, 'up to the end of the file, not beyond');
  // Far fewer fetches than the 160 kernel reads, and they grow to big requests.
  assert.ok(ranges.length < 15, `${ranges.length} read-aheads`);
  assert.ok(Math.max(...ranges.map((r) => r.length)) >= 2 * MiB);
});

test('a lone small read at the start (file, head) fetches nothing ahead; a big one starts at once', () => {
  const ra = new ReadAhead(100 * MiB, opts);
  assert.equal(ra.onRead(0, 16 * KiB), undefined);
  assert.equal(ra.onRead(90 * MiB, 4 * KiB), undefined, 'then a seek');
  const eager = new ReadAhead(100 * MiB, { ...opts, eagerLength: 128 * KiB });
  assert.deepEqual(eager.onRead(0, 128 * KiB), { offset: 128 * KiB, length: 512 * KiB });
  assert.equal(new ReadAhead(100 * MiB, { ...opts, eagerLength: 128 * KiB }).onRead(4 * KiB, 128 * KiB), undefined, 'not at offset 0');
});

test('random reads do not fetch ahead; a new sequential run starts small again', () => {
  const ra = new ReadAhead(100 * MiB, opts);
  ra.onRead(0, 128 * KiB);
  assert.ok(ra.onRead(128 * KiB, 128 * KiB));
  assert.equal(ra.onRead(50 * MiB, 4 * KiB), undefined, 'a seek');
  assert.equal(ra.onRead(10 * MiB, 4 * KiB), undefined, 'another seek');
  const again = ra.onRead(10 * MiB + 4 * KiB, 128 * KiB);
  assert.deepEqual(again, { offset: 10 * MiB + 132 * KiB, length: 512 * KiB });
});

test('reads arriving slightly out of order still count as sequential', () => {
  const ra = new ReadAhead(100 * MiB, opts);
  ra.onRead(0, 128 * KiB);
  ra.onRead(256 * KiB, 128 * KiB); // the kernel sent the later read first
  ra.onRead(128 * KiB, 128 * KiB);
  const next = ra.onRead(384 * KiB, 128 * KiB);
  assert.ok(next, 'the run continues');
});

test('nothing is fetched past the end of the file, and bad windows are refused', () => {
  const ra = new ReadAhead(600 * KiB, opts);
  assert.equal(ra.onRead(0, 128 * KiB), undefined);
  assert.deepEqual(ra.onRead(128 * KiB, 128 * KiB), { offset: 256 * KiB, length: 344 * KiB });
  assert.equal(ra.onRead(256 * KiB, 128 * KiB), undefined);
  assert.equal(ra.onRead(512 * KiB, 128 * KiB), undefined);
  assert.throws(() => new ReadAhead(1, { initialWindow: 0, maxWindow: 1, slack: 0, eagerLength: 1 }), RangeError);
  assert.throws(() => new ReadAhead(1, { initialWindow: 4, maxWindow: 2, slack: 0, eagerLength: 1 }), RangeError);
});
