/**
 * The engine on real zoned block devices (null_blk, QEMU's NVMe ZNS), in the VM CI
 * (`npm run test:zoned`). Given ZNS_TEST_DEVICES=/dev/nullb0,...; without it, nothing runs here
 * (the emulated device covers the same engine paths in store.test.ts).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { openStore } from '../../engine/store.js';
import { ErrorCode } from '../../errors.js';
import { ZoneCondition, effectiveLimit } from '../../zns/device.js';
import { openLibzbdDevice } from '../../zns/libzbd.js';
import { codeOf } from '../helpers/store.js';
import { tempDir } from '../helpers/tmp.js';

const devices = (process.env.ZNS_TEST_DEVICES ?? '').split(',').map((d) => d.trim()).filter(Boolean);
const cli = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'tools', 'cli.js');

/** The device's own zone report, from a fresh libzbd handle (not the store's view). */
function kernelReport(device: string) {
  const dev = openLibzbdDevice(device);
  try {
    return dev.reportZones();
  } finally {
    dev.close();
  }
}

function big(i: number): Buffer {
  const b = Buffer.alloc(300_000, i & 0xff);
  b.writeUInt32LE(i, 0);
  return b;
}

if (devices.length === 0) process.stderr.write('device.store.test: no ZNS_TEST_DEVICES given; the store-on-device suites are not registered\n');

