/**
 * `zns-slab zones info|reset|open|close|finish` on kernel zoned devices (null_blk, NVMe ZNS),
 * run as a user runs them: `node dist/tools/cli.js` in a child process. Every result is checked
 * against the kernel's zone report (libzbd, through a handle that leaves zones as they are) and,
 * where util-linux is installed, `blkzone report`.
 *
 * The devices come from ZNS_TEST_DEVICES (comma-separated), as in test/zns/libzbd.test.ts:
 * `npm run test:zoned` boots a VM with /dev/nullb0, /dev/nullb1 and /dev/nvme0n1 and sets it.
 * Without it (a host with no zoned device) the suites are registered skipped, under a name that
 * says why. EVERY ZONE OF THE GIVEN DEVICES IS RESET: never point this at a disk holding data.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { openStore } from '../../engine/store.js';
import { ErrorCode } from '../../errors.js';
import { ZONE_CONDITION_NAMES, ZoneCondition, type Zone, effectiveLimit } from '../../zns/device.js';
import { openLibzbdDevice } from '../../zns/libzbd.js';
import { type ZoneOpResult, ZoneToolExit } from '../../tools/zoneVerbs.js';
import { tempDir } from '../helpers/tmp.js';

const DEVICES = (process.env['ZNS_TEST_DEVICES'] ?? '')
  .split(',')
  .map((d) => d.trim())
  .filter((d) => d.length > 0);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const cli = path.join(root, 'dist', 'tools', 'cli.js');
const SECTOR = 512;
/** Each test runs the CLI several times; node starts slowly in the VM's emulated CPU. */
const TEST_TIMEOUT_MS = 300_000;

const SKIP_REASON = 'no zoned device given (ZNS_TEST_DEVICES is empty); `npm run test:zoned` runs them in a VM';
if (DEVICES.length === 0) process.stderr.write(`zoneVerbs.device.test.ts: ${SKIP_REASON}: suites skipped\n`);

