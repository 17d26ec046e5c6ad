/**
 * The one writer that turns in-memory changes into catalog batches. Everything that changes
 * what the catalog must say (a slab sealed, emptied or recycled; a zone taken or let go; an
 * epoch's state; the counters) only marks what changed here. A commit then writes, for each
 * marked slab id, zone and epoch, the row that memory says now: never a row remembered from
 * when it was marked, and never a marked id skipped.
 *
 * That gives the catalog its invariant after every commit: each 'sealed' slab row lies in a
 * zone the catalog records as owned by the slab's epoch, and that epoch is not CLOSED. (A zone
 * is let go only once its slabs are gone, and their ids are marked by then, so their new rows
 * go in the same transaction.) Sealed rows point at data on the device, so the caller flushes
 * the device before `commit` (Store.commitAll does both).
 *
 * The writer also answers, for the zone manager, whether the committed catalog still owns a
 * zone: a zone is reset only once no committed row points into it.
 */
import type { Catalog, EpochRow, SlabRow, ZoneRow } from '../catalog/catalog.js';
import type { Epoch } from './epoch.js';
import type { SlabRegistry } from './registry.js';
import type { Slab } from './slab.js';
import { NO_OWNER, type ZoneCatalogView } from './zones.js';

/** What the writer reads from the store when it builds a batch. */
export interface WriterSource {
  readonly registry: SlabRegistry;
  /** A live (ACTIVE or CLOSING) epoch by id. */
  epoch(id: number): Epoch | undefined;
  zoneOwner(zone: number): number;
  /** What the catalog should record as written for an owned zone (ZoneRow.written). */
  zoneWritten(zone: number): number | null;
  currentEpoch(): Epoch;
  nextEpochId(): number;
  sealSequence(): number;
  counters(): string;
  /** The commit recorded this slab as memory has it (its frees are durable now). */
  slabCommitted(slab: Slab): void;
}

export class CatalogWriter implements ZoneCatalogView {
  private readonly catalog: Catalog;
  private source!: WriterSource;
  /** Zone -> owning epoch, as the committed catalog says. */
  private readonly committedOwner = new Map<number, number>();
  /** Zone -> its recorded `written` (zones finished early). */
  private readonly committedWritten = new Map<number, number>();
  /** Epochs that have a row in the catalog. */
  private readonly persisted = new Set<number>();
  private readonly dirtySlabs = new Set<number>();
  private readonly dirtyZones = new Set<number>();
  /** Kept as objects: a CLOSED epoch is gone from the store's map but its row must still be written. */
  private readonly dirtyEpochs = new Map<number, Epoch>();
  private lastMeta = '';

  constructor(catalog: Catalog, committedZones: Iterable<ZoneRow>, persistedEpochs: Iterable<number>) {
    this.catalog = catalog;
    for (const { zone, epoch, written } of committedZones) {
      this.committedOwner.set(zone, epoch);
      if (written != null) this.committedWritten.set(zone, written);
    }
    for (const id of persistedEpochs) this.persisted.add(id);
  }

  /** Late binding: the store builds its parts with the writer, then hands it their view. */
  bind(source: WriterSource): void {
    this.source = source;
  }

  catalogOwns(zone: number): boolean {
    return this.committedOwner.has(zone);
  }

  zoneChanged(zone: number): void {
    this.dirtyZones.add(zone);
  }

  slabChanged(slabId: number): void {
    this.dirtySlabs.add(slabId);
  }

  epochChanged(epoch: Epoch): void {
    if (!epoch.ephemeral) this.dirtyEpochs.set(epoch.id, epoch);
  }

  /** Slab rows are marked for the next commit. */
  get pending(): boolean {
    return this.dirtySlabs.size > 0;
  }

  /** The catalog has a row for the epoch, or owns one of its zones: closing it must commit. */
  refersTo(epoch: Epoch): boolean {
    if (this.persisted.has(epoch.id)) return true;
    for (const owner of this.committedOwner.values()) if (owner === epoch.id) return true;
    return false;
  }

  /**
   * One transaction with everything marked since the last commit; nothing when nothing is.
   * On failure nothing is forgotten: the marks stay for the next commit.
   */
  commit(): void {
    const src = this.source;
    const epochs = new Map(this.dirtyEpochs);
    const zonesOwned: ZoneRow[] = [];
    const zonesReleased: number[] = [];
    for (const zone of this.dirtyZones) {
      const owner = src.zoneOwner(zone);
      const epoch = owner === NO_OWNER ? undefined : src.epoch(owner);
      // An ephemeral epoch's zones stay out of the catalog: after a crash its zones hold data
      // nobody owns, and the next open resets them.
      const wanted = epoch === undefined || epoch.ephemeral ? NO_OWNER : owner;
      const committed = this.committedOwner.get(zone) ?? NO_OWNER;
      const written = wanted === NO_OWNER ? null : src.zoneWritten(zone);
      if (wanted === committed && (wanted === NO_OWNER || written === (this.committedWritten.get(zone) ?? null))) continue;
      if (committed !== NO_OWNER && wanted !== committed) zonesReleased.push(zone);
      if (wanted !== NO_OWNER) {
        zonesOwned.push({ zone, epoch: wanted, written });
        if (!this.persisted.has(wanted)) epochs.set(wanted, epoch!);
      }
    }
    const current = src.currentEpoch();
    if (!this.persisted.has(current.id)) epochs.set(current.id, current);
    const slabs: SlabRow[] = [];
    for (const id of this.dirtySlabs) {
      const slab = src.registry.get(id);
      const persistent = slab === undefined || src.epoch(slab.epoch)?.ephemeral === false;
      slabs.push(src.registry.rowFor(id, persistent));
    }
    const counters = src.counters();
    const meta = { currentEpoch: current.id, nextEpochId: src.nextEpochId(), sealSequence: src.sealSequence(), counters };
    const metaKey = JSON.stringify(meta);
    if (slabs.length === 0 && zonesOwned.length === 0 && zonesReleased.length === 0 && epochs.size === 0 && metaKey === this.lastMeta) return;
    const epochRows = [...epochs.values()].map(epochRow);
    this.catalog.commit({ epochs: epochRows, slabs, zonesReleased, zonesOwned, meta });
    for (const zone of zonesReleased) {
      this.committedOwner.delete(zone);
      this.committedWritten.delete(zone);
    }
    for (const { zone, epoch, written } of zonesOwned) {
      this.committedOwner.set(zone, epoch);
      if (written != null) this.committedWritten.set(zone, written);
      else this.committedWritten.delete(zone);
    }
    for (const row of epochRows) this.persisted.add(row.id);
    this.lastMeta = metaKey;
    for (const id of this.dirtySlabs) {
      const slab = src.registry.get(id);
      if (slab !== undefined) src.slabCommitted(slab);
    }
    this.dirtySlabs.clear();
    this.dirtyZones.clear();
    this.dirtyEpochs.clear();
  }

  /** A lease batch (engine/registry.ts): free rows and the next slab id, durable on return. */
  commitLease(rows: SlabRow[], nextSlabId: number): void {
    this.catalog.commit({ slabs: rows, meta: { nextSlabId } });
  }
}

export function epochRow(e: Epoch): EpochRow {
  return { id: e.id, state: e.state, createdAt: e.createdAt, closingAt: e.closingAt, closedAt: e.closedAt };
}