describe.runIf(devices.length > 0)('the store on real zoned devices', () => {
  for (const device of devices) {
    describe(device, () => {
      it('stores across epochs, survives reopen, and an epoch close resets its zones in the kernel report', () => {
        const tmp = tempDir();
        try {
          const dir = path.join(tmp.dir, 'store');
          // Earlier tests left a store's data on the device: start over, on purpose.
          let store = openStore(dir, { device, overwriteDevice: true });
          const e1 = store.epochCurrent();
          const inE1 = Array.from({ length: 240 }, (_, i) => store.put(big(i))); // ~72 MB: more than one zone
          const e2 = store.epochAdvance();
          const inE2 = Array.from({ length: 1000 }, (_, i) => store.put(Buffer.from(`small ${i}`)));
          store.flush();
          store.close();

          store = openStore(dir); // the catalog remembers the device path
          expect(store.device.kind).toBe('libzbd');
          inE1.forEach((h, i) => expect(store.get(h).equals(big(i))).toBe(true));
          inE2.forEach((h, i) => expect(store.get(h).toString()).toBe(`small ${i}`));

          const e1Zones = store.statsZones().filter((z) => z.epoch === e1).map((z) => z.index);
          expect(e1Zones.length).toBeGreaterThanOrEqual(2);
          const before = kernelReport(device);
          for (const z of e1Zones) expect(before[z]!.writePointer).toBeGreaterThan(before[z]!.start);

          store.epochClose(e1);

          const after = kernelReport(device);
          for (const z of e1Zones) {
            expect(after[z]!.condition).toBe(ZoneCondition.EMPTY);
            expect(after[z]!.writePointer).toBe(after[z]!.start);
          }
          expect(store.statsGlobal().counters.zoneResets).toBe(e1Zones.length);
          for (const h of inE1.slice(0, 20)) expect(codeOf(() => store.get(h))).toBe(ErrorCode.STALE_HANDLE);
          inE2.forEach((h, i) => expect(store.get(h).toString()).toBe(`small ${i}`));
          expect(store.epochState(e2)).toBe('ACTIVE');
          store.close();
        } finally {
          tmp.cleanup();
        }
      });

      it('zone GC moves slabs on the kernel device: collected zones are EMPTY in its report, every handle still reads', () => {
        const tmp = tempDir();
        try {
          const dir = path.join(tmp.dir, 'store');
          const store = openStore(dir, { device, overwriteDevice: true, gc: { idleMs: 0, spaceAmplification: 100 } });
          const mid = (i: number) => {
            const b = Buffer.alloc(16_000, i & 0xff);
            b.writeUInt32LE(i, 0);
            return b;
          };
          const e1 = store.epochCurrent();
          const hs = Array.from({ length: 8000 }, (_, i) => store.put(mid(i))); // ~128 MB: several zones
          store.flush();
          hs.forEach((h, i) => i % 4 !== 0 && store.free(h)); // every slab keeps a quarter
          const zonesBefore = new Set(store.statsZones().filter((z) => z.epoch === e1).map((z) => z.index));
          const r = store.gc();
          expect(r.zonesCollected).toBeGreaterThan(0);
          const zonesAfter = new Set(store.statsZones().filter((z) => z.epoch === e1).map((z) => z.index));
          const collected = [...zonesBefore].filter((z) => !zonesAfter.has(z));
          expect(collected.length).toBeGreaterThan(0);
          const report = kernelReport(device);
          for (const z of collected) expect(report[z]!.condition).toBe(ZoneCondition.EMPTY);
          hs.forEach((h, i) => i % 4 === 0 && expect(store.get(h).equals(mid(i))).toBe(true));
          store.verify();
          store.close();
          const again = openStore(dir);
          hs.forEach((h, i) => i % 4 === 0 && expect(again.get(h).equals(mid(i))).toBe(true));
          again.verify();
          again.close();
        } finally {
          tmp.cleanup();
        }
      });

      it("holds the device's open and active limits with more epochs than zones may be active", () => {
        const tmp = tempDir();
        try {
          const store = openStore(path.join(tmp.dir, 'store'), { device, overwriteDevice: true });
          const g = store.device.geometry;
          const epochs = effectiveLimit(g.maxActiveZones, g.zoneCount) + 3;
          const handles: bigint[] = [];
          for (let e = 0; e < epochs; e++) {
            handles.push(store.put(Buffer.alloc(5000, e)));
            store.flush(); // every epoch takes a zone
            store.epochAdvance();
          }
          const report = kernelReport(device);
          const open = report.filter((z) => z.condition === ZoneCondition.IMPLICIT_OPEN || z.condition === ZoneCondition.EXPLICIT_OPEN).length;
          const active = open + report.filter((z) => z.condition === ZoneCondition.CLOSED).length;
          expect(open).toBeLessThanOrEqual(effectiveLimit(g.maxOpenZones, g.zoneCount));
          expect(active).toBeLessThanOrEqual(effectiveLimit(g.maxActiveZones, g.zoneCount));
          expect(store.statsGlobal().counters.zonesFinishedEarly).toBeGreaterThanOrEqual(3);
          handles.forEach((h, e) => expect(store.get(h).equals(Buffer.alloc(5000, e))).toBe(true));
          store.close();
        } finally {
          tmp.cleanup();
        }
      });

      it('knows its own device: one owner at a time, another catalog refused, a lost catalog recovered', () => {
        const tmp = tempDir();
        try {
          // First another store on the device, whose catalog is kept aside.
          const x = path.join(tmp.dir, 'x');
          const first = openStore(x, { device, overwriteDevice: true });
          first.put(Buffer.from('x'));
          first.close();
          fs.copyFileSync(path.join(x, 'catalog.db'), path.join(tmp.dir, 'x.db'));
          const a = path.join(tmp.dir, 'a');
          let store = openStore(a, { device, overwriteDevice: true });
          const kept = Array.from({ length: 3000 }, (_, i) => ({ h: store.put(Buffer.alloc(200 + (i % 3000), i & 0xff)), i }));
          store.flush();
          // O_EXCL: a second store on the device is refused while this one has it.
          expect(codeOf(() => openStore(path.join(tmp.dir, 'b'), { device }))).toBe(ErrorCode.DEVICE_LOCKED);
          store.close();
          // No catalog, device full of data: refused, nothing reset.
          const written = kernelReport(device).filter((z) => z.writePointer > z.start).length;
          expect(codeOf(() => openStore(path.join(tmp.dir, 'b'), { device }))).toBe(ErrorCode.CATALOG_MISSING);
          expect(kernelReport(device).filter((z) => z.writePointer > z.start).length).toBe(written);
          // The other store's catalog on this device: refused from the slab headers (a raw device has no label).
          fs.mkdirSync(path.join(tmp.dir, 'd'));
          fs.copyFileSync(path.join(tmp.dir, 'x.db'), path.join(tmp.dir, 'd', 'catalog.db'));
          expect(codeOf(() => openStore(path.join(tmp.dir, 'd'), { device }))).toBe(ErrorCode.CATALOG_MISMATCH);
          expect(kernelReport(device).filter((z) => z.writePointer > z.start).length).toBe(written);
          // The catalog is lost: recover rebuilds it from the device.
          fs.rmSync(path.join(a, 'catalog.db'));
          const r = spawnSync(process.execPath, [cli, 'recover', a, '--device', device], { encoding: 'utf8' });
          expect(r.status, r.stderr).toBe(0);
          const report = JSON.parse(r.stdout) as { objects: number; objectsCorrupt: number };
          expect(report.objects).toBe(kept.length);
          expect(report.objectsCorrupt).toBe(0);
          store = openStore(a, { device });
          for (const { h, i } of kept) expect(store.get(h).equals(Buffer.alloc(200 + (i % 3000), i & 0xff))).toBe(true);
          store.close();
        } finally {
          tmp.cleanup();
        }
      });

      it('getMany and getAsync read through the device fd on the thread pool at queue depth; freed or closed while in flight is refused', async () => {
        const tmp = tempDir();
        try {
          const dir = path.join(tmp.dir, 'store');
          let store = openStore(dir, { device, overwriteDevice: true });
          const sized = (i: number) => {
            const b = Buffer.alloc(1000 + ((i * 397) % 9000), i & 0xff);
            b.writeUInt32LE(i, 0);
            return b;
          };
          const handles = Array.from({ length: 600 }, (_, i) => store.put(sized(i)));
          store.close();
          // A real device is always direct: the option changes nothing, and stats say so.
          store = openStore(dir, { direct: true });
          expect(store.device.direct).toBe(true);
          expect(store.statsGlobal().device.direct).toBe(true);
          const order = handles.map((_, i) => (i * 211) % handles.length);
          for (const queueDepth of [1, 16, 64]) {
            const got = await store.getMany(order.map((i) => handles[i]!), { queueDepth });
            got.forEach((b, k) => expect(b.equals(sized(order[k]!)), `depth ${queueDepth} [${k}]`).toBe(true));
          }
          const target = Buffer.alloc(10_000);
          expect(store.getInto(handles[7]!, target)).toBe(sized(7).length);
          expect(target.subarray(0, sized(7).length).equals(sized(7))).toBe(true);
          const freed = store.getAsync(handles[0]!).then(() => 'read', (err: { code?: string }) => err.code);
          store.free(handles[0]!);
          expect(await freed).toBe(ErrorCode.STALE_HANDLE);
          const inFlight = store.getMany(handles.slice(1), { queueDepth: 32 }).then(() => 'read', (err: { code?: string }) => err.code);
          store.close();
          expect(await inFlight).toBe(ErrorCode.CLOSED);
          // The fd was let go once the last read ended: the device opens again, exclusively.
          store = openStore(dir);
          expect((await store.getAsync(handles[1]!)).equals(sized(1))).toBe(true);
          store.close();
        } finally {
          tmp.cleanup();
        }
      });

      it('zns-slab zones reads the raw device, like blkzone report', () => {
        const r = spawnSync(process.execPath, [cli, 'zones', device, '--json'], { encoding: 'utf8' });
        expect(r.status, r.stderr).toBe(0);
        const rows = JSON.parse(r.stdout) as { index: number; condition: string; writePointer: number; start: number }[];
        const report = kernelReport(device);
        expect(rows).toHaveLength(report.length);
        rows.forEach((row, i) => {
          expect(row.index).toBe(i);
          expect(row.writePointer).toBe(report[i]!.writePointer);
        });
      });
    });
  }
});
