import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EpochDomain } from '../../engine/domain.js';
import { EpochState } from '../../engine/epoch.js';
import { LEASE_BATCH } from '../../engine/registry.js';
import type { Store } from '../../engine/store.js';
import { ErrorCode } from '../../errors.js';
import { ZoneCondition } from '../../zns/device.js';
import { SMALL_GEOMETRY, codeOf, storeFixture, type StoreFixture } from '../helpers/store.js';

let fx: StoreFixture;
let store: Store;
beforeEach(() => {
  fx = storeFixture();
  store = fx.open();
});
afterEach(() => {
  store.close();
  fx.cleanup();
});

const stale = (h: bigint) => codeOf(() => store.get(h)) === ErrorCode.STALE_HANDLE;

describe('epochDomainCreate: auto-closing', () => {
  it('allocates in its own epoch and closes it when the last user exits', () => {
    const d = store.epochDomainCreate();
    expect(d).toBeInstanceOf(EpochDomain);
    expect(d.epoch).not.toBe(store.epochCurrent());
    expect(store.epochState(d.epoch)).toBe(EpochState.ACTIVE);
    const outside = store.put(Buffer.from('current epoch'));
    const a = d.enter();
    const b = d.enter();
    const inside = d.run(() => store.put(Buffer.from('in the domain')));
    expect(store.statsEpoch(d.epoch).liveObjects).toBe(1);
    expect(d.refCount).toBe(2);
    a.exit();
    expect(d.closed).toBe(false);
    b.exit();
    expect(d.closed).toBe(true);
    expect(store.epochState(d.epoch)).toBe(EpochState.CLOSED);
    expect(stale(inside)).toBe(true);
    expect(store.get(outside).toString()).toBe('current epoch');
  });

  it('closes on dispose when nobody is inside, and at the last exit when somebody still is', async () => {
    let first: EpochDomain;
    {
      using d = store.epochDomainCreate();
      first = d;
      d.enter(); // then nobody calls exit: the domain stays open past its scope
    }
    expect(first.closed).toBe(false);
    first.exit();
    expect(first.closed).toBe(true);

    let second: EpochDomain;
    let pending: Promise<void>;
    {
      using d = store.epochDomainCreate();
      second = d;
      pending = d.run(async () => {
        await sleep(5);
        store.put(Buffer.from('late'));
      });
    } // disposed while run is still inside
    expect(second.closed).toBe(false);
    await pending;
    expect(second.closed).toBe(true);

    {
      using d = store.epochDomainCreate();
      first = d;
    }
    expect(first.closed).toBe(true);
  });

  it('resets the zones of a domain that spilled to the device, and gives the space back', () => {
    const owned = store.statsGlobal().zones.owned;
    const resetsBefore = store.statsGlobal().counters.zoneResets;
    const d = store.epochDomainCreate();
    let zones = 0;
    const hs = d.run(() => {
      const out = Array.from({ length: 30 }, (_, i) => store.put(Buffer.alloc(100_000, i)));
      zones = store.statsEpoch(d.epoch).zones;
      return out;
    });
    expect(zones).toBeGreaterThan(1); // full slabs were sealed to zones
    expect(d.closed).toBe(true); // run's exit was the last
    expect(store.statsGlobal().counters.zoneResets - resetsBefore).toBe(zones);
    expect(store.statsGlobal().zones.owned).toBe(owned);
    expect(hs.every(stale)).toBe(true);
  });

  it('is never persisted: flush skips it, and a reopen finds nothing of it', () => {
    const d = store.epochDomainCreate();
    const scope = d.enter();
    const h = d.run(() => store.put(Buffer.from('scoped')));
    const spilled = d.run(() => Array.from({ length: 12 }, () => store.put(Buffer.alloc(100_000))));
    store.flush();
    expect(store.get(h).toString()).toBe('scoped'); // still there while the domain lives
    const kept = store.put(Buffer.from('durable'));
    store.close(); // as a crash would: the domain never closed
    store = fx.open();
    expect(store.get(kept).toString()).toBe('durable');
    expect([ErrorCode.STALE_HANDLE, ErrorCode.INVALID_HANDLE]).toContain(codeOf(() => store.get(h)));
    expect([ErrorCode.STALE_HANDLE, ErrorCode.INVALID_HANDLE]).toContain(codeOf(() => store.get(spilled[0]!)));
    expect(store.statsGlobal().counters.recoveryZoneResets).toBeGreaterThan(0); // its spilled zones
    expect(store.device.reportZones().filter((z) => z.condition !== ZoneCondition.EMPTY).length).toBe(store.statsGlobal().zones.owned);
    void scope;
  });
});

