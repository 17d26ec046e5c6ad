/**
 * The simulator's fault-injecting device splits an injected write failure as Linux does
 * (issue 14): the first k requests (k seeded) are written, the write reports EIO, and the
 * device's bookkeeping (what a crash may lose) follows the write pointer.
 */
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCode, ZnsSlabError } from '../../errors.js';
import { FaultController, FaultyDevice } from '../../sim/faults.js';
import { Rng } from '../../sim/rng.js';
import { NULL_BLK_MAX_SECTORS_BYTES, createEmulatedDevice, openEmulatedDevice } from '../../zns/emulated.js';
import { tempDir } from '../helpers/tmp.js';

const GEOMETRY = { zoneCount: 8, zoneSize: 1 << 20, zoneCapacity: 1 << 20, logicalBlockSize: 4096, maxOpenZones: 4, maxActiveZones: 6 };
const SEAL = 256 * 1024; // three requests: 124 KiB, 124 KiB, 8 KiB

let cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.reverse()) c();
  cleanups = [];
});

function faulty(profile: 'null_blk' | 'atomic', split: Rng | undefined, geometry = GEOMETRY): { dev: FaultyDevice; ctl: FaultController } {
  const tmp = tempDir();
  cleanups.push(tmp.cleanup);
  const dir = path.join(tmp.dir, 'dev');
  createEmulatedDevice(dir, geometry, { profile }).close();
  const ctl = new FaultController();
  const dev = new FaultyDevice(openEmulatedDevice(dir), ctl, undefined, split);
  cleanups.push(() => dev.close());
  return { dev, ctl };
}

function failure(fn: () => void): ZnsSlabError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ZnsSlabError) return err;
    throw err;
  }
  throw new Error('expected the write to fail');
}

describe('FaultyDevice: split writes', () => {
  it('an injected EIO leaves a seeded whole number of requests written; the bookkeeping follows', () => {
    const seen = new Set<number>();
    for (let seed = 1; seed <= 12; seed++) {
      const { dev, ctl } = faulty('null_blk', new Rng(seed));
      ctl.armFault('write', 'eio', 0);
      const err = failure(() => dev.write(0, Buffer.alloc(SEAL, 7)));
      expect(err.code).toBe(ErrorCode.DEVICE_IO);
      const moved = dev.reportZones(0, 1)[0]!.writePointer;
      expect(moved % NULL_BLK_MAX_SECTORS_BYTES).toBe(0);
      expect(moved).toBeLessThan(SEAL);
      expect((dev as unknown as { written: number[] }).written[0]).toBe(moved);
      seen.add(moved / NULL_BLK_MAX_SECTORS_BYTES);
      // The zone goes on from its write pointer.
      dev.write(moved, Buffer.alloc(4096, 8));
      expect((dev as unknown as { written: number[] }).written[0]).toBe(moved + 4096);
    }
    expect([...seen].sort()).toEqual([0, 1, 2]);
  });

  it('without split (replays from before), a short write keeps half its blocks as before', () => {
    const { dev, ctl } = faulty('atomic', undefined);
    ctl.armFault('write', 'short', 0);
    expect(failure(() => dev.write(0, Buffer.alloc(SEAL))).code).toBe(ErrorCode.DEVICE_IO);
    expect(dev.reportZones(0, 1)[0]!.writePointer).toBe(SEAL / 2);
  });

  it('a write the inner device fails part-way (past the capacity) moves the bookkeeping with its write pointer', () => {
    const cap = 768 * 1024;
    const { dev } = faulty('null_blk', new Rng(1), { ...GEOMETRY, zoneCapacity: cap });
    const at = cap - SEAL + 4096;
    dev.write(0, Buffer.alloc(at));
    expect(failure(() => dev.write(at, Buffer.alloc(SEAL))).code).toBe(ErrorCode.DEVICE_IO);
    const wp = dev.reportZones(0, 1)[0]!.writePointer;
    expect(wp).toBe(at + 2 * NULL_BLK_MAX_SECTORS_BYTES);
    expect((dev as unknown as { written: number[] }).written[0]).toBe(wp);
  });
});

describe('FaultyDevice: a write across a zone end (null_blk goes on into the next zone)', () => {
  it("counts each zone's share", () => {
    const { dev } = faulty('null_blk', new Rng(1));
    dev.write(0, Buffer.alloc((1 << 20) + 8192));
    const written = (dev as unknown as { written: number[] }).written;
    expect([written[0], written[1]]).toEqual([1 << 20, 8192]);
  });
});
