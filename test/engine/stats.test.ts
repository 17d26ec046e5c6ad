/** Each attribution counter and derived metric, driven into its path and checked exactly. */
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EpochState } from '../../engine/epoch.js';
import { unpackHandle } from '../../engine/handle.js';
import { SLAB_STATS_VERSION } from '../../engine/stats.js';
import type { Store } from '../../engine/store.js';
import { ErrorCode } from '../../errors.js';
import { ZoneCondition } from '../../zns/device.js';
import { type EmulatedZonedDevice, openEmulatedDevice } from '../../zns/emulated.js';
import { codeOf, storeFixture, type StoreFixture } from '../helpers/store.js';

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

const g = () => store.statsGlobal();
const klass = (c: number) => store.statsClass(c);

describe('attribution counters', () => {
  it('currentPartialNull and slowPathCacheMiss: the first put of a class needs a slab', () => {
    store.put(Buffer.alloc(10));
    expect(klass(0).counters).toMatchObject({ currentPartialNull: 1, currentPartialFull: 0, slowPathCacheMiss: 1, slabsOverflowed: 1, puts: 1 });
    store.put(Buffer.alloc(10));
    expect(klass(0).counters).toMatchObject({ currentPartialNull: 1, slowPathCacheMiss: 1, puts: 2 });
    expect(klass(1).counters.puts).toBe(0);
  });

  it('currentPartialFull: the 257th small put finds its slab full', () => {
    for (let i = 0; i < 256; i++) store.put(Buffer.alloc(10));
    expect(klass(0).counters.currentPartialFull).toBe(0);
    store.put(Buffer.alloc(10));
    expect(klass(0).counters).toMatchObject({ currentPartialFull: 1, slowPathCacheMiss: 2, slabsSealed: 1 });
  });

  it('slowPathEpochClosed: a put into a CLOSING epoch is refused and counted on its class', () => {
    const old = store.epochCurrent();
    store.epochAdvance();
    expect(codeOf(() => store.put(Buffer.alloc(100), { epoch: old }))).toBe(ErrorCode.EPOCH_CLOSED);
    const c = store.sizeClasses.classFor(100);
    expect(klass(c).counters.slowPathEpochClosed).toBe(1);
    expect(g().counters.slowPathEpochClosed).toBe(1);
    expect(klass(c).counters.puts).toBe(0);
  });

  it('slabsReusedHot: an emptied in-memory slab is reused, not reallocated', () => {
    const hs = Array.from({ length: 200 }, () => store.put(Buffer.alloc(10)));
    for (const h of hs) store.free(h);
    expect(klass(0).counters.slabsReusedHot).toBe(1); // restarted at slot 0 when the last object left
    for (let i = 0; i < 256; i++) store.put(Buffer.alloc(10));
    // All 256 fit the reused slab: no new slab, never found full.
    expect(klass(0).counters).toMatchObject({ slabsReusedHot: 1, slowPathCacheMiss: 1, currentPartialFull: 0 });
  });

  it('slabsRecycled vs slabsOverflowed, and recycleRatePct', () => {
    const e1 = store.epochCurrent();
    const big = Buffer.alloc(100_000);
    for (let i = 0; i < 20; i++) store.put(big);
    store.flush();
    store.epochClose(e1);
    const before = klass(store.sizeClasses.classFor(100_000)).counters;
    expect(before.slabsRecycled).toBe(0);
    expect(before.slabsFreed).toBe(20);
    for (let i = 0; i < 80; i++) store.put(big);
    const c = klass(store.sizeClasses.classFor(100_000));
    // 64 ids per lease: the first 64 new slabs took never-used ids (44 left + the first 20), then recycled ones.
    expect(c.counters.slabsRecycled + c.counters.slabsOverflowed).toBe(100);
    expect(c.counters.slabsRecycled).toBeGreaterThan(0);
    expect(c.derived.recycleRatePct).toBeCloseTo((100 * c.counters.slabsRecycled) / 100, 1);
    expect(c.derived.netSlabs).toBe(100 - 20);
    expect(g().derived.recycleRatePct).toBeCloseTo((100 * g().counters.slabsRecycled) / g().counters.slabsAllocated, 1);
  });

  it('zoneResets and zoneResetBytes: an epoch close resets exactly its zones', () => {
    const e1 = store.epochCurrent();
    for (let i = 0; i < 30; i++) store.put(Buffer.alloc(100_000, i));
    store.flush();
    const e = store.statsEpoch(e1);
    // 30 one-slot slabs of 132 KiB, 7 to a 1 MiB zone.
    expect(e.zones).toBe(Math.ceil(30 / Math.floor((1024 * 1024) / klass(store.sizeClasses.classFor(100_000)).slabBytes)));
    store.epochClose(e1);
    expect(g().counters.zoneResets).toBe(e.zones);
    expect(g().counters.zoneResetBytes).toBe(e.deviceBytes);
    expect(g().counters.zoneResetFailures).toBe(0);
  });

  it('zoneResetFailures: a zone that refuses its reset is counted and left for later', () => {
    const e1 = store.epochCurrent();
    for (let i = 0; i < 12; i++) store.put(Buffer.alloc(100_000, i));
    store.flush();
    const owned = store.statsZones().filter((z) => z.epoch === e1);
    expect(owned.length).toBe(2);
    (store.device as EmulatedZonedDevice).setZoneOffline(owned[0]!.index);
    store.epochClose(e1);
    expect(g().counters.zoneResetFailures).toBe(1);
    expect(g().counters.zoneResets).toBe(1);
    expect(g().zones.needingReset).toBe(1);
  });

  it('zonesFinishedEarly and finishWasteBytes: more epochs than active zones', () => {
    for (let e = 0; e < 6; e++) {
      store.put(Buffer.alloc(3000, e));
      store.flush(); // each epoch takes a zone; the 4-active device forces early finishes
      store.epochAdvance();
    }
    const c = g().counters;
    expect(c.zonesFinishedEarly).toBe(2);
    expect(c.finishWasteBytes).toBe(2 * (1024 * 1024 - 4096));
    expect(g().zones.active).toBe(4);
  });

  it('deviceBytesWritten, userBytesPut and writeAmplification', () => {
    expect(g().derived.writeAmplification).toBeNull();
    store.put(Buffer.alloc(1000));
    store.flush();
    const c = g().counters;
    expect(c.userBytesPut).toBe(1000);
    expect(c.deviceBytesWritten).toBe(4096); // one slot, rounded up to the block
    expect(g().derived.writeAmplification).toBeCloseTo(4.096, 3);
  });

  it('gets, frees, puts and flushes count operations', () => {
    const h = store.put(Buffer.from('x'));
    store.get(h);
    store.get(h);
    store.free(h);
    store.flush();
    expect(g().counters).toMatchObject({ puts: 1, gets: 2, frees: 1, flushes: 1 });
  });

  it('counters are cumulative across reopen', () => {
    store.put(Buffer.from('x'));
    store.close();
    store = fx.open();
    store.put(Buffer.from('y'));
    expect(g().counters.puts).toBe(2);
    expect(g().counters.flushes).toBe(1);
  });
});

