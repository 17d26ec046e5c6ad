/**
 * The four canonical epoch-domain patterns (the ZNS-Slab allocator's examples/domain_usage.c), each a
 * function that runs against a store and returns what it observed. The test suite runs them
 * and checks the observations; `node dist/examples/domain_usage.js [dir]` runs them on a fresh
 * store and prints the observations as JSON.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { EpochState } from '../engine/epoch.js';
import { openStore, type Store } from '../engine/store.js';
import { ErrorCode, ZnsSlabError } from '../errors.js';

function isStale(store: Store, handle: bigint): boolean {
  try {
    store.get(handle);
    return false;
  } catch (err) {
    if (err instanceof ZnsSlabError && err.code === ErrorCode.STALE_HANDLE) return true;
    throw err;
  }
}

/**
 * 1. Request-scoped allocation (the web request). Everything the request allocates goes to its
 * own epoch with no epoch argument, across awaits; when the request ends, its epoch closes.
 */
export async function requestScoped(store: Store) {
  const zonesBefore = store.statsGlobal().zones.owned;
  const handles: bigint[] = [];
  let sawOwnDomain = true;
  let epoch: number;
  {
    using request = store.epochDomainCreate();
    epoch = request.epoch;
    await request.run(async () => {
      for (let i = 0; i < 50; i++) {
        handles.push(store.put(Buffer.from(`session ${i}: ${'x'.repeat(i * 10)}`)));
        if (i % 10 === 0) await sleep(1); // the request awaits I/O; its domain follows it
        sawOwnDomain &&= store.epochDomainCurrent() === request;
      }
      sawOwnDomain &&= store.statsEpoch(request.epoch).liveObjects === 50;
      sawOwnDomain &&= handles.every((h, i) => store.get(h).toString().startsWith(`session ${i}:`));
    });
  } // disposed here; the last exit (end of run) already closed it
  return {
    epoch,
    objects: handles.length,
    sawOwnDomain,
    epochState: store.epochState(epoch),
    handlesStale: handles.filter((h) => isStale(store, h)).length,
    zonesBefore,
    zonesAfter: store.statsGlobal().zones.owned,
  };
}

/**
 * 2. Reusable frame domain (game engine / render loop). One manual domain over a long-lived
 * epoch: every frame enters, allocates, frees the previous frame's scratch, and exits; the
 * domain is never closed by exiting, and the emptied in-memory slab is reused frame after frame.
 */
export function reusableFrame(store: Store) {
  const levelEpoch = store.epochCurrent();
  const hotBefore = store.statsGlobal().counters.slabsReusedHot;
  const slabsBefore = store.statsGlobal().counters.slowPathCacheMiss;
  using frames = store.epochDomainWrap(levelEpoch);
  // Level data is bigger than frame scratch, so it sits in another size class's slab.
  const levelData = Buffer.concat([Buffer.from('level geometry, kept across frames'), Buffer.alloc(2000)]);
  const level = frames.run(() => store.put(levelData));
  let scratch: bigint[] = [];
  const FRAMES = 60;
  for (let frame = 0; frame < FRAMES; frame++) {
    frames.run(() => {
      for (const h of scratch) store.free(h);
      scratch = Array.from({ length: 100 }, (_, i) => store.put(Buffer.alloc(48, (frame + i) & 0xff)));
    });
  }
  const afterLoop = {
    epochState: store.epochState(levelEpoch),
    refCount: frames.refCount,
    levelReadable: store.get(level).equals(levelData),
    slabsReusedHot: store.statsGlobal().counters.slabsReusedHot - hotBefore,
    newSlabs: store.statsGlobal().counters.slowPathCacheMiss - slabsBefore,
  };
  // Level end: explicit reclamation of everything the level allocated.
  frames.forceClose();
  return { frames: FRAMES, ...afterLoop, closedAtLevelEnd: store.epochState(levelEpoch) === EpochState.CLOSED, levelStale: isStale(store, level) };
}

/**
 * 3. Nested domains (transaction + query scopes). Each query gets a domain inside the
 * transaction's; its scratch is gone when the query ends, while the transaction's records live
 * until the transaction ends.
 */
export async function nestedDomains(store: Store) {
  const queries: { scratchStaleAfterQuery: boolean; txRecordAlive: boolean; innerWasCurrent: boolean }[] = [];
  let txRecord = 0n;
  let outerRestored = true;
  let txEpoch: number;
  {
    using tx = store.epochDomainCreate();
    txEpoch = tx.epoch;
    await tx.run(async () => {
      txRecord = store.put(Buffer.from('transaction record'));
      for (let q = 0; q < 3; q++) {
        let scratch = 0n;
        let innerWasCurrent = false;
        {
          using query = store.epochDomainCreate();
          await query.run(async () => {
            scratch = store.put(Buffer.alloc(4000, q)); // a sort buffer, say
            await sleep(1);
            innerWasCurrent = store.epochDomainCurrent() === query;
          });
        }
        outerRestored &&= store.epochDomainCurrent() === tx;
        queries.push({ scratchStaleAfterQuery: isStale(store, scratch), txRecordAlive: store.get(txRecord).toString() === 'transaction record', innerWasCurrent });
      }
    });
  }
  return { queries, outerRestored, txEpochState: store.epochState(txEpoch), txRecordStaleAfterTx: isStale(store, txRecord) };
}

/**
 * 4. Explicit lifetime control (batch processing). The batch holds its domain open across
 * chunks with one long-lived scope, spills to the device, and reclaims everything at once with
 * forceClose; other data is untouched.
 */
export async function batchProcessing(store: Store) {
  const keep = store.put(Buffer.from('not part of the batch'));
  const resetsBefore = store.statsGlobal().counters.zoneResets;
  const batch = store.epochDomainCreate();
  const holder = batch.enter(); // the batch owns its lifetime, not its chunks
  const results: bigint[] = [];
  for (let chunk = 0; chunk < 8; chunk++) {
    await batch.run(async () => {
      for (let i = 0; i < 20; i++) results.push(store.put(Buffer.alloc(30_000, chunk)));
      await sleep(0);
    });
  }
  const beforeClose = {
    epochState: store.epochState(batch.epoch),
    zonesOwned: store.statsEpoch(batch.epoch).zones,
    resultsReadable: results.every((h, k) => store.get(h)[0] === Math.floor(k / 20)),
  };
  batch.forceClose(); // explicit reclamation trigger
  holder.exit(); // leaving a force-closed domain is fine
  return {
    ...beforeClose,
    closed: batch.closed,
    zonesReset: store.statsGlobal().counters.zoneResets - resetsBefore,
    resultsStale: results.filter((h) => isStale(store, h)).length,
    otherDataIntact: store.get(keep).toString() === 'not part of the batch',
  };
}

async function main(): Promise<void> {
  const dir = process.argv[2] ?? fs.mkdtempSync(path.join(os.tmpdir(), 'zns-slab-domains-'));
  const store = openStore(dir, { geometry: { zoneCount: 64, zoneSize: 1 << 20, zoneCapacity: 1 << 20, maxOpenZones: 4, maxActiveZones: 4 } });
  try {
    const observed = {
      requestScoped: await requestScoped(store),
      reusableFrame: reusableFrame(store),
      nestedDomains: await nestedDomains(store),
      batchProcessing: await batchProcessing(store),
    };
    process.stdout.write(JSON.stringify(observed, (_, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2) + '\n');
  } finally {
    store.close();
    if (!process.argv[2]) fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) await main();
