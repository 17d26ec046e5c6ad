/**
 * LibzbdDevice on real zoned block devices: the conformance suite, plus checks that the
 * kernel itself (not our bookkeeping) enforces the zone rules.
 *
 * The devices come from ZNS_TEST_DEVICES (comma-separated block device paths). `npm run
 * test:zoned` boots a VM with /dev/nullb0 (null_blk) and /dev/nvme0n1 (NVMe ZNS) and sets it;
 * without it (a host with no zoned device) the device suites are registered skipped, under a
 * name that says why. EVERY ZONE OF THE GIVEN DEVICES IS RESET: never point this at a disk
 * holding data.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { ErrorCode } from '../../errors.js';
import { Errno, ZBD_RO_ALL, ZBD_ZONE_SIZE, ZbdZoneOp, decodeZbdInfo, decodeZbdZone, libzbd, libzbdAvailable } from '../../native/libzbd.js';
import { ZoneCondition } from '../../zns/device.js';
import { type LibzbdDevice, type LibzbdIoPath, openLibzbdDevice } from '../../zns/libzbd.js';
import { describeZonedDevice } from './device.shared.js';

const DEVICES = (process.env['ZNS_TEST_DEVICES'] ?? '')
  .split(',')
  .map((d) => d.trim())
  .filter((d) => d.length > 0);
/** Both I/O paths run the suite unless ZNS_TEST_IO names one. */
const IO_PATHS: LibzbdIoPath[] = process.env['ZNS_TEST_IO'] ? [process.env['ZNS_TEST_IO'] as LibzbdIoPath] : ['koffi', 'fs'];
const SECTOR = 512;
const ALIGN = 4096;

if (DEVICES.length === 0) {
  process.stderr.write('libzbd.test.ts: no zoned device given (ZNS_TEST_DEVICES is empty): device suites skipped; `npm run test:zoned` runs them in a VM\n');
}

function openFresh(path: string, io: LibzbdIoPath = 'koffi'): LibzbdDevice {
  const dev = openLibzbdDevice(path, { io });
  dev.resetAllZones();
  return dev;
}

/** An O_DIRECT-ready buffer, made by hand so the kernel tests do not lean on the class under test. */
function alignedBlock(bytes: number, fill: number): Buffer {
  const raw = Buffer.allocUnsafeSlow(bytes + ALIGN);
  const pad = (ALIGN - Number(libzbd().address(raw) % BigInt(ALIGN))) % ALIGN;
  return raw.subarray(pad, pad + bytes).fill(fill);
}

/** Zone `zone` as the kernel reports it through zbd_report_zones, bypassing LibzbdDevice's state. */
function kernelZone(fd: number, zoneSize: number, zone: number) {
  const buf = Buffer.alloc(ZBD_ZONE_SIZE);
  const nr = Buffer.alloc(4);
  nr.writeUInt32LE(1, 0);
  expect(libzbd().zbd_report_zones(fd, zone * zoneSize, zoneSize, ZBD_RO_ALL, buf, nr)).toBe(0);
  expect(nr.readUInt32LE(0)).toBe(1);
  return decodeZbdZone(buf, 0);
}

/**
 * The write pointer `blkzone report` (util-linux) prints for one zone, if the tool is there: a
 * third opinion. It prints `wptr` relative to the zone start, in sectors.
 */
