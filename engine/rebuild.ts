/**
 * Rebuilding a lost or damaged catalog from the device alone (`zns-slab recover`). Every sealed
 * slab image starts with a header that names its store, slab id, generation, epoch, size class,
 * slot count and live bitmap at seal (engine/slabHeader.ts); this walks every written zone,
 * checks every live slot's checksum, and writes a catalog that serves what it found.
 *
 * What comes back, and what does not:
 * - every object of every slab still on the device, with its bytes checked;
 * - frees made after a slab's last seal come back (the device holds the bitmap at seal);
 * - objects never sealed (in memory at the loss) and epochs already closed do not;
 * - every recovered epoch is CLOSING (readable, no new puts) and a new ACTIVE epoch is current.
 *
 * Generations: the lost catalog's leases are unknown, so every id resumes RECOVERY_GENERATION_MARGIN
 * generations past the newest one found (or past the floor an earlier rebuild left in the
 * device's metadata, where the device keeps one), and new ids start RECOVERY_SLAB_ID_MARGIN past
 * the largest found. A handle to an object that did not come back stays stale unless the lost
 * store had reused one slab id more than that many times since its last seal.
 */
import fs from 'node:fs';
import { CATALOG_FORMAT_VERSION, Catalog, type CatalogMeta, type EpochRow, type SlabRow, type ZoneRow } from '../catalog/catalog.js';
import { ErrorCode, ZnsSlabError } from '../errors.js';
import { type Zone, type ZonedDevice, ZoneCondition, ZoneType } from '../zns/device.js';
import { MAX_GENERATION, MAX_SLAB_ID } from './handle.js';
import { GENERATION_LEASE, freeRow } from './registry.js';
import { SizeClassTable } from './sizeClass.js';
import { decodeSlot, storeSeed } from './slab.js';
import { SLAB_HEADER_BYTES, SLAB_TRAILER_BYTES, type SlabHeader, readSlabHeader, trailerMatches } from './slabHeader.js';

export const RECOVERY_GENERATION_MARGIN = 1 << 16;
export const RECOVERY_SLAB_ID_MARGIN = 4096;
/** Bytes read at a time while scanning a zone for slab headers. */
const SCAN_CHUNK_BYTES = 4 * 1024 * 1024;

export interface RecoverReport {
  storeId: string;
  zones: number;
  zonesWithData: number;
  /** Zones that could not be read (an I/O error): their slabs are not recovered. */
  zonesUnreadable: number[];
  bytesScanned: number;
  slabs: number;
  /** Older images of a slab id found beside a newer one (dead versions, left for reset). */
  slabsSuperseded: number;
  /** Slabs of auto-closing domains' epochs (never recovered: they never outlive their domain). */
  slabsEphemeral: number;
  epochs: number[];
  /** Objects live at their slab's last seal whose bytes check out. */
  objects: number;
  /** Live slots whose checksum failed: left out (their handles give ERR_STALE_HANDLE). */
  objectsCorrupt: number;
  catalog: string;
  seconds: number;
}

interface Found {
  header: SlabHeader;
  zone: number;
  offset: number;
  live: Uint8Array;
  objects: number;
  /** Live slots whose checksum failed. */
  corrupt: number;
  /** Its trailer is there: the whole image was written. */
  complete: boolean;
}

/**
 * Scans `device` and writes a new catalog to `catalogFile` (which must not exist).
 * `devicePath` is what the catalog records to find the device again (relative to the store);
 * `options.purpose` what the store was made for ('cache' for a cache folder).
 */
