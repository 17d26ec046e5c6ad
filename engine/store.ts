/**
 * The Store: objects in slabs, slabs on zones, epochs reclaimed by zone reset, all of it
 * recorded in the catalog. The API is synchronous, like better-sqlite3 and lmdb-js's get:
 * no promise per object.
 *
 * Durability: a put is readable at once (from memory until its slab is sealed) and durable
 * once `flush()` returns. Epoch transitions and frees become durable at the next flush;
 * `epochClose` is durable when it returns. Writes reach the device (and are flushed) before
 * the catalog commits anything that points at them.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import fs from 'node:fs';
import path from 'node:path';
import { ErrorCode, ZnsSlabError, assert } from '../errors.js';
import { CATALOG_FORMAT_VERSION, Catalog, type CatalogMeta, type EpochRow, type SlabRow } from '../catalog/catalog.js';
import type { DeviceGeometry, ZonedDevice } from '../zns/device.js';
import { sameGeometry } from '../zns/emulated.js';
import { openZonedDevice } from '../zns/open.js';
import { type ClassCounters, type SavedCounters, type StoreCounters, newClassCounters, newStoreCounters, restoreCounters } from './counters.js';
import { type DomainHost, EpochDomain } from './domain.js';
import { Epoch, EpochState } from './epoch.js';
import { HANDLE_VERSION, encodeHandle, unpackHandle } from './handle.js';
import { FIRST_SLAB_ID, SlabRegistry } from './registry.js';
import { SizeClassTable } from './sizeClass.js';
import { Slab, SlabState, decodeSlot } from './slab.js';
import { type ClassStats, type EpochStats, type GlobalStats, type StatsSource, type ZoneStats, classStats, epochStats, globalStats, zoneStats } from './stats.js';
import { ZoneManager } from './zones.js';

export const CATALOG_FILE = 'catalog.db';
export const DEFAULT_DEVICE_DIR = 'device';
const FIRST_EPOCH = 1;

export interface StoreOptions {
  /**
   * The zoned device: a `ZonedDevice` (the store takes it over and closes it), or a path to a
   * block device or an emulated device folder. Default: the emulated device in `<store>/device`.
   */
  device?: ZonedDevice | string;
  /** Geometry of a new emulated device; for an existing store it must match (else ERR_GEOMETRY_MISMATCH). */
  geometry?: Partial<DeviceGeometry>;
  /**
   * Inspect without changing anything: no lock is taken (a store open elsewhere is refused with
   * ERR_STORE_LOCKED), nothing is reset or repaired, and every write is ERR_READ_ONLY.
   */
  readOnly?: boolean;
}

export interface PutOptions {
  /** The epoch to allocate in; it must be ACTIVE. Default: the current epoch. */
  epoch?: number;
}

function now(): number {
  return Date.now();
}

export class Store implements Disposable, DomainHost {
  readonly path: string;
  /** The implicit epoch domain of each async context (see engine/domain.ts). */
  readonly domainContext = new AsyncLocalStorage<EpochDomain>();
  readonly device: ZonedDevice;
  readonly sizeClasses: SizeClassTable;
  private readonly catalog: Catalog;
  private readonly registry: SlabRegistry;
  private readonly zones: ZoneManager;
  private readonly epochs = new Map<number, Epoch>();
  private readonly storeCounters: StoreCounters = newStoreCounters();
  private readonly classCounters: ClassCounters[];
  private readonly blockSize: number;
  private readonly readOnly: boolean;
  private current: Epoch;
  private nextEpochId: number;
  /** Slab ids whose catalog row changed since the last commit. */
  private readonly dirtyIds = new Set<number>();
  private readonly dirtyEpochs = new Set<Epoch>();
  /** Zones taken by an epoch and not yet recorded in the catalog. */
  private readonly pendingZones = new Map<number, number>();
  /** Zones the catalog says are owned but the engine has let go (recorded at the next commit). */
  private readonly pendingReleases = new Set<number>();
  private metaDirty = false;
  /** The counters as last saved, to commit when only they changed. */
  private lastSavedCounters = '';
  /** Set by the first domain: until then put never looks up an implicit domain. */
  private domainsInUse = false;
  private closed = false;

