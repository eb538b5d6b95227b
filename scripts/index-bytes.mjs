// Bytes the layer index retains per TOC entry, for a realistic entry mix (run with
// node --expose-gc scripts/index-bytes.mjs [N]): 70% one-chunk files (file and chunk digest),
// 5% files of 4 chunks, 15% directories, 10% symlinks, paths like a distro's /usr.
// Prints the heap the index holds after a full GC, per entry, and the merged VFS on top.
import { buildLayerIndex } from '../dist/src/estargz/index.js';
const N = Number(process.argv[2] ?? 200_000);
const gc = globalThis.gc;

export function synthTocEntries(n) {
  const entries = [];
  let off = 100;
  const hex = (i) => i.toString(16).padStart(64, '0');
  let dirs = 0;
  let dir = 'usr/lib/python3/dist-packages/pkg0';
  for (let i = 0; i < n; i++) {
    const r = i % 20;
    const mt = '2024-05-01T12:00:00Z';
    if (r < 3) {
      dir = `usr/lib/python3/dist-packages/pkg${dirs++}`;
      entries.push({ name: dir + '/', type: 'dir', mode: 0o40755, uid: 0, gid: 0, userName: 'root', groupName: 'root', modtime: mt });
    } else if (r < 5) {
      entries.push({ name: `${dir}/link_${i}.py`, type: 'symlink', linkName: `../target_${i}.py`, mode: 0o120777, uid: 0, gid: 0, userName: 'root', groupName: 'root', modtime: mt });
    } else if (r === 5) {
      const size = 4 * 400_000;
      const name = `${dir}/big_${i}.so`;
      entries.push({ name, type: 'reg', size, mode: 0o100644, uid: 0, gid: 0, userName: 'root', groupName: 'root', modtime: mt, offset: off, chunkSize: 400_000, digest: 'sha256:' + hex(i), chunkDigest: 'sha256:' + hex(i + 1) });
      off += 1000;
      for (let c = 1; c < 4; c++) {
        entries.push({ name, type: 'chunk', offset: off, chunkOffset: c * 400_000, chunkSize: c === 3 ? 0 : 400_000, chunkDigest: 'sha256:' + hex(i + c + 1) });
        off += 1000;
      }
    } else {
      entries.push({ name: `${dir}/module_${i}.py`, type: 'reg', size: 2000, mode: 0o100644, uid: 0, gid: 0, userName: 'root', groupName: 'root', modtime: mt, offset: off, digest: 'sha256:' + hex(i), chunkDigest: 'sha256:' + hex(i) });
      off += 700;
    }
  }
  return { json: Buffer.from(JSON.stringify({ version: 1, entries })), end: off + 1000 };
}

if (process.argv[1] === new URL(import.meta.url).pathname) await main();

async function main() {
const { parseToc } = await import('../dist/src/estargz/index.js');
const { json, end } = synthTocEntries(N);
const footer = { compression: 'gzip', tocOffset: end, tocLength: 0 };
// Several full collections a turn apart: sweeping finishes, so heapUsed counts live objects only.
const heap = async () => {
  for (let i = 0; i < 4; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 20));
  }
  return process.memoryUsage().heapUsed;
};
const before = await heap();
let index = buildLayerIndex(parseToc(json), footer);
const after = await heap();
const count = index.entries.size;
console.log(JSON.stringify({ tocEntries: N, indexEntries: count, jsonBytes: json.length, bytesPerTocEntry: Math.round((after - before) / N), bytesPerIndexEntry: Math.round((after - before) / count) }));
if (process.argv.includes('--vfs')) {
  const { mergeLayers } = await import('../dist/src/vfs/merge.js');
  const layer = { index };
  const m0 = await heap();
  const merged = mergeLayers([layer]);
  const m1 = await heap();
  console.log(JSON.stringify({ vfsBytesPerNode: Math.round((m1 - m0) / merged.byPath.size), nodes: merged.byPath.size }));
  globalThis.keep = merged;
}
globalThis.keepIndex = index;
}
