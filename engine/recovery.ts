/**
 * Opening a store: rebuilding memory from the catalog and checking it against the device.
 * Everything here runs once per open, before the first operation; nothing here writes.
 */
import type { SlabRow } from '../catalog/catalog.js';
import { ErrorCode, ZnsSlabError } from '../errors.js';
import { type Zone, type ZonedDevice, ZoneCondition, ZoneType } from '../zns/device.js';
import type { Epoch } from './epoch.js';
import type { SlabRegistry } from './registry.js';
import type { SizeClassTable } from './sizeClass.js';
import { Slab } from './slab.js';
import { SLAB_HEADER_BYTES, SLAB_TRAILER_BYTES, type SlabHeader, readSlabHeader, trailerMatches } from './slabHeader.js';
import type { ZoneManager } from './zones.js';

/**
 * Restores every slab row: free and retired ids into the registry, sealed slabs into their
 * epoch and zone. A sealed row that points outside what the device holds is refused (the
 * device lost data, or is not this store's), unless its zone is known `damaged` (salvage).
 */
export function restoreSlabs(
  rows: Iterable<SlabRow>,
  parts: { registry: SlabRegistry; epochs: ReadonlyMap<number, Epoch>; zones: ZoneManager; sizeClasses: SizeClassTable; storeTag: number; damaged: ReadonlySet<number> },
): void {
  const { registry, epochs, zones, sizeClasses, storeTag, damaged } = parts;
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
    if (!zone.full && zone.written < end && !damaged.has(zone.index)) {
      throw new ZnsSlabError(
        ErrorCode.DEVICE_MISMATCH,
        `slab ${row.slabId} ends at byte ${end} of zone ${zone.index}, but the device's write pointer is at ${zone.written}: the device lost data or is not this store's`,
      );
    }
    const slab = Slab.sealed(row.slabId, row.generation, cls, epoch.id, storeTag, {
      zone: zone.index,
      offset: row.offset!,
      length: row.length!,
      slotCount: row.slotCount!,
      live: row.liveBitmap!,
      packed: row.packedBitmap ?? null,
    });
    registry.restoreSealed(slab, row.genLimit);
    epoch.addSlab(slab);
    zones.placeSlab(slab);
  }
}

/**
 * Checks, before anything is reset, that the device holds this catalog's store and nothing
 * newer than the catalog knows:
 * - the first slab of every written zone carries the catalog's store id, else
 *   ERR_CATALOG_MISMATCH;
 * - where the catalog places slabs, the first of them is on the device with its id and
 *   generation; slabs past the catalog's last one in a zone (a crash's uncommitted tail), and
 *   slabs in zones the catalog does not own, were written before the catalog's last commit;
 *   otherwise the catalog is older than the data: ERR_CATALOG_STALE.
 * `seen.sealSequence` gets the highest seal sequence of those uncommitted images.
 * With `salvage`, a zone that cannot be read or lost data the catalog points at is returned
 * as damaged instead of refusing the store.
 */
