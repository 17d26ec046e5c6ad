/** The four canonical patterns of examples/domain_usage.ts, run and checked. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { batchProcessing, nestedDomains, requestScoped, reusableFrame } from '../../examples/domain_usage.js';
import type { Store } from '../../engine/store.js';
import { SMALL_GEOMETRY, storeFixture, type StoreFixture } from '../helpers/store.js';

let fx: StoreFixture;
let store: Store;
beforeEach(() => {
  fx = storeFixture({ ...SMALL_GEOMETRY, zoneCount: 64 });
  store = fx.open();
});
afterEach(() => {
  store.close();
  fx.cleanup();
});

describe('examples/domain_usage.ts', () => {
  it('1. request-scoped allocation: cleaned up when the request ends', async () => {
    const r = await requestScoped(store);
    expect(r).toMatchObject({ objects: 50, sawOwnDomain: true, epochState: 'CLOSED', handlesStale: 50 });
    expect(r.zonesAfter).toBe(r.zonesBefore);
  });

  it('2. reusable frame domain: one epoch across frames, its memory reused, closed at level end', () => {
    const r = reusableFrame(store);
    expect(r).toMatchObject({ frames: 60, epochState: 'ACTIVE', refCount: 0, levelReadable: true, closedAtLevelEnd: true, levelStale: true });
    expect(r.slabsReusedHot).toBeGreaterThanOrEqual(50); // frame scratch reuses one in-memory slab
    expect(r.newSlabs).toBeLessThanOrEqual(6); // a new slab only when a generation lease runs out
  });

  it('3. nested domains: query scratch gone after each query, the transaction record after the transaction', async () => {
    const r = await nestedDomains(store);
    expect(r.queries).toHaveLength(3);
    for (const q of r.queries) expect(q).toEqual({ scratchStaleAfterQuery: true, txRecordAlive: true, innerWasCurrent: true });
    expect(r).toMatchObject({ outerRestored: true, txEpochState: 'CLOSED', txRecordStaleAfterTx: true });
  });

  it('4. explicit lifetime control: the batch spills, forceClose resets its zones, other data intact', async () => {
    const r = await batchProcessing(store);
    expect(r).toMatchObject({ epochState: 'ACTIVE', resultsReadable: true, closed: true, resultsStale: 160, otherDataIntact: true });
    expect(r.zonesOwned).toBeGreaterThan(1);
    expect(r.zonesReset).toBe(r.zonesOwned);
  });
});
