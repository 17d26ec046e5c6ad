import path from 'node:path';
import { openStore, type Store, type StoreOptions } from '../../engine/store.js';
import type { DeviceGeometry } from '../../zns/device.js';
import { tempDir } from './tmp.js';

/** Small zones so tests cross zone boundaries and limits quickly. */
export const SMALL_GEOMETRY: Partial<DeviceGeometry> = {
  zoneCount: 32,
  zoneSize: 1024 * 1024,
  zoneCapacity: 1024 * 1024,
  logicalBlockSize: 4096,
  maxOpenZones: 4,
  maxActiveZones: 4,
};

export interface StoreFixture {
  dir: string;
  open(options?: StoreOptions): Store;
  cleanup(): void;
}

export function storeFixture(geometry: Partial<DeviceGeometry> = SMALL_GEOMETRY): StoreFixture {
  const tmp = tempDir('zns-slab-store-');
  const dir = path.join(tmp.dir, 'store');
  return {
    dir,
    open: (options) => openStore(dir, { geometry, ...options }),
    cleanup: tmp.cleanup,
  };
}

/** The thrown error's code (undefined if nothing was thrown). */
export function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return (err as { code?: string }).code ?? `uncoded: ${String(err)}`;
  }
  return undefined;
}
