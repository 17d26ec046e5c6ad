/**
 * engine/observe.ts on real zoned block devices (null_blk, NVMe ZNS), in the VM CI
 * (`npm run test:zoned`): a writer child holds the device (O_EXCL) and its catalog; the observer
 * reads the kernel's zone report on a read-only descriptor and the slab headers with O_DIRECT.
 * Given ZNS_TEST_DEVICES=/dev/nullb0,...; without it nothing is registered here.
 * EVERY ZONE OF THE GIVEN DEVICES IS RESET.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { observe } from '../../engine/observe.js';
import { openStore } from '../../engine/store.js';
import { ZONE_CONDITION_NAMES } from '../../zns/device.js';
import { openLibzbdDevice } from '../../zns/libzbd.js';
import { payload } from '../fixtures/payload.mjs';
import { observeSnapshots, startLiveWriter, stopStillWriting } from '../helpers/liveWriter.js';
import { tempDir } from '../helpers/tmp.js';

const devices = (process.env.ZNS_TEST_DEVICES ?? '').split(',').map((d) => d.trim()).filter(Boolean);
/** Node is slow in the VM's emulated CPU. */
const TEST_TIMEOUT_MS = 300_000;
const SNAPSHOTS = 8;
const PAUSE_MS = 150;

if (devices.length === 0) process.stderr.write('observe.device.test: no ZNS_TEST_DEVICES given; the suites are not registered\n');

describe.runIf(devices.length > 0)('observing a store on a real zoned device', () => {
  for (const device of devices) {
    it(`${device}: read-only beside the writer, the kernel's conditions and write pointers; the writer never notices`, async () => {
      const tmp = tempDir();
      const dir = path.join(tmp.dir, 'store');
      const writer = await startLiveWriter(dir, { storeOptions: { device, overwriteDevice: true }, tickMs: 40, perTick: 30 });
      try {
        const snapshots = await observeSnapshots(dir, writer, SNAPSHOTS, PAUSE_MS);
        for (const s of snapshots) {
          expect(s.device.kind).toBe('libzbd');
          expect(s.device.path).toBe(device);
          expect(s.zones.length).toBe(s.device.geometry.zoneCount);
          for (const z of s.zones) if (z.epoch !== null && z.condition !== 'full') expect(z.liveBytes + z.deadBytes + z.unflushedBytes, `zone ${z.index}`).toBe(z.writePointer - z.start);
        }
        expect(snapshots.at(-1)!.catalog!.commitSequence).toBeGreaterThan(snapshots[0]!.catalog!.commitSequence);
        expect(snapshots.slice(1).some((s) => s.zones.some((z) => z.moved))).toBe(true);
        // A kernel device reports open zones as such: the writer's head is open while it writes.
        expect(snapshots.some((s) => s.zones.some((z) => z.condition === 'implicit-open' || z.condition === 'explicit-open'))).toBe(true);

        const live = await stopStillWriting(writer);

        // Idle: the observer's zones are the kernel's, and its stats the store's own.
        const idle = observe(dir);
        const kernel = openLibzbdDevice(device);
        try {
          expect(idle.zones.map((z) => [z.condition, z.writePointer])).toEqual(kernel.reportZones().map((z) => [ZONE_CONDITION_NAMES[z.condition], z.writePointer]));
        } finally {
          kernel.close();
        }
        const store = openStore(dir, { readOnly: true });
        try {
          const strip = (g: object) => ({ ...g, takenAt: 0, store: 0, gc: 0 });
          expect(strip(idle.stats!)).toEqual(strip(store.statsGlobal()));
          for (const [h, seed, i] of live) expect(store.get(BigInt(h)).equals(payload(seed, i))).toBe(true);
        } finally {
          store.close();
        }
        const again = openStore(dir);
        again.put(Buffer.from('after the observer'));
        again.flush();
        again.close();
      } finally {
        writer.child.kill('SIGKILL');
        tmp.cleanup();
      }
    }, TEST_TIMEOUT_MS);
  }
});