export function rebuildCatalog(
  device: ZonedDevice,
  catalogFile: string,
  devicePath: string,
  progress: (zone: number, zones: number, slabs: number, objects: number) => void = () => {},
  options: { purpose?: string } = {},
): RecoverReport {
  const started = Date.now();
  if (fs.existsSync(catalogFile)) throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, `recover: ${catalogFile} exists; it is never written over`);
  const g = device.geometry;
  const classes = new SizeClassTable(g.zoneCapacity, g.logicalBlockSize);
  const report = device.reportZones();
  const best = new Map<number, Found>();
  const stores = new Map<string, number>();
  const out: RecoverReport = {
    storeId: '', zones: report.length, zonesWithData: 0, zonesUnreadable: [], bytesScanned: 0, slabs: 0, slabsSuperseded: 0, slabsEphemeral: 0,
    epochs: [], objects: 0, objectsCorrupt: 0, catalog: catalogFile, seconds: 0,
  };
  let scanned = 0;
  let seenCommit = 0;
  let seenSeal = 0;
  for (const z of report) {
    progress(z.index, report.length, best.size, scanned);
    if (z.type !== ZoneType.SEQUENTIAL_WRITE_REQUIRED || z.condition === ZoneCondition.OFFLINE || z.condition === ZoneCondition.EMPTY) continue;
    const written = z.condition === ZoneCondition.FULL ? g.zoneCapacity : z.writePointer - z.start;
    if (written <= 0) continue;
    out.zonesWithData++;
    try {
      for (const found of scanZone(device, z, written, classes, out, (h) => {
        // Every header read counts, torn, ephemeral or superseded: the rebuilt catalog must be
        // newer than anything on the device (test/sim/replays/recover-misses-torn-tail.json).
        seenCommit = Math.max(seenCommit, h.commitSequence);
        seenSeal = Math.max(seenSeal, h.sealSequence);
      })) {
        if (found.header.ephemeral) {
          out.slabsEphemeral++;
          continue;
        }
        scanned += found.objects;
        const id = found.header.storeId.toString('hex');
        stores.set(id, (stores.get(id) ?? 0) + 1);
        const prev = best.get(found.header.slabId);
        if (prev === undefined || newer(found, prev)) {
          if (prev !== undefined) out.slabsSuperseded++;
          best.set(found.header.slabId, found);
        } else out.slabsSuperseded++;
      }
    } catch (err) {
      if (!(err instanceof ZnsSlabError)) throw err;
      out.zonesUnreadable.push(z.index);
    }
  }
  if (stores.size > 1) {
    throw new ZnsSlabError(ErrorCode.CATALOG_MISMATCH, `recover: the device holds slabs of ${stores.size} stores (${[...stores.keys()].join(', ')}); it cannot tell which to rebuild`);
  }
  const storeId = [...stores.keys()][0] ?? device.owner;
  if (storeId === undefined) throw new ZnsSlabError(ErrorCode.INVALID_STORE, `recover: no slab of any store on ${device.path}: nothing to recover`);
  out.storeId = storeId;

  // One epoch per zone: the zone's newest slab decides (older slabs of another epoch cannot share it).
  const zoneEpoch = new Map<number, { epoch: number; seq: number }>();
  for (const f of best.values()) {
    const at = zoneEpoch.get(f.zone);
    if (at === undefined || f.header.sealSequence > at.seq) zoneEpoch.set(f.zone, { epoch: f.header.epoch, seq: f.header.sealSequence });
  }
  let maxGeneration = 0;
  for (const f of best.values()) maxGeneration = Math.max(maxGeneration, f.header.generation);
  const floor = Math.max(device.generationFloor ?? 0, maxGeneration + 1) + RECOVERY_GENERATION_MARGIN;
  if (floor + GENERATION_LEASE > MAX_GENERATION + 1) {
    throw new ZnsSlabError(ErrorCode.INVALID_STORE, `recover: generations would pass ${MAX_GENERATION} (the floor would be ${floor}); this device has been rebuilt too often`);
  }
  const slabs: SlabRow[] = [];
  let maxId = 0;
  let maxEpoch = 0;
  let maxCommit = 0;
  let maxSeal = 0;
  const epochs = new Set<number>();
  for (const f of best.values()) {
    const h = f.header;
    maxId = Math.max(maxId, h.slabId);
    maxCommit = Math.max(maxCommit, h.commitSequence);
    maxSeal = Math.max(maxSeal, h.sealSequence);
    if (zoneEpoch.get(f.zone)!.epoch !== h.epoch) {
      out.slabsSuperseded++;
      continue;
    }
    const genLimit = floor;
    epochs.add(h.epoch);
    maxEpoch = Math.max(maxEpoch, h.epoch);
    let liveCount = 0;
    for (let slot = 0; slot < h.slotCount; slot++) if ((f.live[slot >>> 3]! & (1 << (slot & 7))) !== 0) liveCount++;
    slabs.push({
      slabId: h.slabId, generation: h.generation, genLimit, state: 'sealed', epoch: h.epoch, sizeClass: h.sizeClass, zone: f.zone,
      offset: f.offset, length: h.imageBytes, slotCount: h.slotCount, liveCount, liveBitmap: f.live,
      packedBitmap: h.packed ? h.live : null,
    });
    out.slabs++;
    out.objects += f.objects;
    out.objectsCorrupt += f.corrupt;
  }
  // Ids below the new start that were not found: unknown history, so past the margin too.
  const found = new Set(slabs.map((r) => r.slabId));
  const nextSlabId = Math.min(MAX_SLAB_ID + 1, maxId + 1 + RECOVERY_SLAB_ID_MARGIN);
  for (let id = 1; id < nextSlabId; id++) if (!found.has(id)) slabs.push(freeRow(id, floor, floor));
  const current = Math.max(maxEpoch, 0) + 1;
  const now = Date.now();
  const epochRows: EpochRow[] = [...epochs].sort((a, b) => a - b).map((id) => ({ id, state: 'CLOSING', createdAt: now, closingAt: now, closedAt: null }));
  const owners = new Map<number, number>();
  for (const r of slabs) if (r.state === 'sealed') owners.set(r.zone!, r.epoch!);
  const zones: ZoneRow[] = [...owners].map(([zone, epoch]) => ({ zone, epoch }));
  const meta: CatalogMeta = {
    formatVersion: CATALOG_FORMAT_VERSION,
    geometry: { ...g },
    deviceKind: device.kind,
    devicePath,
    createdAt: now,
    nextSlabId,
    nextEpochId: current + 1,
    currentEpoch: current,
    storeId,
    // Past every commit a slab on the device names, so the catalog is not taken for an old copy.
    commitSequence: Math.max(maxCommit, seenCommit) + 1,
    sealSequence: Math.max(maxSeal, seenSeal),
    // The device does not say what the store was made for; the caller does (a cache folder).
    ...(options.purpose !== undefined ? { purpose: options.purpose } : {}),
  };
  const catalog = new Catalog(catalogFile);
  try {
    catalog.initialize(meta, { id: current, state: 'ACTIVE', createdAt: now, closingAt: null, closedAt: null });
    catalog.commit({ epochs: epochRows, slabs, zonesOwned: zones, meta: { nextSlabId, nextEpochId: current + 1, currentEpoch: current, sealSequence: Math.max(maxSeal, seenSeal) } });
  } finally {
    catalog.close();
  }
  if (device.owner === undefined) device.setOwner?.(storeId);
  device.setGenerationFloor?.(floor);
  out.epochs = [...epochs].sort((a, b) => a - b);
  out.seconds = (Date.now() - started) / 1000;
  return out;
}

