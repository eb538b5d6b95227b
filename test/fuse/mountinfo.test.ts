import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isFuse, parseMountinfo } from '../../src/mount/mountinfo.js';
import { errnoFor, Errno } from '../../src/fuse/errno.js';
import { mountName } from '../../src/mount/mount-records.js';
import { ErrorCodes, StargzError } from '../../src/errors.js';

const SAMPLE = [
  '22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/vda rw',
  '98 22 0:45 / /tmp/a\\040dir rw,nosuid,nodev,relatime shared:50 - fuse.stargz-get 127.0.0.1:5000/repo:v1 ro,user_id=0,group_id=0',
  '99 22 0:46 / /mnt/x rw - fuse /dev/fuse rw',
  'garbage line',
  '',
].join('\n');

test('parseMountinfo reads mount points (octal escapes undone), types and sources', () => {
  const entries = parseMountinfo(SAMPLE);
  assert.equal(entries.length, 3);
  assert.deepEqual(entries[1], { mountPoint: '/tmp/a dir', fsType: 'fuse.stargz-get', source: '127.0.0.1:5000/repo:v1', options: 'rw,nosuid,nodev,relatime' });
  assert.equal(isFuse(entries[0]!), false);
  assert.equal(isFuse(entries[1]!), true);
  assert.equal(isFuse(entries[2]!), true);
});

test('errors map to errnos: not found is ENOENT, anything about bytes is EIO', () => {
  assert.equal(errnoFor(new StargzError(ErrorCodes.PATH_NOT_FOUND, 'x')), Errno.ENOENT);
  for (const code of [ErrorCodes.REGISTRY_UNREACHABLE, ErrorCodes.DIGEST_MISMATCH, ErrorCodes.TIMEOUT, ErrorCodes.ABORTED, ErrorCodes.OFFLINE_MISS, ErrorCodes.CORRUPT_DATA]) {
    assert.equal(errnoFor(new StargzError(code, 'x')), Errno.EIO, code);
  }
});

test('mountName is file-name safe and tells mountpoints apart', () => {
  const a = mountName('/mnt/img');
  assert.match(a, /^mnt_img-[0-9a-f]{8}$/);
  assert.notEqual(mountName('/mnt/img'), mountName('/mnt_img'));
  assert.doesNotMatch(mountName('/a/../b c/ü'), /[/ ]/);
  assert.ok(mountName('/' + 'x'.repeat(500)).length < 100);
});
