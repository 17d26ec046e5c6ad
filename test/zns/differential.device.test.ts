/**
 * Issue 14's differential test, in CI's VM: seeded random zone-operation sequences run on a
 * kernel zoned device (through LibzbdDevice, no engine) and on the emulated device with the
 * same geometry, compared operation by operation (outcome: ok or the error code; every zone's
 * condition and write pointer). A fixed set of seeds plus a fresh one each run (printed); a
 * divergence prints its seed and the shortest sequence that shows it (test/zns/differential.ts).
 *
 * ZNS_TEST_DIFF names the devices and the emulation profile each matches:
 * `/dev/nullb2=null_blk,/dev/nvme0n2=nvme` (tools/vm/zoned-tests.sh makes them: 16 x 1 MiB
 * zones, open 4 / active 6; NVMe zones of 1 MiB with 768 KiB capacity). EVERY ZONE OF THESE
 * DEVICES IS RESET. Without it the suite is registered skipped under a name that says why.
 *
 * The fixed seeds must show 0 divergences. A fresh seed's divergence is printed with its
 * shortest sequence (and written to /tmp/zns-differential.json); ZNS_DIFF_STRICT=1 makes it
 * fail the run too.
 * ZNS_DIFF_SEEDS and ZNS_DIFF_OPS change the 200 x 200; ZNS_DIFF_FIRST the first seed (1).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { type EmulatedProfileName, createEmulatedDevice } from '../../zns/emulated.js';
import { ErrorCode, ZnsSlabError } from '../../errors.js';
import { Errno, ZbdZoneOp, errnoName, libzbd } from '../../native/libzbd.js';
import type { ZonedDevice } from '../../zns/device.js';
import { type LibzbdDevice, openLibzbdDevice } from '../../zns/libzbd.js';
import { type Op, divergenceKey, formatDivergence, generate, runPair, shrink } from './differential.js';

const PAIRS = (process.env['ZNS_TEST_DIFF'] ?? '')
  .split(',')
  .map((p) => p.trim())
  .filter((p) => p.length > 0)
  .map((p) => {
    const [device, profile] = p.split('=');
    if (profile !== 'null_blk' && profile !== 'nvme') throw new Error(`ZNS_TEST_DIFF: ${p} needs =null_blk or =nvme`);
    return { device: device!, profile: profile as EmulatedProfileName };
  });
const SEEDS = Number(process.env['ZNS_DIFF_SEEDS'] ?? 200);
/** The first fixed seed (seeds FIRST..FIRST+SEEDS-1), to run further seeds by hand. */
const FIRST = Number(process.env['ZNS_DIFF_FIRST'] ?? 1);
const OPS = Number(process.env['ZNS_DIFF_OPS'] ?? 200);
const STRICT = process.env['ZNS_DIFF_STRICT'] === '1';
/** Shrinking replays at most this many sequences per divergence kind, and shrinks for at most this long in all (bounded CI time). */
const SHRINK_BUDGET = Number(process.env['ZNS_DIFF_SHRINK'] ?? 40);
const SHRINK_MS = 20_000;

/**
 * The kernel as it is: writes and zone operations go straight to the fd (pwrite, the zone
 * ioctls), so a write the kernel splits lands part way as it does, and a close leaves what the
 * drive leaves; an errno is named only as a limit or not. A split write's first request is
 * sent alone (the rest follow in one pwrite, as the kernel would send them), so its error is
 * the first request's, the code both project devices give. Reports and reads go through
 * LibzbdDevice (its read contract: nothing past the write pointer, which the emulation shares).
 */