describe('epochDomainWrap: manual control', () => {
  it('never closes on exit or dispose; forceClose does', () => {
    const e = store.epochCurrent();
    let h = 0n;
    {
      using d = store.epochDomainWrap(e);
      expect(d.autoClose).toBe(false);
      h = d.run(() => store.put(Buffer.from('frame')));
      using scope = d.enter();
      void scope;
    }
    expect(store.epochState(e)).toBe(EpochState.ACTIVE);
    expect(store.get(h).toString()).toBe('frame');
    const d = store.epochDomainWrap(e);
    expect(d.forceClose()).toBe(true);
    expect(d.forceClose()).toBe(false);
    expect(store.epochState(e)).toBe(EpochState.CLOSED);
    expect(stale(h)).toBe(true);
    expect(store.epochCurrent()).not.toBe(e); // closing the current epoch advanced first
  });

  it('refuses closed and unknown epochs', () => {
    expect(codeOf(() => store.epochDomainWrap(77))).toBe(ErrorCode.UNKNOWN_EPOCH);
    const e = store.epochCurrent();
    store.epochClose(e);
    expect(codeOf(() => store.epochDomainWrap(e))).toBe(ErrorCode.EPOCH_CLOSED);
  });
});

describe('misuse: a coded error, no corruption', () => {
  it('exit more than entered', () => {
    const d = store.epochDomainWrap(store.epochCurrent());
    expect(codeOf(() => d.exit())).toBe(ErrorCode.DOMAIN_UNBALANCED);
    const scope = d.enter();
    scope.exit();
    expect(codeOf(() => scope.exit())).toBe(ErrorCode.DOMAIN_UNBALANCED);
    expect(codeOf(() => scope[Symbol.dispose]())).toBe(ErrorCode.DOMAIN_UNBALANCED);
    expect(d.refCount).toBe(0);
  });

  it('put after close, enter after close', async () => {
    const d = store.epochDomainCreate();
    const scope = d.enter();
    const done = d.run(async () => {
      await sleep(2);
      return codeOf(() => store.put(Buffer.from('too late')));
    });
    d.forceClose();
    expect(await done).toBe(ErrorCode.EPOCH_CLOSED);
    expect(codeOf(() => d.enter())).toBe(ErrorCode.EPOCH_CLOSED);
    scope.exit(); // leaving a force-closed domain is fine
    expect(d.refCount).toBe(0);
  });

  it('disposing twice', () => {
    const d = store.epochDomainCreate();
    d[Symbol.dispose]();
    expect(codeOf(() => d[Symbol.dispose]())).toBe(ErrorCode.DOMAIN_DISPOSED);
    const w = store.epochDomainWrap(store.epochCurrent());
    w[Symbol.dispose]();
    expect(codeOf(() => w[Symbol.dispose]())).toBe(ErrorCode.DOMAIN_DISPOSED);
    expect(store.put(Buffer.from('still fine')) > 0n).toBe(true);
  });

  it('a throwing run still exits (and closes an auto domain)', async () => {
    const d = store.epochDomainCreate();
    expect(() => d.run(() => {
      throw new Error('boom');
    })).toThrow('boom');
    expect(d.closed).toBe(true);
    const e = store.epochDomainCreate();
    await expect(e.run(async () => {
      await sleep(1);
      throw new Error('async boom');
    })).rejects.toThrow('async boom');
    expect(e.refCount).toBe(0);
    expect(e.closed).toBe(true);
  });

  it('a domain still running when its store closes winds down without masking its result', async () => {
    const d = store.epochDomainCreate();
    const pending = d.run(async () => {
      store.put(Buffer.from('x'));
      await sleep(5);
      return 'finished';
    });
    store.close();
    await expect(pending).resolves.toBe('finished');
    expect(d.closed).toBe(true);
    store = fx.open();
    expect(store.statsGlobal().zones.owned).toBe(0);
  });

  it('domains of a read-only store are refused', () => {
    store.close();
    store = fx.open({ readOnly: true });
    expect(codeOf(() => store.epochDomainCreate())).toBe(ErrorCode.READ_ONLY);
  });
});

