/**
 * The emulated device's direct mode (O_DIRECT zone files) and its reads off the event loop
 * (readInto, readAsync): the conformance suite in direct mode, alignment, fds pinned while
 * reads are in flight (across more zones than the fd cache holds), and the coded errors.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../../errors.js';
import { alignedBuffer, alignedShared, isAligned } from '../../zns/aligned.js';
import { createEmulatedDevice, openEmulatedDevice, type EmulatedZonedDevice } from '../../zns/emulated.js';
import { openZonedDevice } from '../../zns/open.js';
import { describeZonedDevice } from './device.shared.js';
import { tempDir } from '../helpers/tmp.js';

/** Linux x86-64 and arm64 agree on O_DIRECT's bit in /proc/self/fdinfo's octal flags. */
const O_DIRECT_BIT = fs.constants.O_DIRECT;

/** Whether the filesystem holding `dir` opens files with O_DIRECT (tmpfs did not before Linux 6.6). */
function takesDirect(dir: string): boolean {
  const file = path.join(dir, `.direct-probe-${process.pid}`);
  fs.writeFileSync(file, '');
  try {
    fs.closeSync(fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_DIRECT));
    return true;
  } catch {
    return false;
  } finally {
    fs.rmSync(file, { force: true });
  }
}

const tmpTakesDirect = takesDirect(os.tmpdir());
const NO_DIRECT_REASON = `${os.tmpdir()} refuses O_DIRECT here`;
/** A title's note when the O_DIRECT tests cannot run. */
const NO_DIRECT_NOTE = tmpTakesDirect ? '' : ` (skipped: ${NO_DIRECT_REASON})`;
/** A filesystem that refuses O_DIRECT, if this machine has one mounted (tmpfs before Linux 6.6). */
const refusing = ['/dev/shm', '/run', '/run/user'].find((d) => {
  try {
    return fs.statSync(d).isDirectory() && fs.accessSync(d, fs.constants.W_OK) === undefined && !takesDirect(d);
  } catch {
    return false;
  }
});

const GEOMETRY = { zoneCount: 16, zoneSize: 1 << 20, zoneCapacity: 768 * 1024, logicalBlockSize: 4096, maxOpenZones: 4, maxActiveZones: 6 };
/** More zones than the device keeps fds for (MAX_CACHED_FDS = 64), no zone limits. */
const MANY_ZONES = { zoneCount: 80, zoneSize: 64 * 1024, zoneCapacity: 64 * 1024, logicalBlockSize: 4096, maxOpenZones: 0, maxActiveZones: 0 };

/** The flags (octal in fdinfo) of every fd this process holds open on files under `dir`. */
function openFlagsUnder(dir: string): number[] {
  const out: number[] = [];
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    let target: string;
    try {
      target = fs.readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      continue; // the fd readdir itself used, gone already
    }
    if (!target.startsWith(dir + path.sep)) continue;
    const info = fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8');
    out.push(parseInt(/flags:\s+([0-7]+)/.exec(info)![1]!, 8));
  }
  return out;
}

/**
 * Keeps libuv's pool busy for a while (pbkdf2 runs there), so reads started now wait in its
 * queue while the test goes on: what happens to their fd meanwhile is what they meet.
 */
function busyPool(): Promise<unknown> {
  const threads = Number(process.env.UV_THREADPOOL_SIZE ?? 4);
  return Promise.all(Array.from({ length: 2 * threads }, () => promisify(crypto.pbkdf2)('x', 'y', 100_000, 32, 'sha256')));
}

function pattern(length: number, seed: number): Buffer {
  const b = Buffer.alloc(length);
  for (let i = 0; i < length; i++) b[i] = (i * 7 + (i >>> 8) * 13 + seed) & 0xff;
  return b;
}

if (tmpTakesDirect) {
  describeZonedDevice('emulated (file-backed), direct (O_DIRECT)', () => {
    const tmp = tempDir();
    const dir = path.join(tmp.dir, 'dev');
    return {
      open: () => createEmulatedDevice(dir, GEOMETRY, { direct: true }),
      reopen: (dev) => {
        dev.close();
        return openEmulatedDevice(dir, { direct: true });
      },
      cleanup: tmp.cleanup,
    };
  });
} else {
  it.skip(`ZonedDevice conformance in direct mode: ${NO_DIRECT_REASON}`, () => {});
}