export function checkDevice(
  device: ZonedDevice,
  report: readonly Zone[],
  catalog: { storeId: string; commitSequence: number },
  rows: readonly SlabRow[],
  salvage: boolean,
  seen: { sealSequence: number } = { sealSequence: 0 },
): Set<number> {
  const storeId = Buffer.from(catalog.storeId, 'hex');
  const damaged = new Set<number>();
  const capacity = device.geometry.zoneCapacity;
  const byZone = new Map<number, { first: SlabRow; end: number }>();
  for (const row of rows) {
    if (row.state !== 'sealed' || row.zone === null) continue;
    const at = byZone.get(row.zone);
    const end = row.offset! + row.length!;
    if (at === undefined) byZone.set(row.zone, { first: row, end });
    else {
      if (row.offset! < at.first.offset!) at.first = row;
      at.end = Math.max(at.end, end);
    }
  }
  for (const z of report) {
    if (z.type !== ZoneType.SEQUENTIAL_WRITE_REQUIRED || z.condition === ZoneCondition.OFFLINE || z.condition === ZoneCondition.READ_ONLY) continue;
    const written = z.condition === ZoneCondition.FULL ? capacity : z.writePointer - z.start;
    const placed = byZone.get(z.index);
    const lost = (why: string): void => {
      if (!salvage) throw new ZnsSlabError(ErrorCode.DEVICE_MISMATCH, `zone ${z.index}: ${why}: the device lost data or is not this store's`);
      damaged.add(z.index);
    };
    if (placed !== undefined && written < placed.end) {
      lost(`the catalog places slabs up to byte ${placed.end}, but the write pointer is at ${written}`);
      continue;
    }
    if (written === 0) continue;
    let header: SlabHeader | undefined;
    try {
      header = headerAt(device, z, 0);
      if (header !== undefined && !header.storeId.equals(storeId)) {
        throw new ZnsSlabError(
          ErrorCode.CATALOG_MISMATCH,
          `zone ${z.index} holds slabs of store ${header.storeId.toString('hex')}; this catalog is store ${catalog.storeId}: it belongs to another device`,
        );
      }
      let from = 0;
      if (placed !== undefined) {
        const first = placed.first.offset === 0 ? header : headerAt(device, z, placed.first.offset!);
        if (first === undefined || first.slabId !== placed.first.slabId || first.generation !== placed.first.generation) {
          if (first !== undefined && first.commitSequence > catalog.commitSequence) throw stale(z.index, first, catalog.commitSequence);
          lost(`slab ${placed.first.slabId} is not at byte ${placed.first.offset} where the catalog places it`);
          continue;
        }
        from = placed.end;
      }
      for (const h of walkHeaders(device, z, from, written)) {
        // An uncommitted tail (a seal or a GC move the crash kept from the catalog): new images
        // must be numbered past it, so a rebuild never takes it for a newer one.
        seen.sealSequence = Math.max(seen.sealSequence, h.sealSequence);
        if (!h.storeId.equals(storeId)) {
          throw new ZnsSlabError(ErrorCode.CATALOG_MISMATCH, `zone ${z.index} holds a slab of store ${h.storeId.toString('hex')}; this catalog is store ${catalog.storeId}`);
        }
        if (h.commitSequence > catalog.commitSequence) throw stale(z.index, h, catalog.commitSequence);
      }
    } catch (err) {
      if (err instanceof ZnsSlabError && (err.code === ErrorCode.CATALOG_MISMATCH || err.code === ErrorCode.CATALOG_STALE)) throw err;
      if (!salvage) throw err;
      damaged.add(z.index);
    }
  }
  return damaged;
}

function stale(zone: number, h: SlabHeader, commitSequence: number): ZnsSlabError {
  return new ZnsSlabError(
    ErrorCode.CATALOG_STALE,
    `zone ${zone} holds slab ${h.slabId} written after catalog commit ${h.commitSequence - 0}; this catalog's last commit is ${commitSequence}: it is an older copy (restore the newest catalog, or run zns-slab recover)`,
  );
}

/** The slab header at `offset` in zone `z`, or undefined if there is none. */
export function headerAt(device: ZonedDevice, z: Zone, offset: number): SlabHeader | undefined {
  return readSlabHeader(device.read(z.start + offset, SLAB_HEADER_BYTES));
}

/**
 * The headers of the slab images from `from` to `end` in zone `z`. An image whose trailer is
 * missing (a write that landed in part) is yielded too, and the walk looks for the next header
 * block by block inside it; the walk stops at the first block that starts no image.
 */
export function* walkHeaders(device: ZonedDevice, z: Zone, from: number, end: number): Generator<SlabHeader> {
  const block = device.geometry.logicalBlockSize;
  for (let at = from; at + SLAB_HEADER_BYTES <= end; ) {
    const raw = device.read(z.start + at, SLAB_HEADER_BYTES);
    const h = readSlabHeader(raw);
    if (h === undefined || h.imageBytes < block || h.imageBytes % block !== 0) return;
    yield h;
    const complete = at + h.imageBytes <= end && trailerMatches(device.read(z.start + at + h.imageBytes - SLAB_TRAILER_BYTES, SLAB_TRAILER_BYTES), raw);
    at += complete ? h.imageBytes : block;
  }
}
