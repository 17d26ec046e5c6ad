/**
 * The zoned-device conformance suite: the kernel's zone rules, asserted against any
 * `ZonedDevice`. It runs unchanged on every device kind (the emulation here; null_blk and
 * NVMe ZNS through libzbd in the VM), so the engine can trust one contract.
 */
import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { ErrorCode, ZnsSlabError } from '../../errors.js';
import { type ZonedDevice, ZoneCondition, effectiveLimit } from '../../zns/device.js';

export interface DeviceFixture {
  /** A device with every zone EMPTY. */
  open(): ZonedDevice;
  /** Closes and reopens the same device (a process restart), if the kind can. */
  reopen?(device: ZonedDevice): ZonedDevice;
  cleanup(): void;
}

function expectCode(fn: () => unknown, code: string): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught, `expected an error with code ${code}`).toBeInstanceOf(Error);
  expect((caught as { code?: string }).code).toBe(code);
}

function block(device: ZonedDevice, fill: number, blocks = 1): Buffer {
  return Buffer.alloc(device.geometry.logicalBlockSize * blocks, fill);
}

export function describeZonedDevice(name: string, makeFixture: () => DeviceFixture): void {
  describe(`ZonedDevice conformance: ${name}`, () => {
    let fixture: DeviceFixture;
    let dev: ZonedDevice;

    beforeEach(() => {
      fixture = makeFixture();
      dev = fixture.open();
    });
    afterEach(() => {
      dev.close();
      fixture.cleanup();
    });

    const zone = (i: number) => dev.reportZones(i, 1)[0]!;

    it('reports a sane geometry and every zone empty at its start', () => {
      const g = dev.geometry;
      expect(g.zoneCapacity).toBeLessThanOrEqual(g.zoneSize);
      expect(g.zoneSize % g.logicalBlockSize).toBe(0);
      const zones = dev.reportZones();
      expect(zones).toHaveLength(g.zoneCount);
      zones.forEach((z, i) => {
        expect(z.index).toBe(i);
        expect(z.start).toBe(i * g.zoneSize);
        expect(z.capacity).toBe(g.zoneCapacity);
        expect(z.writePointer).toBe(z.start);
        expect(z.condition).toBe(ZoneCondition.EMPTY);
      });
      expect(dev.reportZones(1, 2).map((z) => z.index)).toEqual([1, 2]);
    });

    it('appends at the write pointer and reads the bytes back', () => {
      const lbs = dev.geometry.logicalBlockSize;
      const start = zone(1).start;
      dev.write(start, block(dev, 0xa1));
      dev.write(start + lbs, block(dev, 0xb2, 2));
      const z = zone(1);
      expect(z.writePointer).toBe(start + 3 * lbs);
      expect(z.condition).toBe(ZoneCondition.IMPLICIT_OPEN);
      const back = dev.read(start, 3 * lbs);
      expect(back.subarray(0, lbs).every((b) => b === 0xa1)).toBe(true);
      expect(back.subarray(lbs).every((b) => b === 0xb2)).toBe(true);
      // Unaligned reads inside the written range are fine.
      expect(dev.read(start + lbs - 3, 6)).toEqual(Buffer.from([0xa1, 0xa1, 0xa1, 0xb2, 0xb2, 0xb2]));
    });

    it('refuses a write anywhere but the write pointer', () => {
      const lbs = dev.geometry.logicalBlockSize;
      const start = zone(0).start;
      expectCode(() => dev.write(start + lbs, block(dev, 1)), ErrorCode.ZONE_WRITE_POINTER);
      dev.write(start, block(dev, 1, 2));
      expectCode(() => dev.write(start, block(dev, 2)), ErrorCode.ZONE_WRITE_POINTER);
      expectCode(() => dev.write(start + lbs, block(dev, 2)), ErrorCode.ZONE_WRITE_POINTER);
      expectCode(() => dev.write(start + 3 * lbs, block(dev, 2)), ErrorCode.ZONE_WRITE_POINTER);
      expect(zone(0).writePointer).toBe(start + 2 * lbs);
      expect(dev.read(start, 2 * lbs).every((b) => b === 1)).toBe(true);
    });

    it('refuses unaligned writes', () => {
      const start = zone(0).start;
      expectCode(() => dev.write(start, Buffer.alloc(100)), ErrorCode.UNALIGNED_IO);
      expectCode(() => dev.write(start, Buffer.alloc(0)), ErrorCode.UNALIGNED_IO);
      expect(zone(0).condition).toBe(ZoneCondition.EMPTY);
    });

    it('refuses a write past the zone capacity and goes FULL at capacity', () => {
      const g = dev.geometry;
      const start = zone(2).start;
      const cap = g.zoneCapacity;
      // As one request the write is refused whole; Linux splits a long one (max_sectors_kb) and
      // the requests before the one past the capacity are written: EIO, the write pointer moved
      // (the emulation's null_blk and nvme profiles do as the kernel: test/zns/emulated.profiles.test.ts).
      let err: unknown;
      try {
        dev.write(start, Buffer.alloc(cap + g.logicalBlockSize));
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ZnsSlabError);
      if ((err as ZnsSlabError).code === ErrorCode.ZONE_WRITE_POINTER) {
        expect(zone(2).writePointer).toBe(start);
      } else {
        expect((err as ZnsSlabError).code).toBe(ErrorCode.DEVICE_IO);
        const moved = zone(2).writePointer - start;
        expect(moved > 0 && moved < cap && moved % g.logicalBlockSize === 0).toBe(true);
        dev.resetZone(2);
      }
      dev.write(start, Buffer.alloc(cap - g.logicalBlockSize, 7));
      expectCode(() => dev.write(start + cap - g.logicalBlockSize, block(dev, 8, 2)), ErrorCode.ZONE_WRITE_POINTER);
      dev.write(start + cap - g.logicalBlockSize, block(dev, 8));
      expect(zone(2).condition).toBe(ZoneCondition.FULL);
      // Any write to a FULL zone is refused for its condition. (Not at start + cap: when the
      // capacity equals the zone size, as on null_blk, that is the next zone's start.)
      expectCode(() => dev.write(start, block(dev, 9)), ErrorCode.ZONE_CONDITION);
      expect(dev.read(start + cap - g.logicalBlockSize, g.logicalBlockSize).every((b) => b === 8)).toBe(true);
    });

    it('refuses reads past the write pointer', () => {
      const lbs = dev.geometry.logicalBlockSize;
      const start = zone(3).start;
      expectCode(() => dev.read(start, 1), ErrorCode.ZONE_READ_BEYOND_WRITE_POINTER);
      dev.write(start, block(dev, 3));
      expectCode(() => dev.read(start, lbs + 1), ErrorCode.ZONE_READ_BEYOND_WRITE_POINTER);
    });

    it('reset brings the write pointer back to the zone start and drops the data', () => {
      const start = zone(1).start;
      dev.write(start, block(dev, 5, 4));
      dev.resetZone(1);
      const z = zone(1);
      expect(z.condition).toBe(ZoneCondition.EMPTY);
      expect(z.writePointer).toBe(start);
      expectCode(() => dev.read(start, 1), ErrorCode.ZONE_READ_BEYOND_WRITE_POINTER);
      dev.write(start, block(dev, 6));
      expect(dev.read(start, 1)[0]).toBe(6);
    });

    it('finish moves the write pointer to the zone end and makes it FULL', () => {
      const g = dev.geometry;
      const start = zone(1).start;
      dev.write(start, block(dev, 4));
      dev.finishZone(1);
      const z = zone(1);
      expect(z.condition).toBe(ZoneCondition.FULL);
      expect(z.writePointer).toBe(start + g.zoneSize);
      expectCode(() => dev.write(start + g.logicalBlockSize, block(dev, 4)), ErrorCode.ZONE_CONDITION);
      expect(dev.read(start, 1)[0]).toBe(4);
      dev.finishZone(2); // an empty zone finishes too
      expect(zone(2).condition).toBe(ZoneCondition.FULL);
      dev.resetZone(1);
      expect(zone(1).condition).toBe(ZoneCondition.EMPTY);
    });

    it('holds the open-zone limit for explicit opens', ({ skip }) => {
      const maxOpen = effectiveLimit(dev.geometry.maxOpenZones, dev.geometry.zoneCount);
      const maxActive = effectiveLimit(dev.geometry.maxActiveZones, dev.geometry.zoneCount);
      if (maxOpen >= dev.geometry.zoneCount) skip('skipped: no open limit on this device, nothing to hold');
      // Opening an EMPTY zone makes it active too. When both limits are equal (null_blk and
      // NVMe ZNS are often set up 14/14) both are reached, and the device (null_blk and QEMU's
      // NVMe ZNS controller alike) reports the active limit first, as the emulation does.
      const limitCode = maxActive > maxOpen ? ErrorCode.ZONE_OPEN_LIMIT : ErrorCode.ZONE_ACTIVE_LIMIT;
      for (let z = 0; z < maxOpen; z++) dev.openZone(z);
      expect(dev.reportZones().filter((z) => z.condition === ZoneCondition.EXPLICIT_OPEN)).toHaveLength(maxOpen);
      expectCode(() => dev.openZone(maxOpen), limitCode);
      // A write would open one more; with every open zone explicit, nothing can make room.
      expectCode(() => dev.write(zone(maxOpen).start, block(dev, 1)), limitCode);
      dev.closeZone(0);
      expect(zone(0).condition).toBe(ZoneCondition.EMPTY); // closing an unwritten zone empties it
      dev.openZone(maxOpen);
      expect(zone(maxOpen).condition).toBe(ZoneCondition.EXPLICIT_OPEN);
    });

    it('closes an implicitly open zone to make room at the open limit', ({ skip }) => {
      const g = dev.geometry;
      const maxOpen = effectiveLimit(g.maxOpenZones, g.zoneCount);
      const maxActive = effectiveLimit(g.maxActiveZones, g.zoneCount);
      if (maxOpen >= g.zoneCount || maxActive <= maxOpen) skip(`skipped: open limit ${maxOpen}, active limit ${maxActive}: the active limit stops the write first`);
      for (let z = 0; z <= maxOpen; z++) dev.write(zone(z).start, block(dev, z));
      const zones = dev.reportZones();
      expect(zones.filter((z) => z.condition === ZoneCondition.IMPLICIT_OPEN)).toHaveLength(maxOpen);
      expect(zones.filter((z) => z.condition === ZoneCondition.CLOSED)).toHaveLength(1);
    });

    it('holds the active-zone limit', ({ skip }) => {
      const g = dev.geometry;
      const maxActive = effectiveLimit(g.maxActiveZones, g.zoneCount);
      if (maxActive >= g.zoneCount) skip('skipped: no active limit on this device');
      for (let z = 0; z < maxActive; z++) {
        dev.write(zone(z).start, block(dev, z));
        dev.closeZone(z);
      }
      expect(dev.reportZones().filter((z) => z.condition === ZoneCondition.CLOSED)).toHaveLength(maxActive);
      expectCode(() => dev.write(zone(maxActive).start, block(dev, 1)), ErrorCode.ZONE_ACTIVE_LIMIT);
      expectCode(() => dev.openZone(maxActive), ErrorCode.ZONE_ACTIVE_LIMIT);
      // A closed zone can still take writes: it is already active.
      dev.write(zone(0).start + g.logicalBlockSize, block(dev, 9));
      dev.finishZone(0);
      dev.write(zone(maxActive).start, block(dev, 1));
      expect(zone(maxActive).condition).toBe(ZoneCondition.IMPLICIT_OPEN);
    });

    it('finishing a CLOSED zone needs an open resource; at both limits none is made for it', ({ skip }) => {
      const g = dev.geometry;
      const maxOpen = effectiveLimit(g.maxOpenZones, g.zoneCount);
      const maxActive = effectiveLimit(g.maxActiveZones, g.zoneCount);
      if (maxActive >= g.zoneCount || maxActive <= maxOpen) skip(`skipped: open limit ${maxOpen}, active limit ${maxActive}: both limits cannot be reached together`);
      // maxActive - maxOpen closed zones, then maxOpen implicitly open ones: both limits reached.
      for (let z = 0; z < maxActive; z++) {
        dev.write(zone(z).start, block(dev, z));
        if (z < maxActive - maxOpen) dev.closeZone(z);
      }
      expect(zone(0).condition).toBe(ZoneCondition.CLOSED);
      expectCode(() => dev.finishZone(0), ErrorCode.ZONE_OPEN_LIMIT);
      expect(zone(0).condition).toBe(ZoneCondition.CLOSED);
      dev.closeZone(maxActive - 1); // give back an open resource
      dev.finishZone(0);
      expect(zone(0).condition).toBe(ZoneCondition.FULL);
    });

    it('keeps zone state across a reopen; open zones come back CLOSED', ({ skip }) => {
      if (!fixture.reopen) return skip('skipped: this device kind cannot be reopened');
      const g = dev.geometry;
      dev.write(zone(0).start, block(dev, 1, 2));
      dev.write(zone(1).start, block(dev, 2));
      dev.finishZone(1);
      dev.write(zone(2).start, block(dev, 3));
      dev.resetZone(2);
      dev.flush();
      dev = fixture.reopen(dev);
      expect(zone(0).condition).toBe(ZoneCondition.CLOSED);
      expect(zone(0).writePointer).toBe(2 * g.logicalBlockSize);
      expect(zone(1).condition).toBe(ZoneCondition.FULL);
      expect(zone(1).writePointer).toBe(zone(1).start + g.zoneSize);
      expect(zone(2).condition).toBe(ZoneCondition.EMPTY);
      expect(dev.read(zone(0).start, 2 * g.logicalBlockSize).every((b) => b === 1)).toBe(true);
      expect(dev.read(zone(1).start, g.logicalBlockSize).every((b) => b === 2)).toBe(true);
      dev.write(zone(0).start + 2 * g.logicalBlockSize, block(dev, 4));
    });

    it('refuses operations after close', () => {
      dev.close();
      expectCode(() => dev.reportZones(), ErrorCode.CLOSED);
      dev = fixture.open();
    });

    /** `blocks` blocks of bytes that differ everywhere (a misplaced copy shows). */
    function pattern(blocks: number, seed: number): Buffer {
      const b = Buffer.alloc(dev.geometry.logicalBlockSize * blocks);
      for (let i = 0; i < b.length; i++) b[i] = (i * 7 + (i >>> 8) * 13 + seed) & 0xff;
      return b;
    }

    /** Byte ranges inside `length` written bytes: aligned, unaligned, tiny, whole. */
    function ranges(length: number): [number, number][] {
      const lbs = dev.geometry.logicalBlockSize;
      return [[0, length], [0, lbs], [lbs, 2 * lbs], [1, 1], [lbs - 3, 6], [17, length - 40], [length - 5, 5], [lbs + 100, lbs]];
    }

    it('readInto fills the whole target with what read returns, into aligned and unaligned buffers', () => {
      const readInto = dev.readInto?.bind(dev);
      expect(readInto, 'the device has readInto').toBeTypeOf('function');
      const start = zone(1).start;
      const data = pattern(3, 5);
      dev.write(start, data);
      for (const [at, len] of ranges(data.length)) {
        const expected = data.subarray(at, at + len);
        expect(dev.read(start + at, len).equals(expected)).toBe(true);
        // A Buffer of its own, and a view at an odd place in a bigger one (never aligned).
        const own = Buffer.alloc(len, 0xee);
        readInto!(start + at, own);
        expect(own.equals(expected), `readInto(${at}, ${len})`).toBe(true);
        const big = new Uint8Array(len + 9).fill(0xee);
        readInto!(start + at, big.subarray(3, 3 + len));
        expect(Buffer.from(big.subarray(3, 3 + len)).equals(expected), `readInto(${at}, ${len}) into a view`).toBe(true);
        expect(big.subarray(0, 3).every((b) => b === 0xee) && big.subarray(3 + len).every((b) => b === 0xee), 'bytes around the view untouched').toBe(true);
      }
      expectCode(() => readInto!(start + data.length - 4, Buffer.alloc(8)), ErrorCode.ZONE_READ_BEYOND_WRITE_POINTER);
      expectCode(() => readInto!(start, 'not a buffer' as unknown as Uint8Array), ErrorCode.INVALID_ARGUMENT);
    });

    it('readInto and readAsync read zeroes past a finished zone\'s written bytes, as read does', async () => {
      const g = dev.geometry;
      const start = zone(2).start;
      const data = pattern(1, 9);
      dev.write(start, data);
      dev.finishZone(2);
      const len = 3 * g.logicalBlockSize;
      const expected = Buffer.concat([data, Buffer.alloc(len - data.length)]);
      expect(dev.read(start, len).equals(expected)).toBe(true);
      const into = Buffer.alloc(len, 0xee);
      dev.readInto!(start, into);
      expect(into.equals(expected)).toBe(true);
      expect((await dev.readAsync!(start, len)).equals(expected)).toBe(true);
      expect((await dev.readAsync!(start + g.logicalBlockSize + 5, 10)).equals(Buffer.alloc(10))).toBe(true);
    });

    it('readAsync returns what read returns with many reads in flight, and rejects (never throws) what read refuses', async () => {
      expect(dev.readAsync, 'the device has readAsync').toBeTypeOf('function');
      const g = dev.geometry;
      const written: Buffer[] = [];
      for (let z = 0; z < 3; z++) {
        written.push(pattern(4, z * 31 + 1));
        dev.write(zone(z).start, written[z]!);
      }
      const reads: { z: number; at: number; len: number; p: Promise<Buffer> }[] = [];
      for (let round = 0; round < 8; round++) {
        for (let z = 0; z < 3; z++) {
          for (const [at, len] of ranges(written[z]!.length)) reads.push({ z, at, len, p: dev.readAsync!(zone(z).start + at, len) });
        }
      }
      expect(reads.length).toBeGreaterThanOrEqual(64);
      const results = await Promise.all(reads.map((r) => r.p));
      results.forEach((got, i) => {
        const { z, at, len } = reads[i]!;
        expect(got.equals(written[z]!.subarray(at, at + len)), `readAsync zone ${z} [${at}, +${len})`).toBe(true);
      });
      // Each read has a buffer of its own: changing one changes no other.
      results[0]!.fill(0);
      expect(results[reads.length / 8]!.equals(written[0]!.subarray(0))).toBe(true);
      const beyond = dev.readAsync!(zone(0).start + written[0]!.length - 4, 8);
      await expect(beyond).rejects.toMatchObject({ code: ErrorCode.ZONE_READ_BEYOND_WRITE_POINTER });
      await expect(dev.readAsync!(g.zoneCount * g.zoneSize, 8)).rejects.toMatchObject({ code: ErrorCode.INVALID_ARGUMENT });
      await expect(dev.readAsync!(-1, 8)).rejects.toMatchObject({ code: ErrorCode.INVALID_ARGUMENT });
    });

    it('a readAsync in flight at close rejects with ERR_CLOSED; later ones are refused', async () => {
      const start = zone(0).start;
      dev.write(start, pattern(2, 3));
      const inFlight = Array.from({ length: 8 }, (_, i) => dev.readAsync!(start + i, 100));
      dev.close();
      for (const s of await Promise.allSettled(inFlight)) expect(s).toMatchObject({ status: 'rejected', reason: { code: ErrorCode.CLOSED } });
      await expect(dev.readAsync!(start, 10)).rejects.toMatchObject({ code: ErrorCode.CLOSED });
      dev = fixture.open();
    });
  });
}
