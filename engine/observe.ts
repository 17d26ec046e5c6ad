/**
 * Observing a store (or a bare zoned device) that another process has open: the snapshots behind
 * `zns-slab zones --watch` and `zns-slab serve`. Read only, lock free: nothing of the store's is
 * locked, written, reset or truncated, and the writer goes on as if nobody looked.
 *
 * Two sources, two ages:
 * - the device's zone report is read now (zns/observe.ts): conditions and write pointers are
 *   current;
 * - the catalog is a copy as of its last commit (catalog/snapshot.ts): ownership, slabs, live
 *   bytes, epochs and the counters are as of the writer's last flush (or lease commit, or epoch
 *   change).
 * Bytes the device holds past what that commit accounts for are `unflushedBytes` (slabs sealed
 * since: their headers carry the commit sequence they were sealed after, engine/slab.ts), so
 * neither live nor dead. The rows and totals are built by engine/stats.ts from the same engine
 * structures a store builds at open (ZoneManager.load, restoreSlabs), never a second copy of
 * that logic.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type CatalogSnapshot, CatalogSnapshotReader } from '../catalog/snapshot.js';
import { ErrorCode, ZnsSlabError } from '../errors.js';
import { type DeviceGeometry, type Zone, ZONE_CONDITION_NAMES, ZoneCondition } from '../zns/device.js';
import { sameGeometry } from '../zns/emulated.js';
import { type DeviceObserver, observeZonedDevice } from '../zns/observe.js';
import { type SavedCounters, newClassCounters, newStoreCounters, restoreCounters } from './counters.js';
import { Epoch, EpochState } from './epoch.js';
import { restoreSlabs } from './recovery.js';
import { SlabRegistry } from './registry.js';
import { SizeClassTable } from './sizeClass.js';
import { storeSeed } from './slab.js';
import { SLAB_HEADER_BYTES, readSlabHeader } from './slabHeader.js';
import { type GlobalStats, type StatsSource, type ZoneStats, globalStats, zoneStats } from './stats.js';
import { CATALOG_FILE } from './store.js';
import { type EngineZone, NO_OWNER, ZoneManager } from './zones.js';

/** Bump on any incompatible change of `Observation`. */
export const OBSERVATION_VERSION = 1;
/**
 * Catalog copy and zone report taken again when they disagree (the writer reset a zone the copy
 * still places slabs in, between the two reads) before the zones concerned are shown as they are.
 */
export const OBSERVE_ATTEMPTS = 3;

export interface ObservedZone extends ZoneStats {
  /** Bytes written past what the catalog's last commit accounts for (sealed since the last flush). */
  unflushedBytes: number;
  /** Its write pointer moved since the observer's previous snapshot. */
  moved: boolean;
}

export interface Observation {
  version: number;
  takenAt: string;
  /** The folder or device node observed (resolved). */
  target: string;
  kind: 'store' | 'device';
  device: { kind: string; path: string; geometry: DeviceGeometry; inUseBy: number | null };
  /** Store only: the catalog copy's commit, and when the catalog last changed (as of the copy). */
  catalog: { commitSequence: number; changedAt: string; copiedAt: string; storeId: string } | null;
  /** Store only: stats as `zns-slab stats` prints them, from the catalog copy and the live zone report. */
  stats: GlobalStats | null;
  zones: ObservedZone[];
  totals: {
    zones: number;
    byCondition: Record<string, number>;
    capacityBytes: number;
    /** Bytes written on the device now (write pointers). */
    writtenBytes: number;
    liveBytes: number;
    deadBytes: number;
    unflushedBytes: number;
  };
  /** Since the observer's previous snapshot; null for its first. */
  rates: { sinceMs: number; deviceBytesPerSecond: number; putsPerSecond: number | null } | null;
  /** What lags and what cannot be seen from outside the writer. */
  notes: string[];
}

/** Observers' own folders not yet removed: a process that exits without closing them removes them then. */
const workDirs = new Set<string>();
let exitHook = false;

function trackWorkDir(dir: string): void {
  workDirs.add(dir);
  if (exitHook) return;
  exitHook = true;
  process.once('exit', () => {
    for (const d of workDirs) fs.rmSync(d, { recursive: true, force: true });
  });
}

function isStore(target: string): boolean {
  return fs.existsSync(path.join(target, CATALOG_FILE));
}