function rawKernel(dev: LibzbdDevice): ZonedDevice {
  const lib = libzbd();
  const fd = dev.fileDescriptor;
  const g = dev.geometry;
  const raw = Buffer.allocUnsafeSlow(g.zoneSize + 2 * 4096);
  const pad = (4096 - Number(lib.address(raw) % 4096n)) % 4096;
  const aligned = raw.subarray(pad, pad + g.zoneSize + 4096);
  const fail = (what: string): never => {
    const e = lib.errno();
    const code = e === Errno.ETOOMANYREFS ? ErrorCode.ZONE_OPEN_LIMIT : e === Errno.EOVERFLOW ? ErrorCode.ZONE_ACTIVE_LIMIT : ErrorCode.DEVICE_IO;
    throw new ZnsSlabError(code, `${what}: ${errnoName(e)}`);
  };
  const most = Math.max(g.logicalBlockSize, dev.maxRequestBytes - (dev.maxRequestBytes % g.logicalBlockSize));
  const send = (buf: Buffer, offset: number) => {
    const n = lib.pwrite(fd, buf, buf.length, offset);
    if (n < 0) fail(`write of ${buf.length} bytes at ${offset}`);
    if (n !== buf.length) throw new ZnsSlabError(ErrorCode.DEVICE_IO, `short write: ${n} of ${buf.length}`);
  };
  const op = (name: string, code: number, zone: number) => {
    if (lib.zbd_zones_operation(fd, code, zone * g.zoneSize, g.zoneSize) !== 0) fail(`${name} zone ${zone}`);
  };
  return {
    kind: dev.kind,
    path: dev.path,
    geometry: g,
    reportZones: (first?: number, count?: number) => dev.reportZones(first, count),
    read: (offset: number, length: number) => {
      dev.reportZones();
      return dev.read(offset, length);
    },
    write: (offset: number, data: Uint8Array) => {
      aligned.set(data);
      // The first request of a write the kernel splits goes alone, then the rest whatever it
      // met (the kernel sends every request): the same requests, and its error is the first
      // request's own, as LibzbdDevice and the emulation report it.
      const first = Math.min(data.length, most, g.zoneSize - (offset % g.zoneSize));
      let firstError: ZnsSlabError | undefined;
      try {
        send(aligned.subarray(0, first), offset);
      } catch (err) {
        firstError = err as ZnsSlabError;
      }
      if (first < data.length) {
        try {
          send(aligned.subarray(first, data.length), offset + first);
        } catch (err) {
          throw firstError ?? err;
        }
      }
      if (firstError) throw firstError;
    },
    resetZone: (z: number) => op('reset', ZbdZoneOp.RESET, z),
    openZone: (z: number) => op('open', ZbdZoneOp.OPEN, z),
    closeZone: (z: number) => op('close', ZbdZoneOp.CLOSE, z),
    finishZone: (z: number) => op('finish', ZbdZoneOp.FINISH, z),
    flush: () => {},
    close: () => {},
  } as ZonedDevice;
}

if (PAIRS.length === 0) {
  process.stderr.write('differential.device.test.ts: ZNS_TEST_DIFF is empty (no kernel zoned device): skipped; `npm run test:zoned` runs it in a VM\n');
  describe.skip('differential: kernel device against the emulation (skipped: ZNS_TEST_DIFF names no zoned device; the VM suite runs it)', () => {
    it('runs in the VM', () => {});
  });
}

