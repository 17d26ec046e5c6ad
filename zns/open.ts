/**
 * Opens the zoned device behind a path: a block device node goes through libzbd, anything
 * else is (or becomes) a folder holding the file-backed emulation.
 */
import fs from 'node:fs';
import type { DeviceGeometry, ZonedDevice } from './device.js';
import { createEmulatedDevice, isEmulatedDevice, openEmulatedDevice } from './emulated.js';
import { openLibzbdDevice } from './libzbd.js';

export function isBlockDevice(target: string): boolean {
  try {
    return fs.statSync(target).isBlockDevice();
  } catch {
    return false;
  }
}

/**
 * `create`: make an emulated device with `geometry` when the folder holds none.
 * Without it, a missing device is ERR_INVALID_STORE. `exclusive`: one owner at a time
 * (ERR_DEVICE_LOCKED for a second), as a store opens its device. `direct`: the emulated device
 * opens its zone files with O_DIRECT (a real device always is direct; there it changes nothing).
 * `keepOpenZones`: zones explicitly opened stay open after `close` (zone tools; see each kind).
 */
export function openZonedDevice(
  target: string,
  options: { create?: boolean; geometry?: Partial<DeviceGeometry>; exclusive?: boolean; direct?: boolean; keepOpenZones?: boolean } = {},
): ZonedDevice {
  const exclusive = options.exclusive === true;
  const direct = options.direct === true;
  const keepOpenZones = options.keepOpenZones === true;
  if (isBlockDevice(target)) return openLibzbdDevice(target, { exclusive, keepOpenZones });
  // An existing device is opened as it is unless a geometry is asked for (then it must match).
  if (options.create && (options.geometry !== undefined || !isEmulatedDevice(target))) return createEmulatedDevice(target, options.geometry, { exclusive, direct, keepOpenZones });
  return openEmulatedDevice(target, { exclusive, direct, keepOpenZones });
}
