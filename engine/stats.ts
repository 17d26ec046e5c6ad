/**
 * Versioned stats snapshots (the ZNS-Slab allocator's Phase 2.0): `statsGlobal`, `statsClass`, `statsEpoch`, and
 * `statsZones` for the zone inspection tool. A snapshot is plain JSON-ready data and costs
 * O(classes x epochs) (zones: O(zones)), never O(objects): everything it reports is kept up to
 * date incrementally. Bump SLAB_STATS_VERSION on any incompatible change of these shapes.
 */
import { type DeviceGeometry, type ZonedDevice, ZONE_CONDITION_NAMES, ZONE_TYPE_NAMES, ZoneCondition, type Zone } from '../zns/device.js';
import { type ClassCounters, type StoreCounters, sumClassCounters } from './counters.js';
import { type Epoch, EpochState } from './epoch.js';
import type { SizeClass } from './sizeClass.js';
import { sealedBytes } from './slab.js';
import { NO_OWNER, type EngineZone } from './zones.js';

export const SLAB_STATS_VERSION = 1;

/** The ZNS-Slab allocator's public name for the epoch state enum. */
export { EpochState as EpochLifecycleState };

export interface DerivedClassMetrics {
  /** 100 x recycled / (recycled + overflowed); null before any slab was allocated. */
  recycleRatePct: number | null;
  /** Slabs allocated minus slabs freed: growth of the slab population. */
  netSlabs: number;
  /** Device bytes the class holds: sealed slabs plus partial slabs as they would be written. */
  estimatedDeviceBytes: number;
}

export interface ClassStats {
  version: number;
  sizeClass: number;
  /** Largest payload of the class, in bytes. */
  size: number;
  slotsPerSlab: number;
  slabBytes: number;
  counters: ClassCounters;
  derived: DerivedClassMetrics;
  slabs: number;
  liveObjects: number;
  /** Device bytes of the live objects' slots (header + class size each). */
  liveBytes: number;
}

export interface EpochClassStats {
  sizeClass: number;
  slabs: number;
  liveObjects: number;
  estimatedDeviceBytes: number;
}

export interface EpochStats {
  version: number;
  epoch: number;
  state: EpochState;
  /** Scoped to an auto-closing domain: never persisted. */
  ephemeral: boolean;
  createdAt: number;
  closingAt: number | null;
  zones: number;
  slabs: number;
  liveObjects: number;
  liveBytes: number;
  /** Bytes written to the epoch's zones. */
  deviceBytes: number;
  /** Written bytes no live object needs (freed slots, dead slabs, crash orphans). */
  deadBytes: number;
  /** What `epochClose` would give back now: every byte written to its zones. */
  reclaimableBytes: number;
  estimatedDeviceBytes: number;
  /** Classes with at least one slab. */
  classes: EpochClassStats[];
}

export interface GlobalStats {
  version: number;
  takenAt: string;
  store: string;
  /** `direct`: the device's I/O skips the page cache (O_DIRECT): always for a real device, on request for the emulated one. */
  device: { kind: string; path: string; geometry: DeviceGeometry; direct: boolean };
  epochCurrent: number;
  counters: ClassCounters & StoreCounters & { slabsAllocated: number };
  derived: {
    recycleRatePct: number | null;
    netSlabs: number;
    /** Bytes written to the device / bytes users put; null before any put. */
    writeAmplification: number | null;
    estimatedDeviceBytes: number;
    liveBytes: number;
    deadBytes: number;
    /**
     * Device bytes the store holds (written in its zones, and in zones waiting for their reset)
     * / device bytes its live sealed objects need (their slots); null with nothing live.
     */
    spaceAmplification: number | null;
  };
  /** Zone GC (engine/gc.ts): what it is doing now; its cumulative counters are in `counters`. */
  gc: {
    enabled: boolean;
    /** The zone being collected, or null. */
    collecting: number | null;
    reserveZones: number;
    /** Bytes written in zones, and bytes live in them: what spaceAmplification divides. */
    bytesWritten: number;
    bytesLive: number;
    lastError: string | null;
  };
  zones: { total: number; free: number; owned: number; active: number; open: number; full: number; needingReset: number; unusable: number };
  slabs: number;
  liveObjects: number;
  epochs: EpochStats[];
  /** Classes with any activity, in class order. */
  classes: ClassStats[];
}