  /** Use `openStore`. */
  constructor(dir: string, catalog: Catalog, device: ZonedDevice, readOnly = false) {
    this.path = dir;
    this.catalog = catalog;
    this.device = device;
    this.readOnly = readOnly;
    const g = device.geometry;
    this.blockSize = g.logicalBlockSize;
    this.sizeClasses = new SizeClassTable(g.zoneCapacity, g.logicalBlockSize);
    this.classCounters = this.sizeClasses.classes.map(() => newClassCounters());
    const meta = catalog.readMeta();
    if (meta.counters !== undefined) restoreCounters(JSON.parse(meta.counters) as SavedCounters, this.storeCounters, this.classCounters);
    this.lastSavedCounters = meta.counters ?? '';
    this.registry = new SlabRegistry(meta.nextSlabId);
    this.zones = new ZoneManager(device, this.storeCounters);

    let maxEpoch = 0;
    for (const row of catalog.epochs()) {
      const epoch = new Epoch(row.id, row.state as EpochState, row.createdAt, true, this.sizeClasses.classes.length);
      epoch.closingAt = row.closingAt;
      this.epochs.set(row.id, epoch);
      maxEpoch = Math.max(maxEpoch, row.id);
    }
    this.nextEpochId = Math.max(meta.nextEpochId, maxEpoch + 1);

    const owners = new Map<number, number>();
    for (const { zone, epoch } of catalog.zones()) {
      if (this.epochs.has(epoch)) owners.set(zone, epoch);
      else this.pendingReleases.add(zone); // owned by an epoch that is gone: reset below
    }
    this.zones.load(device.reportZones(), owners, readOnly);
    for (const [zone, epoch] of owners) this.epochs.get(epoch)!.zones.add(zone);
    this.loadSlabs();
    this.zones.chooseHeads(readOnly);

    const current = this.epochs.get(meta.currentEpoch);
    this.current = current !== undefined && current.state === EpochState.ACTIVE ? current : this.createEpoch();
    for (const epoch of this.epochs.values()) if (epoch.state === EpochState.CLOSING) this.recycleEmptySlabs(epoch);
  }

  // ---- objects ---------------------------------------------------------------------------