describe('the implicit current domain (AsyncLocalStorage)', () => {
  it('follows awaits, nests, and is undefined outside', async () => {
    expect(store.epochDomainCurrent()).toBeUndefined();
    const outer = store.epochDomainCreate();
    await outer.run(async () => {
      expect(store.epochDomainCurrent()).toBe(outer);
      await sleep(1);
      const inner = store.epochDomainCreate();
      await inner.run(async () => {
        await sleep(1);
        expect(store.epochDomainCurrent()).toBe(inner);
        store.put(Buffer.from('inner'));
      });
      expect(store.epochDomainCurrent()).toBe(outer);
      expect(inner.closed).toBe(true);
      store.put(Buffer.from('outer'));
      expect(store.statsEpoch(outer.epoch).liveObjects).toBe(1);
    });
    expect(store.epochDomainCurrent()).toBeUndefined();
    // An explicit epoch wins over the implicit domain.
    const w = store.epochDomainCreate();
    const e = store.epochCurrent();
    w.run(() => store.put(Buffer.from('explicit'), { epoch: e }));
    expect(store.statsEpoch(e).liveObjects).toBe(1);
  });

  it('concurrent requests never see each other\'s domain', async () => {
    const results = await Promise.all(
      Array.from({ length: 300 }, async (_, r) => {
        const d = store.epochDomainCreate();
        return d.run(async () => {
          const mine: bigint[] = [];
          for (let i = 0; i < 5; i++) {
            await sleep(r % 3);
            if (store.epochDomainCurrent() !== d) return false;
            mine.push(store.put(Buffer.from(`request ${r} item ${i}`)));
          }
          if (store.statsEpoch(d.epoch).liveObjects !== 5) return false;
          return mine.every((h, i) => store.get(h).toString() === `request ${r} item ${i}`);
        });
      }),
    );
    expect(results.every(Boolean)).toBe(true);
  });
});

describe('many more domains than zones', () => {
  it('10,000 concurrent requests, each in its own domain, on a device limited to 4 open zones', async () => {
    store.close();
    fx.cleanup();
    fx = storeFixture({ ...SMALL_GEOMETRY, maxOpenZones: 4, maxActiveZones: 4 });
    store = fx.open();
    // Some long-lived data in the current epoch, so the device is not empty to begin with.
    for (let i = 0; i < 300; i++) store.put(Buffer.alloc(2000, i));
    store.flush();
    const baseline = store.statsGlobal();
    const REQUESTS = 10_000;
    let failures = 0;
    let inFlight = 0;
    let peak = 0;
    await Promise.all(
      Array.from({ length: REQUESTS }, async (_, r) => {
        using request = store.epochDomainCreate();
        await request.run(async () => {
          inFlight++;
          peak = Math.max(peak, inFlight);
          const session = store.put(Buffer.from(`session ${r}`));
          const body = store.put(Buffer.alloc(100 + (r % 900), r & 0xff));
          await sleep(r % 4); // the request waits on I/O; thousands overlap
          const row = store.put(Buffer.alloc(64, 1));
          if (store.get(session).toString() !== `session ${r}` || store.get(body).length !== 100 + (r % 900) || store.get(row).length !== 64) failures++;
          inFlight--;
        });
      }),
    );
    const after = store.statsGlobal();
    expect(failures).toBe(0);
    expect(peak).toBeGreaterThan(1000); // they really overlapped
    expect(after.zones.owned).toBe(baseline.zones.owned);
    expect(after.zones.active).toBeLessThanOrEqual(4);
    expect(after.epochs.length).toBe(baseline.epochs.length);
    expect(after.counters.puts - baseline.counters.puts).toBe(3 * REQUESTS);
    // At peak every request's slabs are live at once, so ids must be leased for all of them:
    // one catalog commit per LEASE_BATCH new slabs, never one per request.
    const slabs = after.counters.slabsAllocated - baseline.counters.slabsAllocated;
    expect(after.counters.leaseCommits - baseline.counters.leaseCommits).toBeLessThanOrEqual(Math.ceil(slabs / LEASE_BATCH) + 1);
  });

  it('domains that spill hold the limits too, and leave no zone behind', async () => {
    // Interleaved spilling domains churn zones (a finished head costs its epoch a new zone), so
    // give them room: 12 domains x 6 one-slab puts, 4 active zones.
    store.close();
    fx.cleanup();
    fx = storeFixture({ ...SMALL_GEOMETRY, zoneCount: 128 });
    store = fx.open();
    const baseline = store.statsGlobal().zones.owned;
    await Promise.all(
      Array.from({ length: 12 }, async (_, r) => {
        const d = store.epochDomainCreate();
        await d.run(async () => {
          for (let i = 0; i < 6; i++) {
            store.put(Buffer.alloc(100_000, r)); // one slab each: sealed to a zone at once
            await sleep(1);
          }
        });
      }),
    );
    const s = store.statsGlobal();
    expect(s.zones.owned).toBe(baseline);
    expect(s.counters.zonesFinishedEarly).toBeGreaterThan(0); // 12 spilling domains, 4 active zones
    expect(s.zones.active).toBeLessThanOrEqual(4);
  });
});