describe('snapshots', () => {
  it('carry the version and describe epochs, classes and zones consistently', () => {
    const e1 = store.epochCurrent();
    const hs = Array.from({ length: 300 }, (_, i) => store.put(Buffer.alloc(i % 2 ? 50 : 5000)));
    store.flush();
    for (const h of hs.slice(0, 100)) store.free(h);
    const e2 = store.epochAdvance();
    store.put(Buffer.alloc(10));
    const s = g();
    expect(s.version).toBe(SLAB_STATS_VERSION);
    expect(store.statsEpoch(e1).version).toBe(SLAB_STATS_VERSION);
    expect(klass(0).version).toBe(SLAB_STATS_VERSION);
    expect(s.epochs.map((e) => [e.epoch, e.state])).toEqual([[e1, EpochState.CLOSING], [e2, EpochState.ACTIVE]]);
    const ep1 = store.statsEpoch(e1);
    expect(ep1.liveObjects).toBe(200);
    expect(ep1.classes.map((c) => c.liveObjects).reduce((a, b) => a + b, 0)).toBe(200);
    expect(s.liveObjects).toBe(201);
    // Zone rows add up to the epoch rows.
    const zones = store.statsZones();
    const owned = zones.filter((z) => z.epoch === e1);
    expect(owned.length).toBe(ep1.zones);
    expect(owned.reduce((n, z) => n + z.liveBytes, 0)).toBe(ep1.liveBytes);
    expect(owned.reduce((n, z) => n + z.liveBytes + z.deadBytes, 0)).toBe(ep1.deviceBytes);
    expect(ep1.deadBytes).toBeGreaterThan(0);
    expect(ep1.reclaimableBytes).toBe(ep1.deviceBytes);
    expect(s.derived.deadBytes).toBe(ep1.deadBytes);
    // Estimated device bytes: sealed slabs plus the partial slab as it would be written.
    expect(store.statsEpoch(e2).estimatedDeviceBytes).toBe(4096);
    expect(store.statsEpoch(e2).deviceBytes).toBe(0);
    expect(zones.filter((z) => z.condition === 'empty').length).toBe(s.zones.free);
  });

  it('refuses bad arguments with codes', () => {
    expect(codeOf(() => store.statsClass(99))).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(codeOf(() => store.statsClass('1' as never))).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(codeOf(() => store.statsEpoch(42))).toBe(ErrorCode.UNKNOWN_EPOCH);
    const e1 = store.epochCurrent();
    store.epochClose(e1);
    expect(codeOf(() => store.statsEpoch(e1))).toBe(ErrorCode.EPOCH_CLOSED);
  });

  it('a handle reports the class the stats use', () => {
    const h = store.put(Buffer.alloc(700));
    expect(unpackHandle(h).sizeClass).toBe(7);
    expect(klass(7).liveObjects).toBe(1);
    expect(klass(7).size).toBe(768);
  });
});

describe('read-only open', () => {
  it('reads everything, writes nothing, repairs nothing', () => {
    const h = store.put(Buffer.from('kept'));
    store.close();
    const dev = openEmulatedDevice(path.join(fx.dir, 'device'));
    const orphan = dev.reportZones().find((z) => z.condition === ZoneCondition.EMPTY)!;
    dev.write(orphan.start, Buffer.alloc(4096, 1));
    dev.close();
    store = fx.open({ readOnly: true });
    expect(store.get(h).toString()).toBe('kept');
    expect(store.statsGlobal().zones.needingReset).toBe(1);
    for (const write of [() => store.put(Buffer.from('x')), () => store.free(h), () => store.flush(), () => store.epochAdvance(), () => store.epochClose(1)]) {
      expect(codeOf(write)).toBe(ErrorCode.READ_ONLY);
    }
    expect(store.device.reportZones(orphan.index, 1)[0]!.condition).not.toBe(ZoneCondition.EMPTY);
    store.close();
    store = fx.open(); // a writer repairs it
    expect(store.statsGlobal().counters.recoveryZoneResets).toBe(1);
  });

  it('is refused while another store holds the catalog', () => {
    expect(codeOf(() => fx.open({ readOnly: true }))).toBe(ErrorCode.STORE_LOCKED);
  });
});
