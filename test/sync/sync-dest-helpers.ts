// Shared by the issue-11 sync tests (reuse, --delete, --dry-run, resume): the two-version
// fixture in a registry behind a byte-counting proxy, oracles of both, and tree walkers.
import { createHash } from 'node:crypto';
import { lstat, readFile, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { startRegistry, pushLayout, layoutPath, type TestRegistry } from '../helpers/registry.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { oracleUnpack, compareTrees, type TreeDiff } from '../helpers/oracle.js';
import { isTempName } from '../../src/sync/dest-path.js';

export interface SyncWorld {
  reg: TestRegistry;
  proxy: FaultProxy;
  oracle: { v1: string; v2: string };
  /** Compressed size of each version's layers (what a full pull fetches). */
  layerBytes: { v1: number; v2: number };
  close(): Promise<void>;
}

const suiteStart = Math.floor(Date.now() / 1000) - 5;

export async function startSyncWorld(work: string): Promise<SyncWorld> {
  const reg = await startRegistry({ mode: 'plain' });
  await pushLayout(reg, 'syncv1', 'fixtures/sync:v1');
  await pushLayout(reg, 'syncv2', 'fixtures/sync:v2', { tag: 'v2' });
  const proxy = await startFaultProxy(reg);
  const oracle = {
    v1: await oracleUnpack(reg, 'fixtures/sync:v1', join(work, 'oracle-v1')),
    v2: await oracleUnpack(reg, 'fixtures/sync:v2', join(work, 'oracle-v2')),
  };
  const layerBytes = { v1: await layoutLayerBytes('syncv1'), v2: await layoutLayerBytes('syncv2') };
  return {
    reg,
    proxy,
    oracle,
    layerBytes,
    close: async () => {
      await proxy.close();
      await reg.stop();
    },
  };
}

async function layoutLayerBytes(name: string): Promise<number> {
  const dir = layoutPath(name);
  const blob = (d: string) => join(dir, 'blobs', 'sha256', d.slice('sha256:'.length));
  const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
  const manifest = JSON.parse(await readFile(blob(index.manifests[0]!.digest), 'utf8')) as { layers: Array<{ size: number }> };
  return manifest.layers.reduce((n, l) => n + l.size, 0);
}

/** Differences from the oracle, but mtimes umoci took from its own clock (directories no layer lists). */
export async function diffFromOracle(expected: string, actual: string): Promise<TreeDiff[]> {
  const all = await compareTrees(expected, actual, {});
  return all.filter((d) => !(d.field === 'mtime' && typeof d.expected === 'number' && d.expected >= suiteStart));
}

/**
 * Root and every entry below it, with everything that can change: mtime, mode, owner, size,
 * content, target; with `withInodes` the inode, with `withCtimes` the ctime too (any write,
 * chmod, chown, utimes, xattr or link count change moves it: equal ctimes mean nothing was written).
 */
export async function treeState(root: string, withInodes = false, withCtimes = false): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const rootSt = await lstat(root, { bigint: true });
  out.set('.', `${rootSt.mode.toString(8)} ${rootSt.uid}:${rootSt.gid} ${rootSt.mtimeNs}${withCtimes ? ` ctime=${rootSt.ctimeNs}` : ''}`);
  const walk = async (dir: string, rel: string): Promise<void> => {
    for (const name of (await readdir(dir)).sort()) {
      const p = join(dir, name);
      const r = rel === '' ? name : `${rel}/${name}`;
      const st = await lstat(p, { bigint: true });
      let what = `${st.mode.toString(8)} ${st.uid}:${st.gid} ${st.mtimeNs}`;
      if (withInodes) what += ` ino=${st.ino}`;
      if (withCtimes) what += ` ctime=${st.ctimeNs}`;
      if (st.isFile()) what += ` ${st.size} ${createHash('sha256').update(await readFile(p)).digest('hex')}`;
      if (st.isSymbolicLink()) what += ` -> ${await readlink(p)}`;
      out.set(r, what);
      if (st.isDirectory()) await walk(p, r);
    }
  };
  await walk(root, '');
  return out;
}

/** Names below root that are sync temporaries. */
export async function temporariesIn(root: string): Promise<string[]> {
  const found: string[] = [];
  const walk = async (dir: string, rel: string): Promise<void> => {
    for (const ent of await readdir(dir, { withFileTypes: true })) {
      const r = rel === '' ? ent.name : `${rel}/${ent.name}`;
      if (isTempName(ent.name)) found.push(r);
      if (ent.isDirectory()) await walk(join(dir, ent.name), r);
    }
  };
  await walk(root, '');
  return found;
}