export interface ZoneStats {
  index: number;
  start: number;
  size: number;
  capacity: number;
  writePointer: number;
  /** Percent of the capacity written (100 for a FULL zone). */
  fillPct: number;
  type: string;
  condition: string;
  /** Store only: the owning epoch, null when free. */
  epoch: number | null;
  epochState: EpochState | null;
  slabs: number;
  liveBytes: number;
  deadBytes: number;
  /** A salvage open found this zone missing, truncated or unreadable: its objects give ERR_ZONE_LOST. */
  damaged: boolean;
  /** The epoch's head zone of this write stream ('user': puts, 'gc': slabs zone GC moved), or null. */
  head: 'user' | 'gc' | null;
  /** Zone GC is moving this zone's slabs out now. */
  collecting: boolean;
  /**
   * What collecting this zone would give back: its written bytes less its live slabs packed (0
   * for a head, a free or an unusable zone). Zone GC takes zones with at least
   * GC_MIN_GAIN_FRACTION of a zone.
   */
  gcGainBytes: number;
}

/** What the store lends the snapshot builders (read only). */
export interface StatsSource {
  store: string;
  device: ZonedDevice;
  classes: readonly SizeClass[];
  blockSize: number;
  epochs: Iterable<Epoch>;
  epochCurrent: number;
  zones: readonly EngineZone[];
  zonesOf(epoch: number): ReadonlySet<number>;
  damaged: ReadonlySet<number>;
  zoneCounts: { free: number; active: number; open: number };
  storeCounters: StoreCounters;
  classCounters: readonly ClassCounters[];
  headOf(zone: number): 'user' | 'gc' | null;
  gc: GlobalStats['gc'];
}

function recycleRate(c: ClassCounters): number | null {
  const denominator = c.slabsRecycled + c.slabsOverflowed;
  return denominator === 0 ? null : Number(((100 * c.slabsRecycled) / denominator).toFixed(2));
}

function allocated(c: ClassCounters): number {
  return c.slabsRecycled + c.slabsOverflowed;
}

/** Device bytes of the epoch's partial slab of class `c` as it would be sealed now. */
function openBytes(epoch: Epoch, cls: SizeClass, blockSize: number): number {
  const slab = epoch.openSlabs[cls.index];
  if (slab === undefined || slab.slotCount === 0) return 0;
  return sealedBytes(slab.slotCount, cls.stride, blockSize);
}

export function epochStats(src: StatsSource, epoch: Epoch): EpochStats {
  const classes: EpochClassStats[] = [];
  let slabs = 0;
  let liveObjects = 0;
  let liveBytes = 0;
  let estimated = 0;
  for (const cls of src.classes) {
    const i = cls.index;
    const n = epoch.slabCount[i]!;
    if (n === 0) continue;
    const est = epoch.sealedBytes[i]! + openBytes(epoch, cls, src.blockSize);
    classes.push({ sizeClass: i, slabs: n, liveObjects: epoch.liveObjects[i]!, estimatedDeviceBytes: est });
    slabs += n;
    liveObjects += epoch.liveObjects[i]!;
    liveBytes += epoch.liveObjects[i]! * cls.stride;
    estimated += est;
  }
  let deviceBytes = 0;
  let zoneLive = 0;
  const zones = src.zonesOf(epoch.id);
  for (const z of zones) {
    deviceBytes += src.zones[z]!.written;
    zoneLive += src.zones[z]!.liveBytes;
  }
  return {
    version: SLAB_STATS_VERSION,
    epoch: epoch.id,
    state: epoch.state,
    ephemeral: epoch.ephemeral,
    createdAt: epoch.createdAt,
    closingAt: epoch.closingAt,
    zones: zones.size,
    slabs,
    liveObjects,
    liveBytes,
    deviceBytes,
    deadBytes: deviceBytes - zoneLive,
    reclaimableBytes: deviceBytes,
    estimatedDeviceBytes: estimated,
    classes,
  };
}

export function classStats(src: StatsSource, cls: SizeClass): ClassStats {
  const counters = { ...src.classCounters[cls.index]! };
  let slabs = 0;
  let liveObjects = 0;
  let estimated = 0;
  for (const epoch of src.epochs) {
    slabs += epoch.slabCount[cls.index]!;
    liveObjects += epoch.liveObjects[cls.index]!;
    estimated += epoch.sealedBytes[cls.index]! + openBytes(epoch, cls, src.blockSize);
  }
  return {
    version: SLAB_STATS_VERSION,
    sizeClass: cls.index,
    size: cls.size,
    slotsPerSlab: cls.slotsPerSlab,
    slabBytes: cls.slabBytes,
    counters,
    derived: { recycleRatePct: recycleRate(counters), netSlabs: allocated(counters) - counters.slabsFreed, estimatedDeviceBytes: estimated },
    slabs,
    liveObjects,
    liveBytes: liveObjects * cls.stride,
  };
}