  /** Stores `bytes` (copied) in an epoch; returns its handle. Readable at once, durable after `flush()`. */
  put(bytes: Uint8Array, options?: PutOptions): bigint {
    this.checkWritable();
    if (!(bytes instanceof Uint8Array)) {
      throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, `put takes a Buffer or Uint8Array, got ${describe(bytes)}`);
    }
    const classIndex = this.sizeClasses.classFor(bytes.length);
    let epoch = this.current;
    if (options?.epoch !== undefined) epoch = this.epochForPut(options.epoch, classIndex);
    else if (this.domainsInUse) {
      const domain = this.domainContext.getStore();
      if (domain !== undefined) epoch = this.epochForPut(domain.epoch, classIndex);
    }
    let slab = epoch.openSlabs[classIndex];
    if (slab === undefined || slab.isFull) slab = this.nextSlab(epoch, classIndex, slab);
    const slot = slab.append(bytes);
    const counters = this.classCounters[classIndex]!;
    counters.puts++;
    counters.userBytesPut += bytes.length;
    epoch.liveObjects[classIndex]!++;
    return encodeHandle(slab.id, slab.generation, slot, classIndex);
  }

  /** The object's bytes (a copy). Stale, forged or corrupt handles get a coded error, never other bytes. */
  get(handle: bigint): Buffer {
    this.checkOpen();
    const { slab, slot } = this.resolve(handle);
    this.storeCounters.gets++;
    if (slab.state === SlabState.OPEN) return slab.readFromMemory(slot);
    const zone = this.zones.zones[slab.zone]!;
    const bytes = this.device.read(zone.start + slab.slotOffset(slot), slab.cls.stride);
    return decodeSlot(bytes, slab.id, slab.generation, slot, slab.cls, true);
  }

  /** Frees the object. Its handle (and any copy of it) goes stale at once. */
  free(handle: bigint): void {
    this.checkWritable();
    const { slab, slot } = this.resolve(handle);
    slab.clearLive(slot);
    this.classCounters[slab.cls.index]!.frees++;
    this.epochs.get(slab.epoch)!.liveObjects[slab.cls.index]!--;
    if (slab.state === SlabState.SEALED) {
      this.zones.zones[slab.zone]!.liveBytes -= slab.cls.stride;
      this.dirtyIds.add(slab.id);
    }
    if (slab.liveCount === 0) this.onSlabEmpty(slab);
  }

  /** Largest object this store accepts (depends on the zone capacity). */
  get maxObjectSize(): number {
    return this.sizeClasses.maxObjectSize;
  }

  // ---- epochs ----------------------------------------------------------------------------

  epochCurrent(): number {
    this.checkOpen();
    return this.current.id;
  }

  /** The current epoch becomes CLOSING and a new ACTIVE one starts; returns the new epoch. */
  epochAdvance(): number {
    this.checkWritable();
    const old = this.current;
    this.startClosing(old);
    this.current = this.createEpoch();
    this.metaDirty = true;
    return this.current.id;
  }

  /**
   * Closes an epoch: its zones are reset and their space returned; every handle into it goes
   * stale. Closing the current epoch first advances to a new one. Durable on return.
   */
  epochClose(epochId: number): void {
    this.checkWritable();
    const epoch = this.liveEpoch(epochId);
    if (epoch === this.current) this.epochAdvance();
    if (epoch.state === EpochState.ACTIVE) this.startClosing(epoch);

    const rows: SlabRow[] = [];
    for (const slab of epoch.slabs) {
      if (slab.state === SlabState.SEALED) this.zones.zones[slab.zone]!.slabs.delete(slab);
      rows.push(this.registry.recycle(slab));
      this.dirtyIds.delete(slab.id);
      this.classCounters[slab.cls.index]!.slabsFreed++;
    }
    epoch.slabs.clear();
    epoch.openSlabs.length = 0;
    const zones = [...epoch.zones];
    const committedZones = zones.filter((z) => !this.pendingZones.delete(z));
    epoch.state = EpochState.CLOSED;
    epoch.closedAt = now();
    if (epoch.persisted) {
      // The catalog lets go first; a crash before the resets leaves unowned zones with data,
      // which the next open resets (see ZoneManager.load).
      this.catalog.commit({
        epochs: [epochRow(epoch)],
        slabs: rows,
        zonesReleased: committedZones,
        meta: { currentEpoch: this.current.id, nextEpochId: this.nextEpochId, counters: this.savedCounters() },
      });
      this.dirtyEpochs.delete(epoch);
    }
    for (const zone of zones) this.zones.reset(zone);
    epoch.zones.clear();
    this.epochs.delete(epoch.id);
  }

  /** The epoch's state; epochs closed long ago report CLOSED. */
  epochState(epochId: number): EpochState {
    this.checkOpen();
    checkEpochId(epochId);
    const epoch = this.epochs.get(epochId);
    if (epoch !== undefined) return epoch.state;
    if (epochId < this.nextEpochId) return EpochState.CLOSED;
    throw new ZnsSlabError(ErrorCode.UNKNOWN_EPOCH, `epoch ${epochId} does not exist`);
  }

  // ---- epoch domains (engine/domain.ts) ----------------------------------------------------

  /**
   * An auto-closing domain over a new epoch: when its last user exits (or it is disposed with
   * nobody inside), the epoch closes and its zones reset. Its objects live in memory until a
   * slab fills, and flush() does not persist them: they never outlive the domain.
   */
  epochDomainCreate(): EpochDomain {
    this.checkWritable();
    this.domainsInUse = true;
    return new EpochDomain(this, this.createEpoch(true).id, true);
  }

  /** A manual-control domain over an existing live epoch: exiting never closes it. */
  epochDomainWrap(epochId: number): EpochDomain {
    this.checkWritable();
    const epoch = this.liveEpoch(epochId);
    this.domainsInUse = true;
    return new EpochDomain(this, epoch.id, false);
  }

  /** The domain whose `run` the caller is in (undefined outside any). */
  epochDomainCurrent(): EpochDomain | undefined {
    return this.domainsInUse ? this.domainContext.getStore() : undefined;
  }

  /**
   * @internal For EpochDomain. After the store closed there is nothing left to reclaim: an
   * ephemeral epoch's spilled zones are unowned in the catalog and reset at the next open.
   */
  closeDomainEpoch(epochId: number): void {
    if (!this.closed && this.epochs.has(epochId)) this.epochClose(epochId);
  }

  /** @internal For EpochDomain. */
  isEpochClosed(epochId: number): boolean {
    return this.closed || !this.epochs.has(epochId);
  }

  // ---- durability ------------------------------------------------------------------------

  /**
   * Seals every partial slab to its zone, flushes the device, then commits the catalog.
   * Everything put, freed or advanced before the call is durable when it returns. Zones of
   * CLOSING epochs that no longer hold a live object are reset here.
   */
  flush(): void {
    this.checkWritable();
    for (const epoch of this.epochs.values()) {
      if (epoch.ephemeral) continue; // scoped to its domain: nothing to make durable
      for (const slab of epoch.openSlabs) if (slab !== undefined && slab.slotCount > 0) this.seal(slab);
    }
    this.device.flush();

    const reclaim: number[] = [];
    for (const epoch of this.epochs.values()) {
      if (epoch.state !== EpochState.CLOSING) continue;
      for (const zone of epoch.zones) if (this.zones.zones[zone]!.slabs.size === 0) reclaim.push(zone);
    }
    for (const zone of reclaim) {
      const owner = this.zones.zones[zone]!.owner;
      this.epochs.get(owner)!.zones.delete(zone);
      if (!this.pendingZones.delete(zone)) this.pendingReleases.add(zone);
    }
    this.storeCounters.flushes++;
    this.commit();
    for (const zone of reclaim) this.zones.reset(zone);
  }

  /** Flushes and closes the store and its device. Idempotent. */
  close(): void {
    if (this.closed) return;
    try {
      if (!this.readOnly) {
        this.flush();
        this.commit(); // the counters of resets the flush did after its own commit
      }
    } finally {
      this.closed = true;
      this.catalog.close();
      this.device.close();
    }
  }

  [Symbol.dispose](): void {
    this.close();
  }

  // ---- observability (engine/stats.ts) ----------------------------------------------------

  /** Store-wide snapshot: counters, derived metrics, zones, every live epoch and active class. */
  statsGlobal(): GlobalStats {
    this.checkOpen();
    return globalStats(this.statsSource());
  }

  /** One size class (its index, as in handles), across all live epochs. */
  statsClass(sizeClass: number): ClassStats {
    this.checkOpen();
    const cls = typeof sizeClass === 'number' && Number.isInteger(sizeClass) ? this.sizeClasses.classes[sizeClass] : undefined;
    if (cls === undefined) {
      throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, `size class must be an integer in [0, ${this.sizeClasses.classes.length - 1}], got ${describe(sizeClass)}`);
    }
    return classStats(this.statsSource(), cls);
  }

  /** One live epoch (ACTIVE or CLOSING). A closed epoch has nothing left: ERR_EPOCH_CLOSED. */
  statsEpoch(epochId: number): EpochStats {
    this.checkOpen();
    return epochStats(this.statsSource(), this.liveEpoch(epochId));
  }

  /** Every zone of the device, joined with the engine's ownership and live/dead bytes. */
  statsZones(): ZoneStats[] {
    this.checkOpen();
    return zoneStats(this.device.reportZones(), this.statsSource());
  }

  // ---- internals -------------------------------------------------------------------------

  private resolve(handle: bigint): { slab: Slab; slot: number } {
    const h = unpackHandle(handle);
    if (h.version !== HANDLE_VERSION) {
      throw new ZnsSlabError(ErrorCode.INVALID_HANDLE, `handle version ${h.version} is not ${HANDLE_VERSION}`);
    }
    const slab = this.registry.lookup(h.slabId, h.generation);
    if (slab.cls.index !== h.sizeClass) {
      throw new ZnsSlabError(ErrorCode.INVALID_HANDLE, `handle says size class ${h.sizeClass}; slab ${h.slabId} is class ${slab.cls.index}`);
    }
    if (h.slot >= slab.slotCount) {
      throw new ZnsSlabError(ErrorCode.INVALID_HANDLE, `handle names slot ${h.slot}; slab ${h.slabId} has handed out ${slab.slotCount}`);
    }
    if (!slab.isLive(h.slot)) {
      throw new ZnsSlabError(ErrorCode.STALE_HANDLE, `slot ${h.slot} of slab ${h.slabId} was freed`);
    }
    return { slab, slot: h.slot };
  }

  /** Slow path of put: the (epoch, class) has no partial slab, or it is full. */
  private nextSlab(epoch: Epoch, classIndex: number, full: Slab | undefined): Slab {
    const counters = this.classCounters[classIndex]!;
    if (full === undefined) counters.currentPartialNull++;
    else {
      counters.currentPartialFull++;
      if (full.liveCount === 0) {
        // Every object in it was freed before it reached the device: reuse it in place.
        const generation = this.registry.nextHotGeneration(full);
        if (generation !== undefined) {
          full.resetInPlace(generation);
          counters.slabsReusedHot++;
          return full;
        }
      }
      this.seal(full);
    }
    counters.slowPathCacheMiss++;
    if (!this.registry.hasLeasedId()) this.lease();
    const { slabId, generation } = this.registry.acquire();
    if (generation > 0) counters.slabsRecycled++;
    else counters.slabsOverflowed++;
    const slab = new Slab(slabId, generation, this.sizeClasses.classes[classIndex]!, epoch.id);
    this.registry.attach(slab);
    epoch.slabs.add(slab);
    epoch.slabCount[classIndex]!++;
    epoch.openSlabs[classIndex] = slab;
    return slab;
  }

  private lease(): void {
    this.registry.lease((rows, nextSlabId) => {
      this.storeCounters.leaseCommits++;
      this.catalog.commit({ slabs: rows, meta: { nextSlabId } });
    });
  }

  /** Appends an OPEN slab to its epoch's head zone. A slab with no live object is not written. */
  private seal(slab: Slab): void {
    const epoch = this.epochs.get(slab.epoch)!;
    if (slab.liveCount === 0) {
      if (epoch.state === EpochState.ACTIVE && epoch.openSlabs[slab.cls.index] === slab) {
        const generation = this.registry.nextHotGeneration(slab);
        if (generation !== undefined) {
          slab.resetInPlace(generation);
          this.classCounters[slab.cls.index]!.slabsReusedHot++;
          return;
        }
      }
      this.drop(epoch, slab);
      return;
    }
    if (epoch.openSlabs[slab.cls.index] === slab) epoch.openSlabs[slab.cls.index] = undefined;
    const image = slab.sealImage(this.blockSize);
    const { zone, offset, newZone } = this.zones.append(epoch.id, image);
    slab.markSealed(zone, offset, image.length);
    const engineZone = this.zones.zones[zone]!;
    engineZone.slabs.add(slab);
    engineZone.liveBytes += slab.liveCount * slab.cls.stride;
    epoch.sealedBytes[slab.cls.index]! += image.length;
    if (newZone) {
      epoch.zones.add(zone);
      this.pendingZones.set(zone, epoch.id);
    }
    this.dirtyIds.add(slab.id);
    this.classCounters[slab.cls.index]!.slabsSealed++;
  }

  private onSlabEmpty(slab: Slab): void {
    const epoch = this.epochs.get(slab.epoch)!;
    if (epoch.state === EpochState.ACTIVE) {
      // Seed Phase 2.1: ACTIVE epochs keep empty slabs (latency first). The current partial
      // slab restarts at slot 0 under its next generation at once (every handle into it is
      // already freed); a sealed one waits for its epoch to close.
      if (slab.state === SlabState.OPEN && epoch.openSlabs[slab.cls.index] === slab) {
        const generation = this.registry.nextHotGeneration(slab);
        if (generation === undefined) this.drop(epoch, slab);
        else {
          slab.resetInPlace(generation);
          this.classCounters[slab.cls.index]!.slabsReusedHot++;
        }
      }
      return;
    }
    this.drop(epoch, slab);
  }

  /** Recycles the id of a slab with no live object. */
  private drop(epoch: Epoch, slab: Slab): void {
    assert(slab.liveCount === 0, 'drop an empty slab');
    if (epoch.openSlabs[slab.cls.index] === slab) epoch.openSlabs[slab.cls.index] = undefined;
    if (slab.state === SlabState.SEALED) {
      this.zones.zones[slab.zone]!.slabs.delete(slab);
      epoch.sealedBytes[slab.cls.index]! -= slab.length;
    }
    epoch.slabs.delete(slab);
    epoch.slabCount[slab.cls.index]!--;
    this.registry.recycle(slab);
    this.dirtyIds.add(slab.id);
    this.classCounters[slab.cls.index]!.slabsFreed++;
  }

  private startClosing(epoch: Epoch): void {
    assert(epoch.state === EpochState.ACTIVE, 'only an ACTIVE epoch starts closing');
    epoch.state = EpochState.CLOSING;
    epoch.closingAt = now();
    this.dirtyEpochs.add(epoch);
    this.recycleEmptySlabs(epoch);
  }

  /** Seed Phase 2.1's proactive scan: a CLOSING epoch gives back its already-empty slabs. */
  private recycleEmptySlabs(epoch: Epoch): void {
    for (const slab of [...epoch.slabs]) if (slab.liveCount === 0) this.drop(epoch, slab);
  }

  private createEpoch(ephemeral = false): Epoch {
    const epoch = new Epoch(this.nextEpochId++, EpochState.ACTIVE, now(), false, this.sizeClasses.classes.length, ephemeral);
    this.epochs.set(epoch.id, epoch);
    this.metaDirty = true;
    return epoch;
  }

  private epochForPut(epochId: number, classIndex: number): Epoch {
    checkEpochId(epochId);
    const epoch = this.epochs.get(epochId);
    if (epoch === undefined && epochId >= this.nextEpochId) {
      throw new ZnsSlabError(ErrorCode.UNKNOWN_EPOCH, `epoch ${epochId} does not exist`);
    }
    if (epoch === undefined || epoch.state !== EpochState.ACTIVE) {
      this.classCounters[classIndex]!.slowPathEpochClosed++;
      throw new ZnsSlabError(ErrorCode.EPOCH_CLOSED, `epoch ${epochId} is ${epoch?.state ?? EpochState.CLOSED}: it takes no new objects`);
    }
    return epoch;
  }

  private liveEpoch(epochId: number): Epoch {
    checkEpochId(epochId);
    const epoch = this.epochs.get(epochId);
    if (epoch !== undefined) return epoch;
    if (epochId < this.nextEpochId) throw new ZnsSlabError(ErrorCode.EPOCH_CLOSED, `epoch ${epochId} is already closed`);
    throw new ZnsSlabError(ErrorCode.UNKNOWN_EPOCH, `epoch ${epochId} does not exist`);
  }

  /** One catalog transaction with everything that changed; skipped when nothing did. */
  private commit(): void {
    // An ephemeral epoch's zones and slabs stay out of the catalog: after a crash its zones
    // hold data nobody owns, and the next open resets them.
    const zonesOwned: { zone: number; epoch: number }[] = [];
    for (const [zone, epochId] of this.pendingZones) {
      const epoch = this.epochs.get(epochId)!;
      if (epoch.ephemeral) continue;
      zonesOwned.push({ zone, epoch: epochId });
      if (!epoch.persisted) {
        epoch.persisted = true;
        this.dirtyEpochs.add(epoch);
      }
    }
    if (!this.current.persisted) {
      this.current.persisted = true;
      this.dirtyEpochs.add(this.current);
    }
    const dirtyEpochs = [...this.dirtyEpochs].filter((e) => e.persisted);
    const counters = this.savedCounters();
    const slabs: SlabRow[] = [];
    for (const id of this.dirtyIds) {
      const slab = this.registry.get(id);
      if (slab !== undefined && this.epochs.get(slab.epoch)!.ephemeral) continue;
      slabs.push(this.registry.rowFor(id));
    }
    if (
      slabs.length === 0 && zonesOwned.length === 0 && this.pendingReleases.size === 0 &&
      dirtyEpochs.length === 0 && !this.metaDirty && counters === this.lastSavedCounters
    ) {
      this.dirtyIds.clear();
      return;
    }
    this.catalog.commit({
      epochs: dirtyEpochs.map(epochRow),
      slabs,
      zonesReleased: this.pendingReleases,
      zonesOwned,
      meta: { currentEpoch: this.current.id, nextEpochId: this.nextEpochId, counters },
    });
    this.lastSavedCounters = counters;
    for (const { zone } of zonesOwned) this.pendingZones.delete(zone);
    this.dirtyIds.clear();
    this.dirtyEpochs.clear();
    this.pendingReleases.clear();
    this.metaDirty = false;
  }

  private loadSlabs(): void {
    for (const row of this.catalog.slabs()) {
      if (row.state === 'free') {
        this.registry.restoreFree(row.slabId, row.genLimit);
        continue;
      }
      if (row.state === 'retired') {
        this.registry.restoreRetired(row.slabId);
        continue;
      }
      const epoch = row.epoch === null ? undefined : this.epochs.get(row.epoch);
      const cls = row.sizeClass === null ? undefined : this.sizeClasses.classes[row.sizeClass];
      const zone = row.zone === null ? undefined : this.zones.zones[row.zone];
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
      this.registry.restoreSealed(slab, row.genLimit);
      epoch.slabs.add(slab);
      epoch.slabCount[cls.index]!++;
      epoch.sealedBytes[cls.index]! += slab.length;
      epoch.liveObjects[cls.index]! += slab.liveCount;
      zone.slabs.add(slab);
      zone.liveBytes += slab.liveCount * cls.stride;
    }
  }

  private checkOpen(): void {
    if (this.closed) throw new ZnsSlabError(ErrorCode.CLOSED, `store at ${this.path} is closed`);
  }

  private checkWritable(): void {
    this.checkOpen();
    if (this.readOnly) throw new ZnsSlabError(ErrorCode.READ_ONLY, `store at ${this.path} was opened read-only`);
  }

  private savedCounters(): string {
    const saved: SavedCounters = { store: this.storeCounters, classes: this.classCounters };
    return JSON.stringify(saved);
  }


  private statsSource(): StatsSource {
    return {
      store: this.path,
      device: this.device,
      classes: this.sizeClasses.classes,
      blockSize: this.blockSize,
      epochs: [...this.epochs.values()],
      epochCurrent: this.current.id,
      zones: this.zones.zones,
      zoneCounts: { free: this.zones.freeZoneCount(), active: this.zones.activeZones, open: this.zones.openZones },
      storeCounters: this.storeCounters,
      classCounters: this.classCounters,
    };
  }
}