/**
 * Of two images of one slab id: the higher generation, then the complete one (a seal retried
 * after a partial write, or a zone GC move torn by a crash, left an incomplete one beside it),
 * then the later seal (a GC move is a later seal of the same generation), then the one whose
 * objects check out.
 */
function newer(a: Found, b: Found): boolean {
  if (a.header.generation !== b.header.generation) return a.header.generation > b.header.generation;
  if (a.complete !== b.complete) return a.complete;
  if (a.header.sealSequence !== b.header.sealSequence) return a.header.sealSequence > b.header.sealSequence;
  return a.corrupt < b.corrupt || (a.corrupt === b.corrupt && a.offset > b.offset);
}

/**
 * The slab images in a zone, in order. After a place without a header (a torn or partly
 * written image) it looks for the next header block by block.
 */
function* scanZone(device: ZonedDevice, z: Zone, written: number, classes: SizeClassTable, out: RecoverReport, seen: (h: SlabHeader) => void): Generator<Found> {
  const block = device.geometry.logicalBlockSize;
  let chunkStart = -1;
  let chunk: Buffer = Buffer.alloc(0);
  const bytesAt = (at: number, length: number): Buffer => {
    if (at < chunkStart || at + length > chunkStart + chunk.length) {
      const n = Math.min(Math.max(length, SCAN_CHUNK_BYTES), written - at);
      chunk = device.read(z.start + at, n);
      chunkStart = at;
      out.bytesScanned += n;
    }
    return chunk.subarray(at - chunkStart, at - chunkStart + length);
  };
  for (let at = 0; at + SLAB_HEADER_BYTES <= written; ) {
    const h = readSlabHeader(bytesAt(at, SLAB_HEADER_BYTES));
    if (h !== undefined) seen(h);
    const cls = h === undefined ? undefined : classes.classes[h.sizeClass];
    if (h === undefined || cls === undefined || h.imageBytes % block !== 0 || at + h.imageBytes > written || h.slotCount > cls.slotsPerSlab) {
      at += block;
      continue;
    }
    const image = bytesAt(at, h.imageBytes);
    const complete = trailerMatches(image.subarray(h.imageBytes - SLAB_TRAILER_BYTES), image);
    const live = new Uint8Array(h.live);
    const storeTag = storeSeed(h.storeId.readUInt32LE(0));
    let objects = 0;
    let corrupt = 0;
    let place = 0; // a packed image holds only the slots in its bitmap, in order
    for (let slot = 0; slot < h.slotCount; slot++) {
      if ((live[slot >>> 3]! & (1 << (slot & 7))) === 0) continue;
      const from = SLAB_HEADER_BYTES + (h.packed ? place++ : slot) * cls.stride;
      try {
        decodeSlot(image.subarray(from, from + cls.stride), storeTag, h.slabId, h.generation, slot, cls);
        objects++;
      } catch {
        live[slot >>> 3]! &= ~(1 << (slot & 7));
        corrupt++;
      }
    }
    // An image without its trailer is a write that landed in part (its retry, if any, starts
    // inside what this header claims): never preferred to a complete one, and searched block by block.
    yield { header: h, zone: z.index, offset: at, live, objects, corrupt, complete };
    at += complete && corrupt === 0 ? h.imageBytes : block;
  }
}
