// A separate process for the multi-process cache test (not a test file itself). It writes
// its own chunks and a set shared with the other workers, interleaved with reads of every
// chunk any worker writes, and checks each hit byte for byte. Prints a JSON summary.
// Usage: node cache-worker.js '{"dir":..., "maxBytes":..., "id":..., "workers":..., "rounds":..., "writeOnly"?: true}'
import { DiskCache } from '../../src/cache/disk-cache.js';
import { roundChunks } from './cache-fixtures.js';

interface WorkerArgs {
  dir: string;
  maxBytes: number;
  id: number;
  workers: number;
  rounds: number;
  /** Only write, never read: a process killed at a random moment is then killed mid-write. */
  writeOnly?: boolean;
}

async function main(): Promise<void> {
  const args = JSON.parse(process.argv[2]!) as WorkerArgs;
  const cache = DiskCache.open({ dir: args.dir, maxBytes: args.maxBytes });
  let hits = 0;
  let misses = 0;
  let writes = 0;
  for (let r = 0; r < args.rounds; r++) {
    await Promise.all(roundChunks(args.id, r).map((c) => cache.writeChunk(c.digest, c.data)));
    writes += 3;
    if (args.writeOnly) continue;
    // Read what every worker should have written by now (they run at different speeds, so
    // some are not there yet, and with a small maxBytes some are evicted: both are misses).
    for (let w = 0; w < args.workers; w++) {
      for (const c of roundChunks(w, Math.max(0, r - 1))) {
        const got = await cache.readChunk(c.digest);
        if (got === undefined) misses++;
        else if (!got.equals(c.data)) throw new Error(`worker ${args.id}: wrong bytes for ${c.digest}`);
        else hits++;
      }
    }
    if (r % 10 === 0) cache.info();
  }
  cache.close();
  process.stdout.write(JSON.stringify({ id: args.id, hits, misses, writes }) + '\n');
}

main().catch((err: unknown) => {
  process.stderr.write(`worker failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