function epochRow(e: Epoch): EpochRow {
  return { id: e.id, state: e.state, createdAt: e.createdAt, closingAt: e.closingAt, closedAt: e.closedAt };
}

function checkEpochId(epochId: unknown): asserts epochId is number {
  if (typeof epochId !== 'number' || !Number.isSafeInteger(epochId) || epochId < FIRST_EPOCH) {
    throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, `an epoch is a positive integer, got ${describe(epochId)}`);
  }
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'object') return (value as object).constructor?.name ?? 'object';
  return `${typeof value} ${String(value).slice(0, 40)}`;
}

/** Relative when inside the store, so a store folder can be moved as a whole. */
function storeRelative(dir: string, target: string): string {
  const rel = path.relative(path.resolve(dir), path.resolve(target));
  return rel.startsWith('..') || path.isAbsolute(rel) ? path.resolve(target) : rel;
}

/**
 * Opens the store in folder `dir`, creating it (and, by default, an emulated zoned device in
 * `dir/device`) when it does not exist yet.
 */
export function openStore(dir: string, options: StoreOptions = {}): Store {
  if (typeof dir !== 'string' || dir.length === 0) {
    throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, 'openStore takes a folder path');
  }
  const readOnly = options.readOnly ?? false;
  const catalogFile = path.join(dir, CATALOG_FILE);
  if (readOnly && !fs.existsSync(catalogFile)) {
    throw new ZnsSlabError(ErrorCode.INVALID_STORE, `${dir} is not a zns-slab store (no ${CATALOG_FILE})`);
  }
  if (!readOnly) fs.mkdirSync(dir, { recursive: true });
  const catalog = new Catalog(catalogFile, { readonly: readOnly, mustExist: readOnly });
  let device: ZonedDevice | undefined = typeof options.device === 'object' ? options.device : undefined;
  try {
    if (catalog.isEmpty()) {
      if (readOnly) throw new ZnsSlabError(ErrorCode.INVALID_STORE, `${dir} holds an empty catalog, not a zns-slab store`);
      const target = typeof options.device === 'string' ? options.device : path.join(dir, DEFAULT_DEVICE_DIR);
      device ??= openZonedDevice(target, { create: true, ...(options.geometry ? { geometry: options.geometry } : {}) });
      const meta: CatalogMeta = {
        formatVersion: CATALOG_FORMAT_VERSION,
        geometry: { ...device.geometry },
        deviceKind: device.kind,
        devicePath: storeRelative(dir, device.path),
        createdAt: now(),
        nextSlabId: FIRST_SLAB_ID,
        nextEpochId: FIRST_EPOCH + 1,
        currentEpoch: FIRST_EPOCH,
      };
      catalog.initialize(meta, { id: FIRST_EPOCH, state: 'ACTIVE', createdAt: meta.createdAt, closingAt: null, closedAt: null });
    } else {
      const meta = catalog.readMeta();
      const recorded = meta.geometry as unknown as DeviceGeometry;
      if (options.geometry && !sameGeometry(recorded, { ...recorded, ...options.geometry })) {
        throw new ZnsSlabError(
          ErrorCode.GEOMETRY_MISMATCH,
          `store at ${dir} was made with geometry ${JSON.stringify(recorded)}; asked for ${JSON.stringify(options.geometry)}`,
        );
      }
      const target = typeof options.device === 'string' ? options.device : path.resolve(dir, meta.devicePath);
      device ??= openZonedDevice(target);
      if (!sameGeometry(device.geometry, recorded)) {
        throw new ZnsSlabError(
          ErrorCode.GEOMETRY_MISMATCH,
          `device ${device.path} has geometry ${JSON.stringify(device.geometry)}; the store was made with ${JSON.stringify(recorded)}`,
        );
      }
    }
    return new Store(dir, catalog, device, readOnly);
  } catch (err) {
    catalog.close();
    device?.close();
    throw err;
  }
}