function blkzoneWritePointer(path: string, startByte: number): number | undefined {
  const r = spawnSync('blkzone', ['report', '-o', String(startByte / SECTOR), '-c', '1', path], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return undefined;
  const m = /start: (0x[0-9a-f]+),.* wptr (0x[0-9a-f]+)/.exec(r.stdout);
  if (!m) return undefined;
  expect(Number.parseInt(m[1]!, 16) * SECTOR).toBe(startByte);
  return startByte + Number.parseInt(m[2]!, 16) * SECTOR;
}

describe('libzbd binding (host)', () => {
  it('decodes struct zbd_info and struct zbd_zone at the documented offsets', () => {
    const info = Buffer.alloc(128);
    info.write('ACME ZNS', 0, 'latin1');
    info.writeBigUInt64LE(4194304n, 32); // nr_sectors
    info.writeBigUInt64LE(524288n, 40);
    info.writeBigUInt64LE(524288n, 48);
    info.writeBigUInt64LE(67108864n, 56); // zone_size
    [131072, 4096, 4096, 32, 14, 14, 1].forEach((v, i) => info.writeUInt32LE(v, 64 + 4 * i));
    expect(decodeZbdInfo(info)).toEqual({
      vendorId: 'ACME ZNS', nrSectors: 4194304, nrLogicalBlocks: 524288, nrPhysicalBlocks: 524288, zoneSize: 67108864,
      zoneSectors: 131072, logicalBlockSize: 4096, physicalBlockSize: 4096, nrZones: 32, maxOpenZones: 14, maxActiveZones: 14, model: 1,
    });
    const zones = Buffer.alloc(2 * ZBD_ZONE_SIZE);
    [67108864n, 67108864n, 50331648n, 67112960n].forEach((v, i) => zones.writeBigUInt64LE(v, ZBD_ZONE_SIZE + 8 * i));
    [0, 2, 2].forEach((v, i) => zones.writeUInt32LE(v, ZBD_ZONE_SIZE + 32 + 4 * i));
    expect(decodeZbdZone(zones, 1)).toEqual({ start: 67108864, len: 67108864, capacity: 50331648, wp: 67112960, flags: 0, type: 2, cond: 2 });
  });

  it('gives a coded error for a path that is not a zoned device, or when libzbd is missing', () => {
    const expected = libzbdAvailable() ? ErrorCode.INVALID_ARGUMENT : ErrorCode.NATIVE_UNAVAILABLE;
    expect(() => openLibzbdDevice('/dev/null')).toThrow(expect.objectContaining({ code: expected }));
    expect(() => openLibzbdDevice('/dev/no-such-zoned-device')).toThrow(expect.objectContaining({ code: expected }));
  });
});

for (const path of DEVICES) {
  for (const io of IO_PATHS) {
    describeZonedDevice(`libzbd ${path} (io: ${io})`, () => ({
      open: () => openFresh(path, io),
      reopen: (dev) => {
        dev.close();
        return openLibzbdDevice(path, { io });
      },
      cleanup: () => {},
    }));
  }

  describe(`the kernel's own zone rules on ${path}`, () => {
    let dev: LibzbdDevice;
    beforeEach(() => {
      dev = openFresh(path);
    });
    afterEach(() => dev.close());

    it('rejects a write off the write pointer with EIO (pwrite straight to the kernel)', () => {
      const { zoneSize, logicalBlockSize: lbs } = dev.geometry;
      const fd = dev.fileDescriptor;
      const lib = libzbd();
      const start = 2 * zoneSize;
      const block = alignedBlock(lbs, 0x5a);
      dev.write(start, block);
      expect(kernelZone(fd, zoneSize, 2).wp).toBe(start + lbs);
      for (const wrong of [start + 3 * lbs, start]) {
        // Ahead of the write pointer, then behind it: both must fail in the kernel/driver.
        expect(lib.pwrite(fd, block, lbs, wrong)).toBe(-1);
        expect(lib.errno()).toBe(Errno.EIO);
      }
      const z = kernelZone(fd, zoneSize, 2);
      expect(z.wp).toBe(start + lbs);
      expect(z.cond).toBe(ZoneCondition.IMPLICIT_OPEN);
      // A write behind the class's back moves the pointer; the class still believes start + lbs,
      // so its next write goes to the kernel, fails with EIO, and comes back named.
      expect(lib.pwrite(fd, block, lbs, start + lbs)).toBe(lbs);
      expect(() => dev.write(start + lbs, block)).toThrow(
        expect.objectContaining({ code: ErrorCode.ZONE_WRITE_POINTER, message: expect.stringContaining('(EIO)') }),
      );
      expect(dev.reportZones(2, 1)[0]!.writePointer).toBe(start + 2 * lbs);
      dev.write(start + 2 * lbs, block); // and it is back in step
    });

    it('rejects a write to a FULL zone with EIO, surfaced as ERR_ZONE_CONDITION', () => {
      const { zoneSize, logicalBlockSize: lbs } = dev.geometry;
      const fd = dev.fileDescriptor;
      const lib = libzbd();
      expect(lib.zbd_zones_operation(fd, ZbdZoneOp.FINISH, 3 * zoneSize, zoneSize)).toBe(0);
      expect(kernelZone(fd, zoneSize, 3).cond).toBe(ZoneCondition.FULL);
      expect(lib.pwrite(fd, alignedBlock(lbs, 1), lbs, 3 * zoneSize)).toBe(-1);
      expect(lib.errno()).toBe(Errno.EIO);
      // The class did not see the finish, so it sends the write and maps the kernel's EIO.
      expect(() => dev.write(3 * zoneSize, Buffer.alloc(lbs))).toThrow(
        expect.objectContaining({ code: ErrorCode.ZONE_CONDITION, message: expect.stringContaining('(EIO)') }),
      );
    });

    it("resets the write pointer to the zone start in the device's own report", () => {
      const { zoneSize, logicalBlockSize: lbs } = dev.geometry;
      const fd = dev.fileDescriptor;
      const lib = libzbd();
      const start = 4 * zoneSize;
      dev.write(start, Buffer.alloc(4 * lbs, 7));
      let z = kernelZone(fd, zoneSize, 4);
      expect(z.wp).toBe(start + 4 * lbs);
      expect(z.cond).toBe(ZoneCondition.IMPLICIT_OPEN);
      expect(blkzoneWritePointer(path, start) ?? z.wp).toBe(z.wp);
      expect(lib.zbd_zones_operation(fd, ZbdZoneOp.RESET, start, zoneSize)).toBe(0);
      z = kernelZone(fd, zoneSize, 4);
      expect(z.wp).toBe(start);
      expect(z.cond).toBe(ZoneCondition.EMPTY);
      expect(blkzoneWritePointer(path, start) ?? z.wp).toBe(start);
    });

    it('reads zeroes between a FULL zone\'s capacity and its size, without asking the drive', ({ skip }) => {
      const { zoneSize, zoneCapacity, logicalBlockSize: lbs } = dev.geometry;
      if (zoneCapacity === zoneSize) skip('skipped: capacity = size on this device, no such bytes');
      const start = 5 * zoneSize;
      dev.write(start, Buffer.alloc(lbs, 3));
      dev.finishZone(5);
      expect(kernelZone(dev.fileDescriptor, zoneSize, 5).cond).toBe(ZoneCondition.FULL);
      const tail = dev.read(start + zoneCapacity - lbs, 2 * lbs);
      expect(tail.every((b) => b === 0)).toBe(true);
      expect(dev.read(start, 1)[0]).toBe(3);
    });

    // Issue 14: the kernel splits a write longer than max_sectors_kb into several requests; a
    // zone limit refused on the first comes back EIO for the whole write. LibzbdDevice sends
    // the first request of such a write alone, so the limit keeps its own code.
    /** A write the kernel splits: two requests and a block. */
    const splitLength = () => 2 * dev.maxRequestBytes + dev.geometry.logicalBlockSize;

    it('knows the largest write request from sysfs (max_sectors_kb)', () => {
      const name = fs.realpathSync(path).split('/').pop()!;
      const kb = Number(fs.readFileSync(`/sys/block/${name}/queue/max_sectors_kb`, 'utf8').trim());
      expect(dev.maxRequestBytes).toBe(kb * 1024);
    });

    it('gives the limit code for a split write to a zone past the open limit (the kernel alone says EIO or the limit)', () => {
      const { zoneSize, maxOpenZones, maxActiveZones } = dev.geometry;
      // The kernel checks the active limit first: where the limits are equal, that one trips.
      const code = maxOpenZones < maxActiveZones ? ErrorCode.ZONE_OPEN_LIMIT : ErrorCode.ZONE_ACTIVE_LIMIT;
      for (let z = 0; z < maxOpenZones; z++) dev.openZone(z);
      const target = maxOpenZones;
      const len = splitLength();
      // Straight to the kernel: refused, and nothing of it lands.
      const lib = libzbd();
      expect(lib.pwrite(dev.fileDescriptor, alignedBlock(len, 9), len, target * zoneSize)).toBe(-1);
      expect([Errno.EIO, Errno.ETOOMANYREFS]).toContain(lib.errno());
      expect(kernelZone(dev.fileDescriptor, zoneSize, target).wp).toBe(target * zoneSize);
      for (const how of ['write', 'writeStart'] as const) {
        expect(() => dev[how](target * zoneSize, Buffer.alloc(len, 9))).toThrow(expect.objectContaining({ code }));
        const z = kernelZone(dev.fileDescriptor, zoneSize, target);
        expect([z.cond, z.wp]).toEqual([ZoneCondition.EMPTY, target * zoneSize]);
      }
      // One block (a single request) says the same.
      expect(() => dev.write(target * zoneSize, Buffer.alloc(4096, 9))).toThrow(expect.objectContaining({ code }));
      // With a zone closed, the same split write goes through whole.
      dev.closeZone(0);
      dev.write(target * zoneSize, Buffer.alloc(len, 9));
      expect(kernelZone(dev.fileDescriptor, zoneSize, target).wp).toBe(target * zoneSize + len);
      expect(dev.read(target * zoneSize + len - 1, 1)[0]).toBe(9);
    });

    it('gives ERR_ZONE_ACTIVE_LIMIT for a split write to an empty zone past the active limit', () => {
      const { zoneSize, maxActiveZones, logicalBlockSize: lbs } = dev.geometry;
      for (let z = 0; z < maxActiveZones; z++) {
        dev.write(z * zoneSize, Buffer.alloc(lbs, 1));
        dev.closeZone(z);
      }
      const target = maxActiveZones;
      const len = splitLength();
      for (const how of ['write', 'writeStart'] as const) {
        expect(() => dev[how](target * zoneSize, Buffer.alloc(len, 9))).toThrow(expect.objectContaining({ code: ErrorCode.ZONE_ACTIVE_LIMIT }));
        const z = kernelZone(dev.fileDescriptor, zoneSize, target);
        expect([z.cond, z.wp]).toEqual([ZoneCondition.EMPTY, target * zoneSize]);
      }
      // A CLOSED zone (already active) takes the split write: its first request reopens it.
      dev.write(zoneSize + lbs, Buffer.alloc(len, 5));
      expect(kernelZone(dev.fileDescriptor, zoneSize, 1).wp).toBe(zoneSize + lbs + len);
    });

    it('ends a split background write as one write, its bytes all there', () => {
      const { zoneSize, logicalBlockSize: lbs } = dev.geometry;
      const len = splitLength();
      const data = Buffer.alloc(len);
      for (let i = 0; i < len; i += lbs) data.fill((i / lbs) & 0xff, i, i + lbs);
      dev.writeStart(6 * zoneSize, data);
      expect(dev.writesWait(6)).toEqual([{ zone: 6, offset: 6 * zoneSize, length: len, error: undefined }]);
      expect(kernelZone(dev.fileDescriptor, zoneSize, 6).wp).toBe(6 * zoneSize + len);
      expect(dev.read(6 * zoneSize, len).equals(data)).toBe(true);
      // The next write, to the now open zone, goes whole.
      dev.writeStart(6 * zoneSize + len, data);
      expect(dev.writesWait(6)[0]!.error).toBeUndefined();
      expect(dev.reportZones(6, 1)[0]!.writePointer).toBe(6 * zoneSize + 2 * len);
    });

    it('reports the geometry the kernel exports in sysfs', () => {
      const name = path.split('/').pop()!;
      const sysfs = (f: string) => Number(fs.readFileSync(`/sys/block/${name}/queue/${f}`, 'utf8').trim());
      const g = dev.geometry;
      expect(g.zoneSize).toBe(sysfs('chunk_sectors') * SECTOR);
      expect(g.zoneCount).toBe(sysfs('nr_zones'));
      expect(g.logicalBlockSize).toBe(sysfs('logical_block_size'));
      expect(g.maxOpenZones).toBe(sysfs('max_open_zones'));
      expect(g.maxActiveZones).toBe(sysfs('max_active_zones'));
      expect(dev.reportZones().every((z) => z.condition === ZoneCondition.EMPTY)).toBe(true);
    });
  });
}
