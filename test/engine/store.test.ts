import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EpochState } from '../../engine/epoch.js';
import { packHandle, unpackHandle } from '../../engine/handle.js';
import type { Store } from '../../engine/store.js';
import { ErrorCode } from '../../errors.js';
import { ZoneCondition } from '../../zns/device.js';
import { openEmulatedDevice } from '../../zns/emulated.js';
import { payload } from '../fixtures/payload.mjs';
import { SMALL_GEOMETRY, codeOf, storeFixture, type StoreFixture } from '../helpers/store.js';
import { diskUsage } from '../helpers/tmp.js';

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

function reopen(): void {
  store.close();
  store = fx.open();
}

describe('put / get / free', () => {
  it('returns identical bytes from memory, from the device after flush, and after reopen', () => {
    const handles = Array.from({ length: 600 }, (_, i) => store.put(payload(1, i)));
    handles.forEach((h, i) => expect(store.get(h).equals(payload(1, i))).toBe(true));
    store.flush();
    handles.forEach((h, i) => expect(store.get(h).equals(payload(1, i))).toBe(true));
    reopen();
    handles.forEach((h, i) => expect(store.get(h).equals(payload(1, i))).toBe(true));
  });

  it('copies on put and on get: callers cannot change stored bytes', () => {
    const buf = Buffer.from('original');
    const h = store.put(buf);
    buf.write('mutated!');
    const out = store.get(h);
    out.write('changed!');
    expect(store.get(h).toString()).toBe('original');
    store.flush();
    expect(store.get(h).toString()).toBe('original');
  });

  it('stores empty objects and objects at every class boundary', () => {
    const sizes = [0, 1, 64, 65, 768, 769, 1024, 1536, 4096, 65536, 100_000, store.maxObjectSize];
    const handles = sizes.map((n) => store.put(Buffer.alloc(n, n & 0xff)));
    store.flush();
    handles.forEach((h, i) => expect(store.get(h).equals(Buffer.alloc(sizes[i]!, sizes[i]! & 0xff))).toBe(true));
    expect(unpackHandle(handles[0]!).sizeClass).toBe(0);
    expect(unpackHandle(handles[3]!).sizeClass).toBe(1);
  });

  it('accepts a Uint8Array view into a larger buffer', () => {
    const big = Buffer.from('xxhello worldyy');
    const h = store.put(new Uint8Array(big.buffer, big.byteOffset + 2, 11));
    expect(store.get(h).toString()).toBe('hello world');
  });

  it('free makes the handle stale at once and leaves the others intact', () => {
    const a = store.put(Buffer.from('a'));
    const b = store.put(Buffer.from('b'));
    store.free(a);
    expect(codeOf(() => store.get(a))).toBe(ErrorCode.STALE_HANDLE);
    expect(codeOf(() => store.free(a))).toBe(ErrorCode.STALE_HANDLE);
    expect(store.get(b).toString()).toBe('b');
    store.flush();
    const c = store.put(Buffer.from('c'));
    store.flush();
    store.free(b);
    expect(codeOf(() => store.get(b))).toBe(ErrorCode.STALE_HANDLE);
    reopen();
    expect(codeOf(() => store.get(a))).toBe(ErrorCode.STALE_HANDLE);
    expect(codeOf(() => store.get(b))).toBe(ErrorCode.STALE_HANDLE);
    expect(store.get(c).toString()).toBe('c');
  });
});

