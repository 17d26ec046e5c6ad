/**
 * Opening a store: rebuilding memory from the catalog and checking it against the device.
 * Everything here runs once per open, before the first operation; nothing here writes.
 */
import type { SlabRow } from '../catalog/catalog.js';
import { ErrorCode, ZnsSlabError } from '../errors.js';
import type { Epoch } from './epoch.js';
import type { SlabRegistry } from './registry.js';
import type { SizeClassTable } from './sizeClass.js';
import { Slab } from './slab.js';
import type { ZoneManager } from './zones.js';

/**
 * Restores every slab row: free and retired ids into the registry, sealed slabs into their
 * epoch and zone. A sealed row that points outside what the device holds is refused: the
 * device lost data, or is not this store's.
 */
export function restoreSlabs(
  rows: Iterable<SlabRow>,
  parts: { registry: SlabRegistry; epochs: ReadonlyMap<number, Epoch>; zones: ZoneManager; sizeClasses: SizeClassTable },
): void {
  const { registry, epochs, zones, sizeClasses } = parts;
  for (const row of rows) {
    if (row.state === 'free') {
      registry.restoreFree(row.slabId, row.genLimit);
      continue;
    }
    if (row.state === 'retired') {
      registry.restoreRetired(row.slabId);
      continue;
    }
    const epoch = row.epoch === null ? undefined : epochs.get(row.epoch);
    const cls = row.sizeClass === null ? undefined : sizeClasses.classes[row.sizeClass];
    const zone = row.zone === null ? undefined : zones.zones[row.zone];
    if (epoch === undefined || cls === undefined || zone === undefined || zone.owner !== epoch.id) {
      throw new ZnsSlabError(
        ErrorCode.INVALID_STORE,
        `catalog row for slab ${row.slabId} is inconsistent (epoch ${row.epoch}, class ${row.sizeClass}, zone ${row.zone})`,
      );
    }
    const end = row.offset! + row.length!;
    if (!zone.full && zone.written < end) {
      throw new ZnsSlabError(
        ErrorCode.DEVICE_MISMATCH,
        `slab ${row.slabId} ends at byte ${end} of zone ${zone.index}, but the device's write pointer is at ${zone.written}: the device lost data or is not this store's`,
      );
    }
    const slab = Slab.sealed(row.slabId, row.generation, cls, epoch.id, {
      zone: zone.index,
      offset: row.offset!,
      length: row.length!,
      slotCount: row.slotCount!,
      live: row.liveBitmap!,
    });
    registry.restoreSealed(slab, row.genLimit);
    epoch.addSlab(slab);
    zones.placeSlab(slab);
  }
}