function run(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', input: '' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The kernel's zone report, through a handle that leaves open zones open when it closes. */
function kernel(device: string): Zone[] {
  const dev = openLibzbdDevice(device, { keepOpenZones: true });
  try {
    return dev.reportZones();
  } finally {
    dev.close();
  }
}
const names = (zones: readonly Zone[]) => zones.map((z) => ZONE_CONDITION_NAMES[z.condition]);

/**
 * Zones [first, first + count) as `blkzone report` (util-linux) prints them: condition number and
 * write pointer in bytes. A third opinion, when the tool is installed; undefined otherwise.
 */
function blkzone(device: string, first: Zone, count: number): { condition: number; writePointer: number }[] | undefined {
  const r = spawnSync('blkzone', ['report', '-o', String(first.start / SECTOR), '-c', String(count), device], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return undefined;
  return r.stdout
    .trim()
    .split('\n')
    .map((line) => {
      const m = /start: (0x[0-9a-f]+),.* wptr (0x[0-9a-f]+).* zcond:\s*(\d+)/.exec(line);
      expect(m, line).not.toBeNull();
      return { condition: Number(m![3]), writePointer: (Number.parseInt(m![1]!, 16) + Number.parseInt(m![2]!, 16)) * SECTOR };
    });
}

/** Checks zones [first, first + conditions.length) in the kernel report and in blkzone's. */
function expectZones(device: string, first: number, conditions: string[]): Zone[] {
  const zones = kernel(device);
  const part = zones.slice(first, first + conditions.length);
  expect(names(part)).toEqual(conditions);
  const third = blkzone(device, part[0]!, part.length);
  if (third !== undefined) {
    expect(third.map((z) => z.condition)).toEqual(part.map((z) => z.condition));
    expect(third.map((z) => z.writePointer)).toEqual(part.map((z) => z.writePointer));
  }
  return zones;
}

/** Every zone reset, then one block written in zone 0 and two in zone 2 (both left CLOSED by close()). */
function fresh(device: string): void {
  const dev = openLibzbdDevice(device);
  try {
    dev.resetAllZones();
    const lbs = dev.geometry.logicalBlockSize;
    const zs = dev.geometry.zoneSize;
    dev.write(0, Buffer.alloc(lbs, 1));
    dev.write(2 * zs, Buffer.alloc(2 * lbs, 2));
  } finally {
    dev.close();
  }
}

// On a host without devices the skip shows in the report, with its reason.
if (DEVICES.length === 0) it.skip(`zns-slab zones verbs on kernel devices: ${SKIP_REASON}`, () => {});

describe.runIf(DEVICES.length > 0)('zns-slab zones verbs on kernel devices', () => {
  for (const device of DEVICES) {
    describe(device, () => {
      it('info: geometry, limits and model as libzbd and sysfs say', { timeout: TEST_TIMEOUT_MS }, () => {
        fresh(device);
        const r = run('zones', 'info', device);
        expect(r.status, r.stderr).toBe(ZoneToolExit.OK);
        const info = JSON.parse(r.stdout);
        const dev = openLibzbdDevice(device, { keepOpenZones: true });
        const g = dev.geometry;
        const vendorId = dev.info.vendorId;
        dev.close();
        const name = path.basename(fs.realpathSync(device));
        expect(info).toMatchObject({
          target: device,
          kind: 'libzbd',
          model: 'host-managed',
          geometry: { ...g },
          bytes: { zoneSize: g.zoneSize, zoneCapacity: g.zoneCapacity, deviceSize: g.zoneCount * g.zoneSize, written: 3 * g.logicalBlockSize },
          emulated: null,
          store: null,
        });
        expect(info.kernel).toMatchObject({ name, zoned: fs.readFileSync(`/sys/block/${name}/queue/zoned`, 'utf8').trim(), vendorId, modelShort: 'HM' });
        expect(info.kernel.zoned).toBe('host-managed');
        const sysModel = fs.existsSync(`/sys/block/${name}/device/model`) ? fs.readFileSync(`/sys/block/${name}/device/model`, 'utf8').trim() : null;
        expect(info.kernel.deviceModel).toBe(sysModel);
        expect(info.conditions).toMatchObject({ closed: 2, empty: g.zoneCount - 2 });
        expect(r.stderr).toMatch(new RegExp(`host-managed zoned block device ${device}`));
        expect(r.stderr).toMatch(new RegExp(`limits: open ${g.maxOpenZones || 'no limit'}, active ${g.maxActiveZones || 'no limit'}`));
      });

      it('open, close, finish and reset over ranges, checked against the kernel report and blkzone', { timeout: TEST_TIMEOUT_MS }, () => {
        fresh(device);
        const g = kernel(device);
        const zoneSize = g[1]!.start;
        const lbs = (g[2]!.writePointer - g[2]!.start) / 2;

        let r = run('zones', 'open', device, '2-4');
        expect(r.status, r.stderr).toBe(0);
        expect((JSON.parse(r.stdout) as ZoneOpResult[]).map((x) => [x.zone, x.conditionBefore, x.conditionAfter])).toEqual([
          [2, 'closed', 'explicit-open'],
          [3, 'empty', 'explicit-open'],
          [4, 'empty', 'explicit-open'],
        ]);
        // Open after the command, and after a look at them (the report leaves them open).
        expect(run('zones', device, '--range', '0-4', '--json').status).toBe(0);
        let zones = expectZones(device, 0, ['closed', 'empty', 'explicit-open', 'explicit-open', 'explicit-open']);
        expect(zones[2]!.writePointer).toBe(2 * zoneSize + 2 * lbs);

        r = run('zones', 'close', device, '0-4');
        expect(r.status, r.stderr).toBe(0);
        expect((JSON.parse(r.stdout) as ZoneOpResult[]).map((x) => [x.zone, x.conditionAfter, x.skipped])).toEqual([
          [0, 'closed', 'already closed'],
          [1, 'empty', 'not open (empty)'],
          [2, 'closed', null],
          [3, 'empty', null], // nothing written: empty again (NVMe leaves it closed; the device resets it)
          [4, 'empty', null],
        ]);
        expectZones(device, 0, ['closed', 'empty', 'closed', 'empty', 'empty']);

        r = run('zones', 'finish', device, '--range', '1-2', '--yes');
        expect(r.status, r.stderr).toBe(0);
        zones = expectZones(device, 0, ['closed', 'full', 'full', 'empty']);
        expect(zones[1]!.writePointer).toBe(2 * zoneSize);

        r = run('zones', 'reset', device, '0-3', '--yes');
        expect(r.status, r.stderr).toBe(0);
        expect((JSON.parse(r.stdout) as ZoneOpResult[]).map((x) => x.skipped)).toEqual([null, null, null, 'already empty']);
        zones = expectZones(device, 0, ['empty', 'empty', 'empty', 'empty']);
        expect(zones.slice(0, 4).map((z) => z.writePointer - z.start)).toEqual([0, 0, 0, 0]);
      });

      it('opening past the device\'s open limit reports the kernel\'s refusal per zone', { timeout: TEST_TIMEOUT_MS }, () => {
        fresh(device);
        const dev = openLibzbdDevice(device, { keepOpenZones: true });
        const g = dev.geometry;
        dev.close();
        const maxOpen = effectiveLimit(g.maxOpenZones, g.zoneCount);
        const maxActive = effectiveLimit(g.maxActiveZones, g.zoneCount);
        // The VM's devices all have limits; a device without one has nothing to refuse.
        expect(maxOpen, `${device} has an open limit`).toBeLessThan(g.zoneCount);
        // Zones 0 and 2 are closed (active): open from zone 3 on so only explicit opens count.
        // With equal limits the device reports the active limit first (see device.shared.ts).
        const limitCode = maxActive - 2 > maxOpen ? ErrorCode.ZONE_OPEN_LIMIT : ErrorCode.ZONE_ACTIVE_LIMIT;
        const opened = Math.min(maxOpen, maxActive - 2);
        const r = run('zones', 'open', device, `3-${3 + opened}`);
        expect(r.status, r.stderr).toBe(ZoneToolExit.ZONES_FAILED);
        const rows = JSON.parse(r.stdout) as ZoneOpResult[];
        expect(rows.filter((x) => x.ok).map((x) => x.conditionAfter)).toEqual(Array(opened).fill('explicit-open'));
        expect(rows.at(-1)).toMatchObject({ ok: false, code: limitCode, conditionAfter: 'empty' });
        expect(r.stderr).toMatch(new RegExp(`${opened} done, 0 needed nothing, 1 failed`));
        const zones = kernel(device);
        expect(zones.filter((z) => z.condition === ZoneCondition.EXPLICIT_OPEN).map((z) => z.index)).toEqual(rows.slice(0, opened).map((x) => x.zone));
        const closed = run('zones', 'close', device, '--all');
        expect(closed.status, closed.stderr).toBe(0);
        expect(kernel(device).filter((z) => z.condition === ZoneCondition.EXPLICIT_OPEN)).toEqual([]);
      });

      it('a store\'s zones: refused while it runs (even --force), refused without --force, --force resets and the store refuses to open', { timeout: TEST_TIMEOUT_MS }, () => {
        fresh(device);
        const tmp = tempDir();
        try {
          const dir = path.join(tmp.dir, 'store');
          const store = openStore(dir, { device, overwriteDevice: true });
          for (let i = 0; i < 40; i++) store.put(Buffer.alloc(60_000, i));
          store.flush();
          const withData = store.statsZones().filter((z) => z.epoch !== null && z.writePointer > z.start).map((z) => z.index);
          expect(withData.length).toBeGreaterThan(0);
          try {
            // This process holds the device O_EXCL and the catalog: the CLI (another process) is refused.
            const byDevice = run('zones', 'reset', device, String(withData[0]), '--force', '--yes');
            expect(byDevice.status).toBe(ZoneToolExit.ERROR);
            expect(byDevice.stderr).toMatch(/ERR_DEVICE_LOCKED: .*never changed under a running store, even with --force/);
            const byStore = run('zones', 'reset', dir, '--all', '--force', '--yes');
            expect(byStore.status).toBe(ZoneToolExit.ERROR);
            expect(byStore.stderr).toMatch(/ERR_STORE_LOCKED/);
          } finally {
            store.close();
          }
          const before = kernel(device);
          const info = JSON.parse(run('zones', 'info', device).stdout);
          expect(info.store).toMatchObject({ dir: null, ownedZones: withData.length, source: 'slab headers' });
          expect(info.store.storeId).toMatch(/^[0-9a-f]{32}$/);
          const headers = run('zones', 'reset', device, '--all', '--yes');
          expect(headers.status, headers.stderr).toBe(ZoneToolExit.OWNED);
          expect(headers.stderr).toMatch(new RegExp(`refused: zones? [-0-9, ]+ of ${device} belongs? to zns-slab store ${info.store.storeId} \\(found by its slab headers\\)`));
          const catalog = run('zones', 'finish', dir, `0-${withData.at(-1)}`, '--yes');
          expect(catalog.status, catalog.stderr).toBe(ZoneToolExit.OWNED);
          expect(catalog.stderr).toMatch(/refused: zones? .* to store .* \(id [0-9a-f]{32}\); nothing was changed/);
          expect(kernel(device)).toEqual(before);

          const forced = run('zones', 'reset', device, String(withData[0]), '--force', '--yes');
          expect(forced.status, forced.stderr).toBe(0);
          expect(JSON.parse(forced.stdout)[0]).toMatchObject({ ok: true, conditionAfter: 'empty', owner: info.store.storeId });
          expect(kernel(device)[withData[0]!]!.condition).toBe(ZoneCondition.EMPTY);
          expect(() => openStore(dir)).toThrow(expect.objectContaining({ code: ErrorCode.DEVICE_MISMATCH }));
        } finally {
          tmp.cleanup();
        }
      });
    });
  }
});