describe('slot and slab reuse with generations', () => {
  it('reuses an emptied in-memory slab in place under the next generation', () => {
    const first = Array.from({ length: 256 }, (_, i) => store.put(Buffer.from(`old-${i}`)));
    const firstFields = unpackHandle(first[0]!);
    for (const h of first) store.free(h);
    const next = store.put(Buffer.from('new'));
    const nextFields = unpackHandle(next);
    expect(nextFields.slabId).toBe(firstFields.slabId);
    expect(nextFields.slot).toBe(0);
    expect(nextFields.generation).toBe(firstFields.generation + 1);
    // The old handle to slot 0 names the same slab and slot: only the generation tells them apart.
    expect(codeOf(() => store.get(first[0]!))).toBe(ErrorCode.STALE_HANDLE);
    expect(store.get(next).toString()).toBe('new');
    expect(store.statsGlobal().counters.slabsReusedHot).toBe(1);
  });

  it('reuses slab ids of a closed epoch under a newer generation; old handles stay stale', () => {
    // 100 kB objects take a slab each, so slab ids churn quickly. Recycled ids wait for a new
    // lease, so the fresh puts first drain the ids already leased, then reuse the old ones.
    const big = (tag: string, i: number) => Buffer.concat([Buffer.from(`${tag}-${i}`), Buffer.alloc(100_000, i & 0xff)]);
    const e1 = store.epochCurrent();
    const old = Array.from({ length: 20 }, (_, i) => store.put(big('e1', i)));
    store.flush();
    store.epochClose(e1);
    const fresh = Array.from({ length: 80 }, (_, i) => store.put(big('e2', i)));
    store.flush();
    const oldIds = new Set(old.map((h) => unpackHandle(h).slabId));
    const reused = fresh.filter((h) => oldIds.has(unpackHandle(h).slabId));
    expect(reused.length).toBeGreaterThan(0);
    for (const h of reused) {
      const prev = old.find((o) => unpackHandle(o).slabId === unpackHandle(h).slabId)!;
      expect(unpackHandle(h).generation).toBeGreaterThan(unpackHandle(prev).generation);
    }
    for (const h of old) expect(codeOf(() => store.get(h))).toBe(ErrorCode.STALE_HANDLE);
    fresh.forEach((h, i) => expect(store.get(h).equals(big('e2', i))).toBe(true));
    reopen();
    for (const h of old) expect(codeOf(() => store.get(h))).toBe(ErrorCode.STALE_HANDLE);
    fresh.forEach((h, i) => expect(store.get(h).equals(big('e2', i))).toBe(true));
  });

  it('never reuses a generation across a reopen, even for never-flushed slabs', () => {
    const unflushed = store.put(Buffer.from('lost on close? no: close flushes'));
    store.free(unflushed);
    reopen();
    const later = Array.from({ length: 200 }, () => store.put(Buffer.from('x')));
    for (const h of later) expect(h).not.toBe(unflushed);
    expect(codeOf(() => store.get(unflushed))).toBe(ErrorCode.STALE_HANDLE);
  });
});

