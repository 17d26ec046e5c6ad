/**
 * Opens the zoned device behind a path: a block device node goes through libzbd, anything
 * else is (or becomes) a folder holding the file-backed emulation.
 */
import fs from 'node:fs';
import type { DeviceGeometry, ZonedDevice } from './device.js';
import { createEmulatedDevice, openEmulatedDevice } from './emulated.js';
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
 * Without it, a missing device is ERR_INVALID_STORE.
 */
export function openZonedDevice(target: string, options: { create?: boolean; geometry?: Partial<DeviceGeometry> } = {}): ZonedDevice {
  if (isBlockDevice(target)) return openLibzbdDevice(target);
  return options.create ? createEmulatedDevice(target, options.geometry) : openEmulatedDevice(target);
}
