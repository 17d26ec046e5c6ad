/**
 * The emulated device's profiles (issue 14): where null_blk, QEMU's NVMe ZNS and the old
 * all-or-nothing emulation differ, each profile does as its device. The sequences are the
 * differential test's findings on Linux 6.1 (16 x 1 MiB zones, open 4 / active 6, 4 KiB blocks).
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCode, ZnsSlabError } from '../../errors.js';
import { ZoneCondition } from '../../zns/device.js';
import {
  type EmulatedOpenOptions,
  type EmulatedZonedDevice,
  NULL_BLK_MAX_SECTORS_BYTES,
  NVME_MDTS_BYTES,
  createEmulatedDevice,
  openEmulatedDevice,
} from '../../zns/emulated.js';
import { tempDir } from '../helpers/tmp.js';
import { codeOf } from '../helpers/store.js';

const KiB = 1024;
const LBS = 4096;
const ZONE = 1 << 20;
const GEOMETRY = { zoneCount: 16, zoneSize: ZONE, zoneCapacity: ZONE, logicalBlockSize: LBS, maxOpenZones: 4, maxActiveZones: 6 };
const SMALL_CAPACITY = { ...GEOMETRY, zoneCapacity: 768 * KiB };

let cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.reverse()) c();
  cleanups = [];
});

function device(profile: EmulatedOpenOptions['profile'], geometry = GEOMETRY): EmulatedZonedDevice {
  const tmp = tempDir();
  const dev = createEmulatedDevice(path.join(tmp.dir, 'dev'), geometry, profile === undefined ? {} : { profile });
  cleanups.push(tmp.cleanup, () => dev.close());
  return dev;
}

const blocks = (n: number, fill = 1): Buffer => Buffer.alloc(n * LBS, fill);
const cond = (dev: EmulatedZonedDevice, z: number): ZoneCondition => dev.reportZones(z, 1)[0]!.condition;
const wp = (dev: EmulatedZonedDevice, z: number): number => dev.reportZones(z, 1)[0]!.writePointer - z * ZONE;

describe('emulated device profiles', () => {
  it('defaults to null_blk with 124 KiB requests, kept in device.json; another profile at reopen is refused', () => {
    const dev = device(undefined);
    expect(dev.profile).toEqual({ name: 'null_blk', maxSectorsBytes: NULL_BLK_MAX_SECTORS_BYTES });
    const tmp = tempDir();
    cleanups.push(tmp.cleanup);
    const dir = path.join(tmp.dir, 'nvme');
    createEmulatedDevice(dir, GEOMETRY, { profile: 'nvme' }).close();
    const meta = JSON.parse(fs.readFileSync(path.join(dir, 'device.json'), 'utf8')) as { profile: unknown };
    expect(meta.profile).toEqual({ name: 'nvme', maxSectorsBytes: NVME_MDTS_BYTES });
    const again = openEmulatedDevice(dir);
    expect(again.profile.name).toBe('nvme');
    again.close();
    expect(codeOf(() => createEmulatedDevice(dir, GEOMETRY, { profile: 'null_blk' }))).toBe(ErrorCode.GEOMETRY_MISMATCH);
    // A device.json from before profiles opens as the default.
    delete (meta as { profile?: unknown }).profile;
    fs.writeFileSync(path.join(dir, 'device.json'), JSON.stringify(meta));
    const old = openEmulatedDevice(dir);
    expect(old.profile.name).toBe('null_blk');
    old.close();
    expect(codeOf(() => createEmulatedDevice(dir, GEOMETRY, { profile: 'bogus' as 'nvme' }))).toBe(ErrorCode.INVALID_ARGUMENT);
  });

  describe('a write past the capacity partly happens (split into requests)', () => {
    it('null_blk: EIO, the write pointer moved by the whole requests that fit (6 x 124 KiB)', () => {
      const dev = device('null_blk', SMALL_CAPACITY);
      let err: unknown;
      try {
        dev.write(0, Buffer.alloc(768 * KiB + LBS, 5));
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ZnsSlabError);
      expect((err as ZnsSlabError).code).toBe(ErrorCode.DEVICE_IO);
      // The kernel's EIO; the failed request's own error (the 7th request passes the capacity) as cause.
      expect(((err as ZnsSlabError).cause as ZnsSlabError).code).toBe(ErrorCode.ZONE_WRITE_POINTER);
      expect(wp(dev, 0)).toBe(6 * 124 * KiB);
      expect(cond(dev, 0)).toBe(ZoneCondition.IMPLICIT_OPEN);
      expect(dev.read(0, 6 * 124 * KiB).every((b) => b === 5)).toBe(true);
    });

    it('nvme: EIO, the write pointer moved by one 512 KiB request (128 blocks)', () => {
      const dev = device('nvme', SMALL_CAPACITY);
      expect(codeOf(() => dev.write(0, Buffer.alloc(768 * KiB + LBS)))).toBe(ErrorCode.DEVICE_IO);
      expect(wp(dev, 0)).toBe(128 * LBS);
    });

    it('writeStart does the same at once', () => {
      const dev = device('null_blk', SMALL_CAPACITY);
      const data = new Uint8Array(new SharedArrayBuffer(768 * KiB + LBS));
      expect(codeOf(() => dev.writeStart(0, data))).toBe(ErrorCode.DEVICE_IO);
      expect(wp(dev, 0)).toBe(6 * 124 * KiB);
    });

    it('atomic: refused whole, as before profiles', () => {
      const dev = device('atomic', SMALL_CAPACITY);
      expect(codeOf(() => dev.write(0, Buffer.alloc(768 * KiB + LBS)))).toBe(ErrorCode.ZONE_WRITE_POINTER);
      expect(wp(dev, 0)).toBe(0);
    });

    it('a one-request write past the capacity is refused whole with its own code', () => {
      const dev = device('null_blk', SMALL_CAPACITY);
      dev.write(0, Buffer.alloc(768 * KiB - LBS));
      expect(codeOf(() => dev.write(768 * KiB - LBS, blocks(2)))).toBe(ErrorCode.ZONE_WRITE_POINTER);
      expect(wp(dev, 0)).toBe(768 * KiB - LBS);
    });
  });

  it('null_blk: a write across a zone end goes on at the next zone start: z0 FULL, z1 open', () => {
    const dev = device('null_blk');
    const data = Buffer.alloc(ZONE + 2 * LBS, 3);
    data.fill(4, ZONE);
    dev.write(0, data);
    expect(cond(dev, 0)).toBe(ZoneCondition.FULL);
    expect(cond(dev, 1)).toBe(ZoneCondition.IMPLICIT_OPEN);
    expect(wp(dev, 1)).toBe(2 * LBS);
    expect(dev.read(ZONE, 2 * LBS).every((b) => b === 4)).toBe(true);
    // The atomic profile refuses it.
    expect(codeOf(() => device('atomic').write(0, data))).toBe(ErrorCode.ZONE_WRITE_POINTER);
  });

  it('limit errors: the limit code for a write of one request and for a split write (its first request is refused), as LibzbdDevice reports them', () => {
    const dev = device('null_blk');
    for (let z = 0; z < 4; z++) dev.openZone(z);
    expect(codeOf(() => dev.write(4 * ZONE, blocks(1)))).toBe(ErrorCode.ZONE_OPEN_LIMIT);
    expect(codeOf(() => dev.write(4 * ZONE, blocks(32)))).toBe(ErrorCode.ZONE_OPEN_LIMIT);
    expect(cond(dev, 4)).toBe(ZoneCondition.EMPTY);
    expect(codeOf(() => dev.writeStart(4 * ZONE, new Uint8Array(new SharedArrayBuffer(32 * LBS))))).toBe(ErrorCode.ZONE_OPEN_LIMIT);
    expect(cond(dev, 4)).toBe(ZoneCondition.EMPTY);
    // The active limit: two closed zones, four open.
    for (let z = 0; z < 2; z++) {
      dev.write(z * ZONE, blocks(1));
      dev.closeZone(z);
    }
    for (let z = 4; z < 6; z++) dev.openZone(z);
    expect(codeOf(() => dev.write(6 * ZONE, blocks(1)))).toBe(ErrorCode.ZONE_ACTIVE_LIMIT);
    expect(codeOf(() => dev.write(6 * ZONE, blocks(32)))).toBe(ErrorCode.ZONE_ACTIVE_LIMIT);
    expect(wp(dev, 6)).toBe(0);
    // nvme's requests are 512 KiB: 32 blocks is one request.
    const nvme = device('nvme');
    for (let z = 0; z < 4; z++) nvme.openZone(z);
    expect(codeOf(() => nvme.write(4 * ZONE, blocks(32)))).toBe(ErrorCode.ZONE_OPEN_LIMIT);
    expect(codeOf(() => nvme.write(4 * ZONE, blocks(129)))).toBe(ErrorCode.ZONE_OPEN_LIMIT);
  });

  describe('the implicitly open zone closed to make room', () => {
    it('null_blk: round-robin from the one after the last closed (z0..z4, z0, z1 closes z2)', () => {
      const dev = device('null_blk');
      for (const z of [0, 1, 2, 3, 4, 0, 1]) dev.write(z * ZONE + wp(dev, z), blocks(1));
      expect([0, 1, 2, 3, 4].map((z) => cond(dev, z))).toEqual([
        ZoneCondition.IMPLICIT_OPEN,
        ZoneCondition.IMPLICIT_OPEN,
        ZoneCondition.CLOSED,
        ZoneCondition.IMPLICIT_OPEN,
        ZoneCondition.IMPLICIT_OPEN,
      ]);
    });

    it('atomic: the lowest-numbered (z0..z4, z0, z1 closes z0)', () => {
      const dev = device('atomic');
      for (const z of [0, 1, 2, 3, 4, 0, 1]) dev.write(z * ZONE + wp(dev, z), blocks(1));
      expect(cond(dev, 0)).toBe(ZoneCondition.CLOSED);
      expect(cond(dev, 2)).toBe(ZoneCondition.IMPLICIT_OPEN);
    });

    it('null_blk scans by number, nvme closes the oldest opened (z3, z2, z1, z0 then z4)', () => {
      for (const [profile, closed] of [
        ['null_blk', 0],
        ['nvme', 3],
      ] as const) {
        const dev = device(profile);
        for (const z of [3, 2, 1, 0, 4]) dev.write(z * ZONE, blocks(1));
        expect([0, 1, 2, 3].filter((z) => cond(dev, z) === ZoneCondition.CLOSED)).toEqual([closed]);
      }
    });
  });

  describe('NVMe ZNS (QEMU) rules', () => {
    it('an opened then closed zone with no data stays CLOSED and active (null_blk: EMPTY)', () => {
      const nvme = device('nvme');
      nvme.openZone(0);
      nvme.closeZone(0);
      expect(cond(nvme, 0)).toBe(ZoneCondition.CLOSED);
      // It holds an active resource: five more opened-and-closed zones reach the limit.
      for (let z = 1; z < 6; z++) {
        nvme.openZone(z);
        nvme.closeZone(z);
      }
      expect(codeOf(() => nvme.openZone(6))).toBe(ErrorCode.ZONE_ACTIVE_LIMIT);
      const nb = device('null_blk');
      nb.openZone(0);
      nb.closeZone(0);
      expect(cond(nb, 0)).toBe(ZoneCondition.EMPTY);
    });

    it('finishing an EMPTY zone at the open limit succeeds (null_blk: open limit)', () => {
      const nvme = device('nvme');
      const nb = device('null_blk');
      for (const dev of [nvme, nb]) for (let z = 0; z < 4; z++) dev.openZone(z);
      nvme.finishZone(4);
      expect(cond(nvme, 4)).toBe(ZoneCondition.FULL);
      expect(codeOf(() => nb.finishZone(4))).toBe(ErrorCode.ZONE_OPEN_LIMIT);
    });

    it('finishing a CLOSED zone at both limits succeeds (null_blk: open limit)', () => {
      const nvme = device('nvme');
      const nb = device('null_blk');
      for (const dev of [nvme, nb]) for (let z = 0; z < 6; z++) dev.write(z * ZONE, blocks(1));
      expect(cond(nvme, 0)).toBe(ZoneCondition.CLOSED);
      expect(cond(nb, 0)).toBe(ZoneCondition.CLOSED);
      nvme.finishZone(0);
      expect(cond(nvme, 0)).toBe(ZoneCondition.FULL);
      expect(codeOf(() => nb.finishZone(0))).toBe(ErrorCode.ZONE_OPEN_LIMIT);
    });

    it('a refused activation has already closed the oldest implicitly open zone (null_blk: nothing changes)', () => {
      const nvme = device('nvme');
      const nb = device('null_blk');
      for (const dev of [nvme, nb]) for (let z = 0; z < 6; z++) dev.write(z * ZONE, blocks(1));
      // z0 and z1 were closed for z4 and z5; z2 is the oldest open.
      expect(codeOf(() => nvme.write(6 * ZONE, blocks(1)))).toBe(ErrorCode.ZONE_ACTIVE_LIMIT);
      expect(cond(nvme, 2)).toBe(ZoneCondition.CLOSED);
      expect(codeOf(() => nb.write(6 * ZONE, blocks(1)))).toBe(ErrorCode.ZONE_ACTIVE_LIMIT);
      expect(cond(nb, 2)).toBe(ZoneCondition.IMPLICIT_OPEN);
    });
  });

  it('reads of a zone filled by writes past its capacity: 0xFF on null_blk, zeroes on nvme and finished zones', async () => {
    for (const [profile, fill] of [
      ['null_blk', 0xff],
      ['nvme', 0],
      ['atomic', 0],
    ] as const) {
      const dev = device(profile, SMALL_CAPACITY);
      for (let at = 0; at < 768 * KiB; at += 64 * KiB) dev.write(at, Buffer.alloc(64 * KiB, 1));
      expect(cond(dev, 0)).toBe(ZoneCondition.FULL);
      const past = dev.read(768 * KiB - LBS, 2 * LBS);
      expect(past.subarray(0, LBS).every((b) => b === 1)).toBe(true);
      expect(past.subarray(LBS).every((b) => b === fill)).toBe(true);
      expect((await dev.readAsync(768 * KiB, LBS)).every((b) => b === fill)).toBe(true);
      // A finished zone reads zeroes past its data (its write pointer is the zone end).
      dev.write(ZONE, blocks(1));
      dev.finishZone(1);
      expect(dev.read(ZONE + LBS, LBS).every((b) => b === 0)).toBe(true);
      expect(dev.read(ZONE + 800 * KiB, LBS).every((b) => b === 0)).toBe(true);
    }
  });

  // Found by the differential test at 200 seeds (null_blk seed 41, NVMe seed 33; Linux 6.1 in the
  // VM): the kernel sends every request of a split write, so a request after a failed one that
  // lands at the write pointer is written. The emulation stopped at the first failure.
  it('a split write goes on after a failed request: a later request at the write pointer is written (null_blk seed 41)', () => {
    const dev = device('null_blk');
    dev.write(3 * ZONE, blocks(31));                                 // the write pointer at 31 blocks = one 124 KiB request
    // The kernel says EIO; the first request's own code is what LibzbdDevice says of a write off the pointer.
    expect(codeOf(() => dev.write(3 * ZONE, blocks(37)))).toBe(ErrorCode.ZONE_WRITE_POINTER); // request 1 (31 blocks at 0) off the pointer
    expect(wp(dev, 3)).toBe(37 * LBS);                               // request 2 (6 blocks at 31) was at the pointer: written
  });

  it('the same on NVMe: a write of capacity - 2 blocks from the zone start over a 512 KiB write pointer (NVMe seed 33)', () => {
    const dev = device('nvme', SMALL_CAPACITY);
    dev.write(4 * ZONE, blocks(128));                                // 512 KiB: one request
    expect(codeOf(() => dev.write(4 * ZONE, Buffer.alloc(SMALL_CAPACITY.zoneCapacity - 2 * LBS, 1)))).toBe(ErrorCode.ZONE_WRITE_POINTER);
    expect(wp(dev, 4)).toBe(SMALL_CAPACITY.zoneCapacity - 2 * LBS);
    // writeStart sends such a write at once, every request, as write does.
    const other = device('nvme', SMALL_CAPACITY);
    other.write(5 * ZONE, blocks(128));
    const data = new Uint8Array(new SharedArrayBuffer(SMALL_CAPACITY.zoneCapacity - 2 * LBS));
    expect(codeOf(() => other.writeStart(5 * ZONE, data))).toBe(ErrorCode.ZONE_WRITE_POINTER);
    expect(wp(other, 5)).toBe(SMALL_CAPACITY.zoneCapacity - 2 * LBS);
    expect(other.writesEnded()).toEqual([]);
  });
});