describe('epochs', () => {
  it('advance makes the old epoch CLOSING: readable, but it takes no puts', () => {
    const e1 = store.epochCurrent();
    const h = store.put(Buffer.from('kept'));
    const e2 = store.epochAdvance();
    expect(e2).toBeGreaterThan(e1);
    expect(store.epochCurrent()).toBe(e2);
    expect(store.epochState(e1)).toBe(EpochState.CLOSING);
    expect(store.epochState(e2)).toBe(EpochState.ACTIVE);
    expect(store.get(h).toString()).toBe('kept');
    expect(codeOf(() => store.put(Buffer.from('no'), { epoch: e1 }))).toBe(ErrorCode.EPOCH_CLOSED);
    expect(store.statsGlobal().counters.slowPathEpochClosed).toBe(1);
    const h2 = store.put(Buffer.from('yes'), { epoch: e2 });
    expect(store.get(h2).toString()).toBe('yes');
  });

  it("close resets the epoch's zones, drops disk usage, and leaves other epochs intact", () => {
    const e1 = store.epochCurrent();
    const inE1 = Array.from({ length: 400 }, (_, i) => store.put(payload(7, i)));
    const e2 = store.epochAdvance();
    const inE2 = Array.from({ length: 200 }, (_, i) => store.put(payload(8, i)));
    store.flush();
    const deviceDir = path.join(fx.dir, 'device');
    const before = diskUsage(deviceDir);
    const e1Zones = store.statsGlobal().epochs.find((e) => e.epoch === e1)!.zones;
    expect(e1Zones).toBeGreaterThan(1);
    const zonesBefore = store.device.reportZones().filter((z) => z.condition !== ZoneCondition.EMPTY).length;

    store.epochClose(e1);

    expect(store.epochState(e1)).toBe(EpochState.CLOSED);
    const zonesAfter = store.device.reportZones().filter((z) => z.condition !== ZoneCondition.EMPTY).length;
    expect(zonesAfter).toBe(zonesBefore - e1Zones);
    const after = diskUsage(deviceDir);
    expect(before - after).toBeGreaterThan(e1Zones * 0.5 * 1024 * 1024);
    const c = store.statsGlobal().counters;
    expect(c.zoneResets).toBe(e1Zones);
    expect(c.zoneResetBytes).toBeGreaterThan(0);
    for (const h of inE1) expect(codeOf(() => store.get(h))).toBe(ErrorCode.STALE_HANDLE);
    inE2.forEach((h, i) => expect(store.get(h).equals(payload(8, i))).toBe(true));
    expect(store.epochState(e2)).toBe(EpochState.ACTIVE);
    reopen();
    expect(store.epochState(e1)).toBe(EpochState.CLOSED);
    for (const h of inE1) expect(codeOf(() => store.get(h))).toBe(ErrorCode.STALE_HANDLE);
    inE2.forEach((h, i) => expect(store.get(h).equals(payload(8, i))).toBe(true));
  });

  it('closing the current epoch advances first; closing twice or an unknown epoch is refused', () => {
    const e1 = store.epochCurrent();
    store.put(Buffer.from('x'));
    store.epochClose(e1);
    expect(store.epochCurrent()).toBeGreaterThan(e1);
    expect(codeOf(() => store.epochClose(e1))).toBe(ErrorCode.EPOCH_CLOSED);
    expect(codeOf(() => store.put(Buffer.from('x'), { epoch: e1 }))).toBe(ErrorCode.EPOCH_CLOSED);
    expect(codeOf(() => store.epochClose(999))).toBe(ErrorCode.UNKNOWN_EPOCH);
    expect(codeOf(() => store.put(Buffer.from('x'), { epoch: 999 }))).toBe(ErrorCode.UNKNOWN_EPOCH);
    expect(store.put(Buffer.from('ok')) > 0n).toBe(true);
  });

  it('epochSeal writes an epoch\'s partial slabs now; its objects stay readable, and the API used by the cache agrees', () => {
    const old = store.epochCurrent();
    const handles = Array.from({ length: 10 }, (_, i) => store.put(payload(i, 300)));
    store.epochAdvance();
    const fresh = store.put(payload(99, 300));
    expect(store.statsEpoch(old).deviceBytes).toBe(0);
    store.epochSeal(old);
    expect(store.statsEpoch(old).deviceBytes).toBeGreaterThan(10 * 300);
    handles.forEach((h, i) => expect(store.get(h)).toEqual(payload(i, 300)));
    expect([...store.handles(old)].sort()).toEqual([...handles].sort());
    expect(store.epochOf(fresh)).toBe(store.epochCurrent());
    expect(store.epochsLive()).toEqual([old, store.epochCurrent()]);
    store.free(handles[0]!);
    expect(store.isLive(handles[0]!)).toBe(false);
    expect(store.isLive(handles[1]!)).toBe(true);
    expect(store.isLive(12345n)).toBe(false);
    const side = store.epochCreate();
    expect(store.epochCurrent()).not.toBe(side);
    store.put(payload(7, 100), { epoch: side });
    store.verify();
    store.close();
    store = fx.open();
    handles.slice(1).forEach((h, i) => expect(store.get(h)).toEqual(payload(i + 1, 300)));
    expect(store.epochsLive()).toContain(side);
  });

  it('an emptied sealed slab goes at once, in an ACTIVE epoch too; a CLOSING epoch resets dead zones at flush', () => {
    const e1 = store.epochCurrent();
    const hs = Array.from({ length: 2000 }, (_, i) => store.put(Buffer.alloc(500, i & 0xff)));
    store.flush();
    const slabsFull = store.statsGlobal().slabs;
    const keep = hs.slice(0, 10);
    for (const h of hs.slice(10)) store.free(h);
    expect(store.statsGlobal().slabs).toBeLessThan(slabsFull); // ACTIVE: emptied sealed slabs went at once
    store.epochAdvance();
    const s = store.statsGlobal();
    const zonesBefore = s.epochs.find((e) => e.epoch === e1)!.zones;
    store.flush();
    const zonesAfter = store.statsGlobal().epochs.find((e) => e.epoch === e1)!.zones;
    expect(zonesAfter).toBe(1); // only the zone that still holds the 10 live objects
    expect(zonesBefore).toBeGreaterThan(zonesAfter);
    expect(store.statsGlobal().counters.zoneResets).toBe(zonesBefore - zonesAfter);
    keep.forEach((h, i) => expect(store.get(h).equals(Buffer.alloc(500, i & 0xff))).toBe(true));
    // Freeing the last objects of a CLOSING epoch lets its last zone go at the next flush.
    for (const h of keep) store.free(h);
    store.flush();
    expect(store.statsGlobal().epochs.find((e) => e.epoch === e1)!.zones).toBe(0);
  });
});

