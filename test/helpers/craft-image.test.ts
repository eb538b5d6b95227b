// craft-image's own check: rewriting every edge layer's TOC with no change (other than the
// TOC bytes being re-serialized) gives an image umoci and stargz-get both unpack to edge's tree.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { fixtureLayers } from '../estargz/fixture-layers.js';
import { pushCraftedImage, readToc, rewriteToc, writeLayout } from './craft-image.js';
import { startRegistry, pushLayout } from './registry.js';
import { oracleUnpack, compareTrees, formatDiffs } from './oracle.js';
import { tempDirFor } from './tmp.js';
import { runCli } from './cli.js';

test('an identity TOC rewrite keeps the image: same tree from umoci and from sync', async (t) => {
  const reg = await startRegistry({ mode: 'plain' });
  t.after(() => reg.stop());
  const work = await tempDirFor(t, 'craft-');
  const layers = fixtureLayers('edge').map((l) => {
    const out = rewriteToc(l.blob, () => {}, { serialize: (toc) => JSON.stringify(toc, null, 1) });
    assert.deepEqual(readToc(out.blob), readToc(l.blob));
    assert.notEqual(out.tocDigest, l.annotations['containerd.io/snapshot/stargz/toc.digest']);
    return out;
  });
  await writeLayout(join(work, 'layout'), { layers, tag: 'crafted' });
  await pushCraftedImage(reg, join(work, 'layout'), 'crafted/edge:v1');
  await pushLayout(reg, 'edge', 'fixtures/edge:v1');
  const expected = await oracleUnpack(reg, 'fixtures/edge:v1', join(work, 'oracle'));
  const crafted = await oracleUnpack(reg, 'crafted/edge:v1', join(work, 'oracle-crafted'));
  const dest = join(work, 'dest');
  const r = await runCli(['sync', '--plain-http', '--cache-dir', join(work, 'cache'), `${reg.host}/crafted/edge:v1`, dest]);
  assert.equal(r.code, 0, r.stderr);
  const opts = { ignoreDirMtime: true, ignoreEmptyXattrs: true };
  for (const tree of [crafted, dest]) {
    const d = await compareTrees(expected, tree, opts);
    assert.deepEqual(d, [], formatDiffs(d));
  }
});