describe('aligned buffers (zns/aligned.ts)', () => {
  it('starts every buffer at the asked alignment and gives the asked length', () => {
    for (const align of [512, 4096, 65536]) {
      for (const length of [1, 100, 4096, 70_000]) {
        const b = alignedBuffer(length, align);
        expect(b.length).toBe(length);
        expect(isAligned(b, align), `${length} bytes at ${align}`).toBe(true);
      }
    }
    // A view one byte in is not aligned: the check looks at the address, not the length.
    expect(isAligned(alignedBuffer(8192).subarray(1), 4096)).toBe(false);
    const shared = alignedShared(10_000);
    expect(shared.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(shared.length).toBe(10_000);
    expect(isAligned(shared, 4096)).toBe(true);
  });
});

describe('emulated device, direct mode', () => {
  it.skipIf(!tmpTakesDirect)('opens its zone files with O_DIRECT and says so; a buffered device does not' + NO_DIRECT_NOTE, () => {
    const tmp = tempDir();
    try {
      const directDir = path.join(tmp.dir, 'direct');
      const bufferedDir = path.join(tmp.dir, 'buffered');
      const direct = createEmulatedDevice(directDir, GEOMETRY, { direct: true });
      const buffered = createEmulatedDevice(bufferedDir, GEOMETRY);
      expect(direct.direct).toBe(true);
      expect(buffered.direct).toBe(false);
      for (const dev of [direct, buffered]) {
        dev.write(0, Buffer.alloc(4096, 1));
        dev.write(GEOMETRY.zoneSize, Buffer.alloc(8192, 2));
      }
      const directFlags = openFlagsUnder(directDir);
      const bufferedFlags = openFlagsUnder(bufferedDir);
      expect(directFlags).toHaveLength(2);
      expect(bufferedFlags).toHaveLength(2);
      for (const f of directFlags) expect(f & O_DIRECT_BIT).toBe(O_DIRECT_BIT);
      for (const f of bufferedFlags) expect(f & O_DIRECT_BIT).toBe(0);
      direct.close();
      buffered.close();
      // Through openZonedDevice, as a store opens it; reopened as it is, buffered, without the flag.
      const again = openZonedDevice(directDir, { direct: true });
      expect(again.direct).toBe(true);
      again.read(0, 10);
      expect(openFlagsUnder(directDir).every((f) => (f & O_DIRECT_BIT) !== 0)).toBe(true);
      again.close();
      const plain = openZonedDevice(directDir);
      expect(plain.direct).toBe(false);
      plain.close();
    } finally {
      tmp.cleanup();
    }
  });

  it.skipIf(!tmpTakesDirect)('writes from unaligned memory (a pool slice, an odd view) and reads into unaligned targets' + NO_DIRECT_NOTE, () => {
    const tmp = tempDir();
    try {
      const dev = createEmulatedDevice(path.join(tmp.dir, 'dev'), GEOMETRY, { direct: true });
      const data = pattern(3 * 4096, 1);
      const odd = Buffer.alloc(data.length + 1);
      data.copy(odd, 1);
      const view = odd.subarray(1);
      expect(isAligned(view, 4096)).toBe(false);
      dev.write(0, view);
      expect(dev.read(0, data.length).equals(data)).toBe(true);
      // An aligned write goes straight from the caller's memory (and leaves it as it was).
      const aligned = alignedBuffer(4096);
      pattern(4096, 2).copy(aligned);
      dev.write(data.length, aligned);
      expect(aligned.equals(pattern(4096, 2))).toBe(true);
      expect(dev.read(data.length, 4096).equals(pattern(4096, 2))).toBe(true);
      // readInto an aligned target at an aligned place: the same bytes.
      const target = alignedBuffer(8192);
      dev.readInto(4096, target);
      expect(target.equals(data.subarray(4096, 3 * 4096))).toBe(true);
      dev.close();
      // What direct mode wrote, a buffered open reads (the same file bytes).
      const plain = openEmulatedDevice(path.join(tmp.dir, 'dev'));
      expect(plain.read(0, data.length).equals(data)).toBe(true);
      plain.close();
    } finally {
      tmp.cleanup();
    }
  });

  it.skipIf(refusing === undefined)(`refuses with ERR_DIRECT_IO_UNSUPPORTED where the filesystem has no O_DIRECT (${refusing ?? 'none mounted here: tmpfs takes O_DIRECT since Linux 6.6'})`, () => {
    const dir = fs.mkdtempSync(path.join(refusing!, 'zns-slab-direct-'));
    try {
      createEmulatedDevice(path.join(dir, 'dev'), GEOMETRY).close();
      let caught: unknown;
      try {
        openEmulatedDevice(path.join(dir, 'dev'), { direct: true, exclusive: true });
      } catch (err) {
        caught = err;
      }
      expect(caught).toMatchObject({ code: ErrorCode.DIRECT_IO_UNSUPPORTED });
      expect((caught as Error).cause).toMatchObject({ code: 'EINVAL' });
      // The lock taken for it is let go: a buffered open works.
      openEmulatedDevice(path.join(dir, 'dev'), { exclusive: true }).close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe.each([
  ['buffered', false],
  ['direct', true],
] as const)('emulated device readAsync, %s', (_name, direct) => {
  it.skipIf(direct && !tmpTakesDirect)('keeps each zone fd open while its reads are in flight, across more zones than the fd cache holds' + (direct ? NO_DIRECT_NOTE : ''), async () => {
    const tmp = tempDir();
    const dir = path.join(tmp.dir, 'dev');
    try {
      const dev = createEmulatedDevice(dir, MANY_ZONES, { direct });
      const z = MANY_ZONES.zoneSize;
      const data = Array.from({ length: MANY_ZONES.zoneCount }, (_, i) => pattern(2 * 4096, i));
      data.forEach((d, i) => dev.write(i * z, d));
      const busy = busyPool();
      // Every zone's fd is opened for a read, and then evicted by the next 64 zones' fds while
      // that read may still be queued on the pool: an fd closed (or reused) under it would
      // give EBADF or another zone's bytes.
      const reads: { zone: number; at: number; len: number; p: Promise<Buffer> }[] = [];
      for (let round = 0; round < 4; round++) {
        for (let i = 0; i < MANY_ZONES.zoneCount; i++) {
          const zone = (i * 37 + round * 11) % MANY_ZONES.zoneCount;
          const at = (round * 1001 + zone) % 4096;
          const len = 100 + ((zone * 97) % 4000);
          reads.push({ zone, at, len, p: dev.readAsync(zone * z + at, len) });
          if (i % 3 === 0) dev.read(((zone + 40) % MANY_ZONES.zoneCount) * z, 16); // more fd churn, synchronously
        }
      }
      expect(dev.readsInFlight).toBeGreaterThan(0);
      const results = await Promise.all(reads.map((r) => r.p));
      await busy;
      results.forEach((got, i) => {
        const { zone, at, len } = reads[i]!;
        expect(got.equals(data[zone]!.subarray(at, at + len)), `zone ${zone} [${at}, +${len})`).toBe(true);
      });
      expect(dev.readsInFlight).toBe(0);
      // Only cached fds are open now: at most 64, none leaked by the reads.
      expect(openFlagsUnder(dir).length).toBeLessThanOrEqual(64);
      dev.close();
      expect(openFlagsUnder(dir)).toHaveLength(0);
    } finally {
      tmp.cleanup();
    }
  });

  it.skipIf(direct && !tmpTakesDirect)('a reset while reads are in flight neither breaks them nor leaks their fd; close leaves no fd behind' + (direct ? NO_DIRECT_NOTE : ''), async () => {
    const tmp = tempDir();
    const dir = path.join(tmp.dir, 'dev');
    try {
      const dev = createEmulatedDevice(dir, GEOMETRY, { direct });
      const old = pattern(4 * 4096, 7);
      dev.write(0, old);
      const busy = busyPool();
      const reads = Array.from({ length: 32 }, (_, i) => dev.readAsync(i * 100, 4096));
      dev.resetZone(0);
      const fresh = pattern(4 * 4096, 99);
      dev.write(0, fresh);
      // Each read started before the reset: the zone's bytes then, never the new ones.
      const got = await Promise.all(reads);
      await busy;
      got.forEach((b, i) => expect(b.equals(old.subarray(i * 100, i * 100 + 4096)), `read ${i}`).toBe(true));
      expect(dev.read(0, fresh.length).equals(fresh)).toBe(true);
      // The reset zone's old fd was closed by its last read; the new file's fd is the one open.
      expect(openFlagsUnder(dir)).toHaveLength(1);
      const late = Array.from({ length: 8 }, (_, i) => dev.readAsync((i % 4) * 4096, 4096));
      dev.close();
      for (const s of await Promise.allSettled(late)) expect(s).toMatchObject({ status: 'rejected', reason: { code: ErrorCode.CLOSED } });
      expect(openFlagsUnder(dir)).toHaveLength(0);
    } finally {
      tmp.cleanup();
    }
  });

  it.skipIf(direct && !tmpTakesDirect)('a read failure comes back as ERR_DEVICE_IO with the errno as cause' + (direct ? NO_DIRECT_NOTE : ''), async () => {
    const tmp = tempDir();
    const dir = path.join(tmp.dir, 'dev');
    try {
      const dev: EmulatedZonedDevice = createEmulatedDevice(dir, GEOMETRY, { direct });
      dev.write(0, pattern(4096, 1));
      // The zone file cut short behind the device's back: the device's write pointer says 4096.
      fs.truncateSync(path.join(dir, 'zone-0000000.bin'), 0);
      await expect(dev.readAsync(0, 4096)).rejects.toMatchObject({ code: ErrorCode.DEVICE_IO });
      expect(() => dev.readInto(0, Buffer.alloc(4096))).toThrow(expect.objectContaining({ code: ErrorCode.DEVICE_IO }));
      dev.close();
    } finally {
      tmp.cleanup();
    }
  });
});