describe('zone limits', () => {
  it('holds a 4-open, 4-active device however many epochs and classes are live', () => {
    const handles: { h: bigint; seed: number; i: number }[] = [];
    for (let e = 0; e < 10; e++) {
      for (let i = 0; i < 120; i++) handles.push({ h: store.put(payload(100 + e, i)), seed: 100 + e, i });
      if (e % 3 === 2) store.flush();
      store.epochAdvance();
      const s = store.statsGlobal();
      expect(s.zones.open).toBeLessThanOrEqual(4);
      expect(s.zones.active).toBeLessThanOrEqual(4);
    }
    store.flush();
    const report = store.device.reportZones();
    expect(report.filter((z) => z.condition === ZoneCondition.IMPLICIT_OPEN || z.condition === ZoneCondition.EXPLICIT_OPEN).length).toBeLessThanOrEqual(4);
    expect(
      report.filter((z) => z.condition === ZoneCondition.IMPLICIT_OPEN || z.condition === ZoneCondition.EXPLICIT_OPEN || z.condition === ZoneCondition.CLOSED).length,
    ).toBeLessThanOrEqual(4);
    expect(store.statsGlobal().counters.zonesFinishedEarly).toBeGreaterThan(0);
    for (const { h, seed, i } of handles) expect(store.get(h).equals(payload(seed, i))).toBe(true);
    reopen();
    for (const { h, seed, i } of handles) expect(store.get(h).equals(payload(seed, i))).toBe(true);
  });

  it('holds a device whose active limit is above its open limit (2 open, 4 active)', () => {
    store.close();
    fx.cleanup();
    fx = storeFixture({ ...SMALL_GEOMETRY, maxOpenZones: 2, maxActiveZones: 4 });
    store = fx.open();
    const handles: bigint[] = [];
    for (let e = 0; e < 9; e++) {
      handles.push(store.put(Buffer.alloc(5000, e)));
      store.flush(); // every epoch takes a zone: early finishes of CLOSED heads at both limits
      store.epochAdvance();
    }
    expect(store.statsGlobal().counters.zonesFinishedEarly).toBe(5);
    handles.forEach((h, e) => expect(store.get(h).equals(Buffer.alloc(5000, e))).toBe(true));
  });

  it('reports ERR_DEVICE_FULL when no zone is left, and recovers after an epoch close', () => {
    const e1 = store.epochCurrent();
    const big = Buffer.alloc(200_000, 1);
    let full: string | undefined;
    const kept: bigint[] = [];
    for (let i = 0; i < 1000 && full === undefined; i++) {
      full = codeOf(() => {
        kept.push(store.put(big));
        if (i % 8 === 0) store.flush();
      });
    }
    expect(full).toBe(ErrorCode.DEVICE_FULL);
    expect(store.get(kept[0]!).equals(big)).toBe(true);
    store.epochClose(e1);
    store.put(big);
    store.flush();
    expect(store.statsGlobal().zones.free).toBeGreaterThan(0);
  });
});