export function globalStats(src: StatsSource): GlobalStats {
  const total = sumClassCounters(src.classCounters);
  const epochs = [...src.epochs].map((e) => epochStats(src, e));
  const classes = src.classes.map((c) => classStats(src, c)).filter((c) => c.slabs > 0 || c.counters.puts > 0 || c.counters.slowPathEpochClosed > 0);
  let owned = 0;
  let full = 0;
  let needingReset = 0;
  let unusable = 0;
  let written = 0;
  let live = 0;
  for (const z of src.zones) {
    if (z.owner !== NO_OWNER) owned++;
    if (z.full) full++;
    if (z.needsReset) needingReset++;
    if (z.unusable) unusable++;
    if (z.owner !== NO_OWNER) {
      written += z.written;
      live += z.liveBytes;
    }
  }
  const estimated = epochs.reduce((n, e) => n + e.estimatedDeviceBytes, 0);
  return {
    version: SLAB_STATS_VERSION,
    takenAt: new Date().toISOString(),
    store: src.store,
    device: { kind: src.device.kind, path: src.device.path, geometry: { ...src.device.geometry }, direct: src.device.direct === true },
    epochCurrent: src.epochCurrent,
    counters: { ...total, ...src.storeCounters, slabsAllocated: allocated(total) },
    derived: {
      recycleRatePct: recycleRate(total),
      netSlabs: allocated(total) - total.slabsFreed,
      writeAmplification: total.userBytesPut === 0 ? null : Number((src.storeCounters.deviceBytesWritten / total.userBytesPut).toFixed(4)),
      estimatedDeviceBytes: estimated,
      liveBytes: epochs.reduce((n, e) => n + e.liveBytes, 0),
      deadBytes: written - live,
      spaceAmplification: src.gc.bytesLive === 0 ? null : Number((src.gc.bytesWritten / src.gc.bytesLive).toFixed(4)),
    },
    gc: { ...src.gc },
    zones: { total: src.zones.length, free: src.zoneCounts.free, owned, active: src.zoneCounts.active, open: src.zoneCounts.open, full, needingReset, unusable },
    slabs: epochs.reduce((n, e) => n + e.slabs, 0),
    liveObjects: epochs.reduce((n, e) => n + e.liveObjects, 0),
    epochs,
    classes,
  };
}

/** One row per zone: the device's report joined with what the engine knows. */
export function zoneStats(report: readonly Zone[], src?: StatsSource): ZoneStats[] {
  const states = new Map<number, EpochState>();
  if (src) for (const e of src.epochs) states.set(e.id, e.state);
  return report.map((z) => {
    const engine = src?.zones[z.index];
    const written = z.condition === ZoneCondition.FULL ? z.capacity : z.writePointer - z.start;
    const owned = engine !== undefined && engine.owner !== NO_OWNER;
    const dataBytes = engine?.written ?? written;
    return {
      index: z.index,
      start: z.start,
      size: z.size,
      capacity: z.capacity,
      writePointer: z.writePointer,
      fillPct: Number(((100 * written) / z.capacity).toFixed(2)),
      type: ZONE_TYPE_NAMES[z.type] ?? String(z.type),
      condition: ZONE_CONDITION_NAMES[z.condition] ?? String(z.condition),
      epoch: owned ? engine.owner : null,
      epochState: owned ? (states.get(engine.owner) ?? null) : null,
      slabs: engine?.slabs.size ?? 0,
      liveBytes: engine?.liveBytes ?? 0,
      deadBytes: owned ? Math.max(0, dataBytes - engine.liveBytes) : 0,
      damaged: src?.damaged.has(z.index) ?? false,
      head: owned ? src!.headOf(z.index) : null,
      collecting: src !== undefined && src.gc.collecting === z.index,
      gcGainBytes: owned && !engine.unusable && engine.written > 0 && src!.headOf(z.index) === null ? Math.max(0, engine.written - engine.packedBytes) : 0,
    };
  });
}