/** Bytes a zone holds per its report (a FULL zone: its capacity). */
function writtenOf(z: Zone): number {
  return z.condition === ZoneCondition.FULL ? z.capacity : z.writePointer - z.start;
}

/**
 * Observes `target` (a store folder, an emulated device folder, a zoned block device) again and
 * again: each `observe()` is a fresh snapshot, with rates since the one before. `close()` removes
 * the observer's own folder (its catalog copy). Observe a store from another process than the
 * writer's: in the writer's own process it is refused (ERR_STORE_LOCKED), because reading the
 * catalog's file there would release the locks SQLite holds on it; use the store's stats*
 * methods there. (A kernel device's store records no pid: there, do not.)
 */
export class Observer {
  readonly target: string;
  readonly kind: 'store' | 'device';
  private readonly device: DeviceObserver;
  private readonly catalog: CatalogSnapshotReader | undefined;
  private readonly workDir: string | undefined;
  /** Zone -> where its unflushed bytes start, for the extent, write pointer and commit it was found at. */
  private readonly walks = new Map<number, { extent: number; written: number; commit: number; from: number }>();
  private previous: { at: number; written: number[]; puts: number | null } | undefined;
  private closed = false;

  constructor(target: string) {
    this.target = path.resolve(target);
    if (isStore(target)) {
      this.kind = 'store';
      this.workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'zns-slab-observe-'));
      trackWorkDir(this.workDir);
      try {
        this.catalog = new CatalogSnapshotReader(path.join(target, CATALOG_FILE), this.workDir);
        const meta = this.catalog.read().meta;
        this.device = observeZonedDevice(path.resolve(target, meta.devicePath));
        try {
          this.checkDevice(meta.geometry as unknown as DeviceGeometry);
        } catch (err) {
          this.device.close();
          throw err;
        }
      } catch (err) {
        fs.rmSync(this.workDir, { recursive: true, force: true });
        workDirs.delete(this.workDir);
        throw err;
      }
    } else {
      this.kind = 'device';
      this.device = observeZonedDevice(target);
      this.catalog = undefined;
      this.workDir = undefined;
    }
    if (this.kind === 'store' && this.device.inUseBy() === process.pid) {
      this.close();
      throw new ZnsSlabError(
        ErrorCode.STORE_LOCKED,
        `${target} is open in this process: observe it from another one (here, use the store's statsGlobal() and statsZones())`,
      );
    }
  }

  private checkDevice(recorded: DeviceGeometry): void {
    if (!sameGeometry(this.device.geometry, recorded)) {
      throw new ZnsSlabError(ErrorCode.GEOMETRY_MISMATCH, `device ${this.device.path} has geometry ${JSON.stringify(this.device.geometry)}; the store was made with ${JSON.stringify(recorded)}`);
    }
  }

  observe(): Observation {
    if (this.closed) throw new ZnsSlabError(ErrorCode.CLOSED, `observer of ${this.target} is closed`);
    const now = Date.now();
    let report: Zone[];
    let rows: ObservedZone[];
    let stats: GlobalStats | null = null;
    let catalogInfo: Observation['catalog'] = null;
    const notes: string[] = [];
    if (this.catalog !== undefined) {
      const built = this.observeStore();
      report = built.report;
      rows = built.rows;
      stats = built.stats;
      const s = built.snapshot;
      catalogInfo = { commitSequence: s.meta.commitSequence, changedAt: new Date(s.changedAt).toISOString(), copiedAt: new Date(s.copiedAt).toISOString(), storeId: s.meta.storeId };
      notes.push(
        'zone conditions and write pointers: now; epochs, slabs, live and dead bytes, counters: the catalog as of its last commit (the writer\'s last flush)',
        'unflushed: bytes written since that commit; zone GC state lives in the writer\'s memory and is not shown',
      );
      if (built.behind.length > 0) notes.push(`zones ${built.behind.join(', ')}: reset since the catalog copy was taken; shown as the device has them now (their bytes unflushed)`);
    } else {
      report = this.device.reportZones();
      rows = zoneStats(report).map((z) => ({ ...z, unflushedBytes: 0, moved: false }));
    }
    if (this.device.kind === 'emulated') notes.push('emulated device: open zones are not recorded, so partly written zones show as closed (moved: written since the last snapshot)');
    const written = report.map(writtenOf);
    const totals: Observation['totals'] = { zones: rows.length, byCondition: {}, capacityBytes: 0, writtenBytes: 0, liveBytes: 0, deadBytes: 0, unflushedBytes: 0 };
    for (const name of Object.values(ZONE_CONDITION_NAMES)) totals.byCondition[name] = 0;
    rows.forEach((z, i) => {
      totals.byCondition[z.condition] = (totals.byCondition[z.condition] ?? 0) + 1;
      totals.capacityBytes += z.capacity;
      totals.writtenBytes += written[i]!;
      totals.liveBytes += z.liveBytes;
      totals.deadBytes += z.deadBytes;
      totals.unflushedBytes += z.unflushedBytes;
    });
    const puts = stats === null ? null : stats.counters.puts;
    let rates: Observation['rates'] = null;
    if (this.previous !== undefined) {
      const sinceMs = Math.max(1, now - this.previous.at);
      let grown = 0;
      written.forEach((w, i) => {
        const before = this.previous!.written[i] ?? 0;
        if (w !== before) rows[i]!.moved = true;
        // A reset then writes within one interval counts what the zone holds now.
        grown += w >= before ? w - before : w;
      });
      rates = {
        sinceMs,
        deviceBytesPerSecond: Math.round((grown * 1000) / sinceMs),
        putsPerSecond: puts === null || this.previous.puts === null ? null : Math.round((Math.max(0, puts - this.previous.puts) * 1000) / sinceMs),
      };
    }
    this.previous = { at: now, written, puts };
    return {
      version: OBSERVATION_VERSION,
      takenAt: new Date(now).toISOString(),
      target: this.target,
      kind: this.kind,
      device: { kind: this.device.kind, path: this.device.path, geometry: { ...this.device.geometry }, inUseBy: this.device.inUseBy() },
      catalog: catalogInfo,
      stats,
      zones: rows,
      totals,
      rates,
      notes,
    };
  }

  /** The catalog copy, then the zone report (again, while the report is behind the copy somewhere). */
  private consistentRead(): { snapshot: CatalogSnapshot; report: Zone[]; behind: number[] } {
    for (let attempt = 1; ; attempt++) {
      const snapshot = this.catalog!.read();
      const report = this.device.reportZones();
      const behind = new Set<number>();
      for (const row of snapshot.slabs) {
        if (row.state !== 'sealed' || row.zone === null) continue;
        const z = report[row.zone];
        if (z !== undefined && writtenOf(z) < row.offset! + row.length!) behind.add(row.zone);
      }
      if (behind.size === 0 || attempt >= OBSERVE_ATTEMPTS) return { snapshot, report, behind: [...behind].sort((a, b) => a - b) };
    }
  }

  private observeStore(): { snapshot: CatalogSnapshot; report: Zone[]; rows: ObservedZone[]; stats: GlobalStats; behind: number[] } {
    const { snapshot, report, behind } = this.consistentRead();
    const { meta } = snapshot;
    const g = this.device.geometry;
    const sizeClasses = new SizeClassTable(g.zoneCapacity, g.logicalBlockSize);
    const storeCounters = newStoreCounters();
    const classCounters = sizeClasses.classes.map(() => newClassCounters());
    if (meta.counters !== undefined) {
      let saved: SavedCounters;
      try {
        saved = JSON.parse(meta.counters) as SavedCounters;
      } catch (err) {
        throw new ZnsSlabError(ErrorCode.INVALID_STORE, `the catalog's saved counters are not valid JSON: ${(err as Error).message}`, { cause: err });
      }
      restoreCounters(saved, storeCounters, classCounters);
    }
    const epochs = new Map<number, Epoch>();
    for (const row of snapshot.epochs) {
      if (row.state === 'CLOSED') continue;
      const epoch = new Epoch(row.id, row.state as EpochState, row.createdAt, sizeClasses.classes.length);
      epoch.closingAt = row.closingAt;
      epochs.set(row.id, epoch);
    }
    // The engine's own structures, loaded as a read-only open loads them: nothing is reset or finished.
    // A zone reset since the copy (still `behind` after OBSERVE_ATTEMPTS): what the copy says of it
    // is gone from the device, and whatever it holds now was written after the copy's commit.
    const gone = new Set(behind);
    const slabRows = gone.size === 0 ? snapshot.slabs : snapshot.slabs.filter((row) => row.state !== 'sealed' || row.zone === null || !gone.has(row.zone));
    const manager = new ZoneManager(this.device, storeCounters, { catalogOwns: () => true, zoneChanged: () => undefined });
    const owners = new Map<number, { epoch: number; written: number | null }>();
    for (const { zone, epoch, written } of snapshot.zones) if (epochs.has(epoch) && !gone.has(zone)) owners.set(zone, { epoch, written: written ?? null });
    manager.load(report, owners, true);
    const storeTag = storeSeed(Buffer.from(meta.storeId, 'hex').readUInt32LE(0));
    restoreSlabs(slabRows, { registry: new SlabRegistry(meta.nextSlabId), epochs, zones: manager, sizeClasses, storeTag, damaged: new Set() });
    manager.chooseHeads(true);

    // Per zone: bytes the commit accounts for (live or dead) and bytes sealed since (unflushed).
    const extent = new Map<number, number>();
    for (const row of slabRows) {
      if (row.state === 'sealed' && row.zone !== null) extent.set(row.zone, Math.max(extent.get(row.zone) ?? 0, row.offset! + row.length!));
    }
    const unflushed: number[] = [];
    const accounted: EngineZone[] = manager.zones.map((zone) => {
      const from = zone.unusable ? zone.written : this.unflushedFrom(report[zone.index]!, zone.written, extent.get(zone.index) ?? 0, meta.commitSequence);
      unflushed.push(zone.written - from);
      if (from === zone.written) return zone;
      // The zone as the catalog knows it: written up to where the unflushed bytes start.
      return { ...zone, written: from, needsReset: zone.needsReset && from > 0 };
    });
    let bytesWritten = 0;
    for (const zone of accounted) if (zone.owner !== NO_OWNER || zone.needsReset) bytesWritten += zone.written;
    const src: StatsSource = {
      store: this.target,
      device: this.device,
      classes: sizeClasses.classes,
      blockSize: g.logicalBlockSize,
      epochs: [...epochs.values()],
      epochCurrent: meta.currentEpoch,
      zones: accounted,
      zonesOf: (epoch) => manager.zonesOf(epoch),
      damaged: new Set(),
      zoneCounts: { free: manager.freeZoneCount(), active: manager.activeZones, open: manager.openZones },
      storeCounters,
      classCounters,
      headOf: (index) => {
        const owner = manager.zones[index]!.owner;
        if (owner === NO_OWNER) return null;
        return manager.head(owner, 'user') === index ? 'user' : manager.head(owner, 'gc') === index ? 'gc' : null;
      },
      // Zone GC runs in the writer's memory: from outside, only what it left in the zones shows.
      gc: { enabled: false, collecting: null, reserveZones: 0, bytesWritten, bytesLive: manager.bytesLive, lastError: null },
    };
    const stats = globalStats(src);
    const rows = zoneStats(report, src).map((z, i) => ({ ...z, unflushedBytes: unflushed[i]!, moved: false }));
    return { snapshot, report, rows, stats, behind };
  }

  /**
   * Where the bytes sealed after commit `commit` start in the zone: the first slab image past
   * the catalog's last slab there (`extent`) whose header names a commit at or after it (a seal
   * stamps the last commit before it). Images before it were committed (live or dead now). A
   * block past `extent` that starts no image (a write landing) counts as unflushed from there.
   */
  private unflushedFrom(z: Zone, written: number, extent: number, commit: number): number {
    if (written <= extent) return written;
    const known = this.walks.get(z.index);
    if (known !== undefined && known.extent === extent && known.commit === commit && known.written === written) return known.from;
    let from = written;
    for (let at = extent; at + SLAB_HEADER_BYTES <= written; ) {
      let header;
      try {
        header = readSlabHeader(this.device.read(z.start + at, SLAB_HEADER_BYTES));
      } catch (err) {
        // Reset (and maybe rewritten) under us: the next snapshot sees it whole.
        if (err instanceof ZnsSlabError && err.code === ErrorCode.ZONE_READ_BEYOND_WRITE_POINTER) {
          from = at;
          break;
        }
        throw err;
      }
      if (header === undefined || header.imageBytes <= 0 || header.commitSequence >= commit) {
        from = at;
        break;
      }
      at += header.imageBytes;
    }
    this.walks.set(z.index, { extent, written, commit, from });
    return from;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.device.close();
    } finally {
      if (this.workDir !== undefined) {
        fs.rmSync(this.workDir, { recursive: true, force: true });
        workDirs.delete(this.workDir);
      }
    }
  }
}

/** One snapshot of `target` (see Observer). */
export function observe(target: string): Observation {
  const observer = new Observer(target);
  try {
    return observer.observe();
  } finally {
    observer.close();
  }
}