for (const { device, profile } of PAIRS) {
  describe(`differential: ${device} against the emulation (profile ${profile})`, () => {
    it(`${SEEDS} fixed seeds and a fresh one, ${OPS} operations each`, () => {
      const kernel = openLibzbdDevice(device);
      const g = kernel.geometry;
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zns-diff-'));
      // The profile with the kernel's request size.
      const emulated = createEmulatedDevice(dir, { ...g }, { profile: { name: profile, maxSectorsBytes: kernel.maxRequestBytes } });
      const raw = rawKernel(kernel);
      const NAMES: [string, string] = ['kernel (raw)', `emulated (${profile})`];
      // Enough zones that both limits are reached often, few enough that they are.
      const zones = Math.min(g.zoneCount - 1, g.maxActiveZones + 2);
      const fresh = (Date.now() % 2_000_000_000) + 1_000_000;
      const seeds = [...Array.from({ length: SEEDS }, (_, i) => i + FIRST), fresh];
      process.stdout.write(`differential ${device}: seeds ${FIRST}..${FIRST + SEEDS - 1} and fresh seed ${fresh}, ${OPS} ops each, zones 0..${zones - 1} of ${g.zoneCount} (${g.zoneSize} bytes, capacity ${g.zoneCapacity}, open ${g.maxOpenZones}, active ${g.maxActiveZones}, max request ${kernel.maxRequestBytes})\n`);
      const t0 = Date.now();
      const kinds = new Map<string, { seeds: number[]; report: string }>();
      let divergent = 0;
      let shrinkMs = 0;
      try {
        for (const seed of seeds) {
          const ops = generate(seed, OPS, zones);
          const d = runPair(raw, emulated, ops, g, zones);
          if (!d) continue;
          divergent++;
          const key = divergenceKey(d);
          const known = kinds.get(key);
          if (known) {
            known.seeds.push(seed);
            continue;
          }
          let budget = SHRINK_BUDGET;
          const shrinkStart = Date.now();
          const shortest = shrink(ops.slice(0, d.index + 1), (o: Op[]) => {
            if (budget-- <= 0 || shrinkMs + Date.now() - shrinkStart > SHRINK_MS) return false;
            const x = runPair(raw, emulated, o, g, zones);
            return x !== undefined && divergenceKey(x) === key;
          });
          // A divergence that does not replay (timing on the device) is shown unshrunk.
          const again = runPair(raw, emulated, shortest, g, zones);
          const report = again
            ? formatDivergence(`${device} [${key}]`, seed, shortest, again, NAMES)
            : `${formatDivergence(`${device} [${key}]`, seed, ops.slice(0, d.index + 1), d, NAMES)}\n  (did not diverge again when replayed: not shrunk)`;
          kinds.set(key, { seeds: [seed], report });
          shrinkMs += Date.now() - shrinkStart;
          process.stdout.write(`${report}\n`);
        }
      } finally {
        kernel.close();
        emulated.close();
        fs.rmSync(dir, { recursive: true, force: true });
      }
      const secs = ((Date.now() - t0) / 1000).toFixed(1);
      process.stdout.write(`differential ${device}: ${seeds.length} seeds x ${OPS} ops in ${secs} s (${(shrinkMs / 1000).toFixed(1)} s of it shrinking): ${divergent} divergent seeds, ${kinds.size} kinds\n`);
      for (const [key, k] of kinds) {
        process.stdout.write(`  ${key}: ${k.seeds.length} seeds: ${k.seeds.slice(0, 12).join(' ')}${k.seeds.length > 12 ? ' ...' : ''}\n`);
      }
      let previous: Record<string, unknown> = {};
      const out = '/tmp/zns-differential.json';
      try {
        previous = JSON.parse(fs.readFileSync(out, 'utf8')) as Record<string, unknown>;
      } catch {
        // first device of the run
      }
      previous[device] = { profile, seeds: seeds.length, ops: OPS, seconds: Number(secs), divergentSeeds: divergent, kinds: Object.fromEntries([...kinds].map(([key, k]) => [key, { seeds: k.seeds, shortest: k.report }])) };
      fs.writeFileSync(out, JSON.stringify(previous, null, 2));
      // The fixed seeds must not diverge (they did not when the profiles landed); a fresh seed's
      // divergence is printed with its shortest sequence, and fails the run only with ZNS_DIFF_STRICT=1.
      const fixedDivergent = [...kinds.values()].filter((k) => k.seeds.some((seed) => seed !== fresh));
      expect(fixedDivergent.map((k) => k.report)).toEqual([]);
      if (STRICT) expect([...kinds.values()].map((k) => k.report)).toEqual([]);
    }, 600_000);
  });
}
