import fs from 'node:fs';
import path from 'node:path';
import { describe, it, expect } from 'vitest';
import { ErrorCode } from '../../errors.js';
import { ZoneCondition } from '../../zns/device.js';
import { createEmulatedDevice, openEmulatedDevice } from '../../zns/emulated.js';
import { describeZonedDevice } from './device.shared.js';
import { diskUsage, tempDir } from '../helpers/tmp.js';

const GEOMETRY = { zoneCount: 16, zoneSize: 1 << 20, zoneCapacity: 768 * 1024, logicalBlockSize: 4096, maxOpenZones: 4, maxActiveZones: 6 };

describeZonedDevice('emulated (file-backed)', () => {
  const tmp = tempDir();
  const dir = path.join(tmp.dir, 'dev');
  return {
    open: () => createEmulatedDevice(dir, GEOMETRY),
    reopen: (dev) => {
      dev.close();
      return openEmulatedDevice(dir);
    },
    cleanup: tmp.cleanup,
  };
});

describe('emulated device specifics', () => {
  it('gives disk space back to the filesystem on reset', () => {
    const tmp = tempDir();
    try {
      const dev = createEmulatedDevice(path.join(tmp.dir, 'dev'), GEOMETRY);
      const before = diskUsage(tmp.dir);
      dev.write(0, Buffer.alloc(512 * 1024, 1));
      dev.flush();
      const written = diskUsage(tmp.dir);
      expect(written - before).toBeGreaterThanOrEqual(512 * 1024);
      dev.resetZone(0);
      expect(diskUsage(tmp.dir)).toBeLessThanOrEqual(before + 4096);
      dev.close();
    } finally {
      tmp.cleanup();
    }
  });

  it('refuses to reopen with another geometry, and rejects invalid geometries', () => {
    const tmp = tempDir();
    try {
      const dir = path.join(tmp.dir, 'dev');
      createEmulatedDevice(dir, GEOMETRY).close();
      expect(() => createEmulatedDevice(dir, { ...GEOMETRY, zoneCount: 32 })).toThrow(
        expect.objectContaining({ code: ErrorCode.GEOMETRY_MISMATCH }),
      );
      expect(() => createEmulatedDevice(path.join(tmp.dir, 'b'), { ...GEOMETRY, zoneCapacity: GEOMETRY.zoneSize + 4096 })).toThrow(
        expect.objectContaining({ code: ErrorCode.INVALID_ARGUMENT }),
      );
      expect(() => createEmulatedDevice(path.join(tmp.dir, 'c'), { ...GEOMETRY, logicalBlockSize: 1000 })).toThrow(
        expect.objectContaining({ code: ErrorCode.INVALID_ARGUMENT }),
      );
      expect(() => openEmulatedDevice(path.join(tmp.dir, 'nothing'))).toThrow(expect.objectContaining({ code: ErrorCode.INVALID_STORE }));
    } finally {
      tmp.cleanup();
    }
  });

  it('drops a torn partial block left by a crash on reopen', () => {
    const tmp = tempDir();
    try {
      const dir = path.join(tmp.dir, 'dev');
      const dev = createEmulatedDevice(dir, GEOMETRY);
      dev.write(0, Buffer.alloc(8192, 1));
      dev.close();
      fs.appendFileSync(path.join(dir, 'zone-0000000.bin'), Buffer.alloc(100, 2));
      const again = openEmulatedDevice(dir);
      expect(again.reportZones(0, 1)[0]!.writePointer).toBe(8192);
      expect(again.reportZones(0, 1)[0]!.condition).toBe(ZoneCondition.CLOSED);
      again.write(8192, Buffer.alloc(4096, 3));
      again.close();
    } finally {
      tmp.cleanup();
    }
  });

  it('an offline zone refuses reads, writes and resets and stays offline after reopen', () => {
    const tmp = tempDir();
    try {
      const dir = path.join(tmp.dir, 'dev');
      const dev = createEmulatedDevice(dir, GEOMETRY);
      dev.write(0, Buffer.alloc(4096, 1));
      dev.setZoneOffline(0);
      expect(() => dev.read(0, 1)).toThrow(expect.objectContaining({ code: ErrorCode.ZONE_CONDITION }));
      expect(() => dev.resetZone(0)).toThrow(expect.objectContaining({ code: ErrorCode.ZONE_CONDITION }));
      dev.close();
      const again = openEmulatedDevice(dir);
      expect(again.reportZones(0, 1)[0]!.condition).toBe(ZoneCondition.OFFLINE);
      again.close();
    } finally {
      tmp.cleanup();
    }
  });

  it('keepOpenZones: explicit opens outlive the handle until any opener closes, finishes, resets or fills the zone', () => {
    const tmp = tempDir();
    try {
      const dir = path.join(tmp.dir, 'dev');
      const conditions = (dev: ReturnType<typeof openEmulatedDevice>, count: number) => dev.reportZones(0, count).map((z) => z.condition);
      const plain = createEmulatedDevice(dir, GEOMETRY);
      plain.write(1 << 20, Buffer.alloc(4096, 1)); // zone 1: partly written
      plain.openZone(0);
      plain.close();
      // Without the option open zones are volatile: as after a power cycle.
      let dev = openEmulatedDevice(dir, { keepOpenZones: true });
      expect(conditions(dev, 5)).toEqual([ZoneCondition.EMPTY, ZoneCondition.CLOSED, ZoneCondition.EMPTY, ZoneCondition.EMPTY, ZoneCondition.EMPTY]);
      for (const z of [0, 1, 2, 3]) dev.openZone(z);
      dev.close();
      expect(JSON.parse(fs.readFileSync(path.join(dir, 'device.json'), 'utf8')).open).toEqual([0, 1, 2, 3]);
      // A plain opener sees them open, counted against the limits, and lets go of what it changes.
      dev = openEmulatedDevice(dir);
      expect(conditions(dev, 5)).toEqual([...Array(4).fill(ZoneCondition.EXPLICIT_OPEN), ZoneCondition.EMPTY]);
      expect(() => dev.openZone(4)).toThrow(expect.objectContaining({ code: ErrorCode.ZONE_OPEN_LIMIT }));
      expect(dev.read(1 << 20, 4096).equals(Buffer.alloc(4096, 1))).toBe(true);
      dev.closeZone(0);
      dev.resetZone(1);
      dev.finishZone(2);
      dev.write(3 << 20, Buffer.alloc(GEOMETRY.zoneCapacity, 3)); // fills zone 3
      dev.openZone(4); // a plain handle's open stays volatile
      dev.close();
      expect(JSON.parse(fs.readFileSync(path.join(dir, 'device.json'), 'utf8')).open).toBeUndefined();
      dev = openEmulatedDevice(dir);
      expect(conditions(dev, 5)).toEqual([ZoneCondition.EMPTY, ZoneCondition.EMPTY, ZoneCondition.FULL, ZoneCondition.FULL, ZoneCondition.EMPTY]);
      dev.close();
    } finally {
      tmp.cleanup();
    }
  });
});