describe('bad input', () => {
  it('put refuses non-bytes, oversize objects and bad epochs with codes', () => {
    for (const bad of ['text', 42, null, undefined, [1, 2], {}, new ArrayBuffer(4)]) {
      expect(codeOf(() => store.put(bad as never))).toBe(ErrorCode.INVALID_ARGUMENT);
    }
    expect(codeOf(() => store.put(Buffer.alloc(store.maxObjectSize + 1)))).toBe(ErrorCode.OBJECT_TOO_LARGE);
    for (const epoch of [0, -1, 1.5, Number.NaN, '1', 2 ** 60]) {
      expect(codeOf(() => store.put(Buffer.from('x'), { epoch: epoch as never }))).toBe(ErrorCode.INVALID_ARGUMENT);
    }
  });

  it('get and free refuse forged, malformed and stale handles, never returning other bytes', () => {
    const h = store.put(Buffer.from('real'));
    const f = unpackHandle(h);
    const forged = (over: Partial<typeof f>) => packHandle({ ...f, ...over });
    const cases: [unknown, string][] = [
      [1, ErrorCode.INVALID_HANDLE],
      ['1', ErrorCode.INVALID_HANDLE],
      [null, ErrorCode.INVALID_HANDLE],
      [-1n, ErrorCode.INVALID_HANDLE],
      [1n << 70n, ErrorCode.INVALID_HANDLE],
      [h & ~0b11n, ErrorCode.INVALID_HANDLE], // version 0
      [0n, ErrorCode.INVALID_HANDLE],
      [forged({ slabId: 4000 }), ErrorCode.INVALID_HANDLE], // never allocated
      [forged({ sizeClass: f.sizeClass + 1 }), ErrorCode.INVALID_HANDLE],
      [forged({ slot: 200 }), ErrorCode.INVALID_HANDLE],
      [forged({ generation: f.generation + 1 }), ErrorCode.STALE_HANDLE],
    ];
    for (const [bad, code] of cases) {
      expect(codeOf(() => store.get(bad as never)), String(bad)).toBe(code);
      expect(codeOf(() => store.free(bad as never)), String(bad)).toBe(code);
    }
    expect(store.get(h).toString()).toBe('real');
  });

  it('bytes damaged on the device fail their checksum and are never returned', () => {
    const h = store.put(Buffer.from('precious bytes'));
    const neighbour = store.put(Buffer.from('neighbour'));
    store.flush();
    store.close();
    const zoneFile = fs.readdirSync(path.join(fx.dir, 'device')).find((f) => f.startsWith('zone-'))!;
    const file = path.join(fx.dir, 'device', zoneFile);
    const bytes = fs.readFileSync(file);
    const at = bytes.indexOf('precious');
    bytes[at] = bytes[at]! ^ 0x01;
    fs.writeFileSync(file, bytes);
    store = fx.open();
    expect(codeOf(() => store.get(h))).toBe(ErrorCode.CHECKSUM);
    expect(store.get(neighbour).toString()).toBe('neighbour');
  });

  it('refuses everything after close; close is idempotent; `using` closes', () => {
    store.close();
    store.close();
    expect(codeOf(() => store.put(Buffer.from('x')))).toBe(ErrorCode.CLOSED);
    expect(codeOf(() => store.get(1n))).toBe(ErrorCode.CLOSED);
    expect(codeOf(() => store.epochAdvance())).toBe(ErrorCode.CLOSED);
    {
      using s = fx.open();
      s.put(Buffer.from('x'));
    }
    store = fx.open(); // would be ERR_STORE_LOCKED had `using` not closed it
  });
});

describe('opening', () => {
  it('refuses a second opener while the store is open', () => {
    expect(codeOf(() => fx.open())).toBe(ErrorCode.STORE_LOCKED);
  });

  it('refuses a different geometry', () => {
    store.close();
    expect(codeOf(() => fx.open({ geometry: { ...SMALL_GEOMETRY, zoneCount: 64 } }))).toBe(ErrorCode.GEOMETRY_MISMATCH);
    store = fx.open();
  });

  it('refuses to open when the device lost data the catalog points at', () => {
    store.put(Buffer.alloc(3000, 9));
    store.flush();
    store.close();
    const dev = path.join(fx.dir, 'device');
    const zoneFile = fs.readdirSync(dev).find((f) => f.startsWith('zone-'))!;
    fs.truncateSync(path.join(dev, zoneFile), 0);
    expect(codeOf(() => fx.open())).toBe(ErrorCode.DEVICE_MISMATCH);
    fx.cleanup();
    fx = storeFixture();
    store = fx.open();
  });

  it('resets a zone that holds data no epoch owns (an interrupted close), on open', () => {
    const h = store.put(Buffer.from('survivor'));
    store.flush();
    store.close();
    const dev = openEmulatedDevice(path.join(fx.dir, 'device'));
    const orphan = dev.reportZones().find((z) => z.condition === ZoneCondition.EMPTY)!;
    dev.write(orphan.start, Buffer.alloc(8192, 0xee));
    dev.close();
    store = fx.open();
    expect(store.statsGlobal().counters.recoveryZoneResets).toBe(1);
    expect(store.device.reportZones(orphan.index, 1)[0]!.condition).toBe(ZoneCondition.EMPTY);
    expect(store.get(h).toString()).toBe('survivor');
  });
});
